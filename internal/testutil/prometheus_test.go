package testutil

import (
	"fmt"
	"testing"
)

// TestParseExposition keeps the little parser honest.
func TestParseExposition(t *testing.T) {
	tests := []struct {
		in   string
		want []Sample
		err  bool
	}{
		{in: "# HELP x y\nup 1\n", want: []Sample{{Name: "up", Labels: map[string]string{}, Value: 1}}},
		{
			in:   `node_info{host_name="vm",kernel_version="6.1 \"x\"\\"} 1 1700000000`,
			want: []Sample{{Name: "node_info", Labels: map[string]string{"host_name": "vm", "kernel_version": `6.1 "x"\`}, Value: 1}},
		},
		{in: `a{b="c,}d"} 2.5e+01`, want: []Sample{{Name: "a", Labels: map[string]string{"b": "c,}d"}, Value: 25}}},
		{in: `a{b="c} 1`, err: true},
		{in: `a{b} 1`, err: true},
		{in: `a x`, err: true},
	}
	for _, tt := range tests {
		got, err := ParseExposition(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("%q: err %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if tt.err {
			continue
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%q: got %+v, want %+v", tt.in, got, tt.want)
		}
		for i := range got {
			if got[i].Name != tt.want[i].Name || got[i].Value != tt.want[i].Value || fmt.Sprint(got[i].Labels) != fmt.Sprint(tt.want[i].Labels) {
				t.Errorf("%q: got %+v, want %+v", tt.in, got[i], tt.want[i])
			}
		}
	}
}
