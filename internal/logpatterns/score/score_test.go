package score

import "testing"

func TestGroupingAccuracy(t *testing.T) {
	tests := []struct {
		name             string
		truth, predicted []string
		want             float64
	}{
		{"brief example", []string{"A", "A", "B", "B"}, []string{"x", "x", "y", "z"}, 0.5},
		{"perfect with other labels", []string{"A", "B", "A", "C"}, []string{"1", "2", "1", "3"}, 1},
		{"everything merged", []string{"A", "A", "B"}, []string{"x", "x", "x"}, 0},
		{"everything split", []string{"A", "A", "B"}, []string{"x", "y", "z"}, 1.0 / 3},
		{"a split group and a mixed group both fail", []string{"A", "A", "A", "B"}, []string{"x", "x", "y", "y"}, 0},
		{"a mixed group fails, a clean one counts", []string{"A", "A", "B", "C"}, []string{"x", "x", "y", "y"}, 0.5},
		{"empty", nil, nil, 0},
	}
	for _, tt := range tests {
		got, err := GroupingAccuracy(tt.truth, tt.predicted)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != tt.want {
			t.Errorf("%s: GA = %v, want %v", tt.name, got, tt.want)
		}
	}
	if _, err := GroupingAccuracy([]string{"A"}, nil); err == nil {
		t.Error("length mismatch accepted")
	}
}

func TestParsingAccuracy(t *testing.T) {
	truth := []string{"open <*> failed", "user <*> from <*>:<*>", "a b", "x"}
	pred := []string{"open <*>  failed", "user <*> from <*>", "a <*>", "y"}
	got, err := ParsingAccuracy(truth, pred)
	if err != nil {
		t.Fatal(err)
	}
	if got != 0.5 {
		t.Errorf("PA = %v, want 0.5", got)
	}
	if _, err := ParsingAccuracy(nil, []string{"a"}); err == nil {
		t.Error("length mismatch accepted")
	}
}

func TestNormalizeTemplate(t *testing.T) {
	tests := map[string]string{
		"  a   b\t c ":                  "a b c",
		"port 22 open":                  "port <*> open",
		"ssh2 t761 ok":                  "ssh2 t761 ok",
		"from <*>:<*> to <*>.<*>.<*>":   "from <*> to <*>",
		"<*><*> and <*>,<*>":            "<*> and <*>",
		"blk_<*> stays":                 "blk_<*> stays",
		"(HWID=<*>) and 1.5 and v1.5":   "(HWID=<*>) and <*> and v1.<*>",
		"<*> <*> stay two":              "<*> <*> stay two",
		"mem <*>-<*>-<*> and key=<*>":   "mem <*> and key=<*>",
		"time 12:00:00 on 2005-06-03 x": "time <*> on <*> x",
	}
	for in, want := range tests {
		if got := NormalizeTemplate(in); got != want {
			t.Errorf("NormalizeTemplate(%q) = %q, want %q", in, got, want)
		}
	}
}
