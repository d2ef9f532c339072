package taskstats

import "testing"

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default", DefaultConfig(), true},
		{"host proc mounted elsewhere", Config{Enabled: true, ProcRoot: "/host/proc"}, true},
		{"empty proc root: the receiver's node.proc_root", Config{Enabled: true}, true},
		{"relative proc root", Config{Enabled: true, ProcRoot: "proc"}, false},
		{"disabled ignores the rest", Config{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
	d := DefaultConfig()
	if !d.Enabled || d.ProcRoot != "" || d.EnableTaskDelayacct {
		t.Fatalf("defaults %+v", d)
	}
}
