package logpatterns

import "testing"

func TestDetectLevel(t *testing.T) {
	tests := []struct {
		message string
		want    Level
	}{
		{"<3>kernel: disk failure", LevelError},
		{"<12>Jan  1 00:00:00 host app: low disk", LevelWarning},
		{"<0>panic", LevelCritical},
		{"<30>systemd[1]: Started foo.", LevelInfo},
		{"<15>debugging", LevelDebug},
		{`{"ts":1,"level":"error","msg":"boom"}`, LevelError},
		{`{"severity": "WARNING", "message": "x"}`, LevelWarning},
		{`{"msg":"no error here","level":"info"}`, LevelInfo},
		{`ts=2024-01-01T00:00:00Z level=debug msg="cache miss"`, LevelDebug},
		{`time=now lvl=crit msg=down`, LevelCritical},
		{`time=now level=WARN source=main.go:10 msg="slog text"`, LevelWarning},
		{"2024-01-01 12:00:00,123 ERROR [main] com.example.App - failed", LevelError},
		{"2024-01-01 12:00:00.123  WARN 1 --- [main] o.s.Boot : slow", LevelWarning},
		{"ERROR:root:division by zero", LevelError},
		{"2024-01-01 12:00:00,123 - app.module - CRITICAL - disk full", LevelCritical},
		{"E0102 15:04:05.123456   42 main.go:10] connect failed", LevelError},
		{"W0102 15:04:05.123456   42 main.go:10] retrying", LevelWarning},
		{"I0102 15:04:05.123456   42 main.go:10] started", LevelInfo},
		{"F0102 15:04:05.123456   42 main.go:10] cannot continue", LevelCritical},
		{"[Sun Dec 04 04:47:44 2005] [error] mod_jk child in error state", LevelError},
		{"[warn] deprecated option", LevelWarning},
		{"<notice> all good", LevelInfo},
		{"Warning: file not found", LevelWarning},
		{"2016-09-28 04:30:30, Info CBS Loaded", LevelInfo},
		{"[2024-01-01T00:00:00Z] [DEBUG] tick", LevelDebug},
		{"level: info something", LevelInfo},
		{"FATAL: out of memory", LevelCritical},
		{"SEVERE: servlet crashed", LevelError},
		{"trace: enter", LevelUnknown}, // lower-case bare word is prose, not a level
		{"connection error while reading", LevelUnknown},
		{"no level at all", LevelUnknown},
		{"", LevelUnknown},
		{"<999>not syslog", LevelUnknown},
	}
	for _, tt := range tests {
		if got := DetectLevel(tt.message); got != tt.want {
			t.Errorf("DetectLevel(%q) = %v, want %v", tt.message, got, tt.want)
		}
	}
}

func TestLevelString(t *testing.T) {
	want := map[Level]string{LevelUnknown: "unknown", LevelDebug: "debug", LevelInfo: "info", LevelWarning: "warning", LevelError: "error", LevelCritical: "critical", Level(99): "unknown"}
	for l, s := range want {
		if l.String() != s {
			t.Errorf("Level(%d).String() = %q, want %q", l, l.String(), s)
		}
	}
}
