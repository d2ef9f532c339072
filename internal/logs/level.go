package logs

import (
	"strconv"

	"github.com/codexray/codexray-node-agent/internal/logpatterns"
)

// Level is a message's severity; LevelUnknown on a Message means "detect it from the text".
type Level = logpatterns.Level

// Levels, from least to most severe.
const (
	LevelUnknown  = logpatterns.LevelUnknown
	LevelDebug    = logpatterns.LevelDebug
	LevelInfo     = logpatterns.LevelInfo
	LevelWarning  = logpatterns.LevelWarning
	LevelError    = logpatterns.LevelError
	LevelCritical = logpatterns.LevelCritical
)

// LevelFromSyslogPriority maps a syslog/journald PRIORITY (0 emerg … 7 debug) to a Level.
func LevelFromSyslogPriority(priority string) Level {
	p, err := strconv.Atoi(priority)
	if err != nil {
		return LevelUnknown
	}
	switch {
	case p < 0 || p > 7:
		return LevelUnknown
	case p <= 2:
		return LevelCritical
	case p == 3:
		return LevelError
	case p == 4:
		return LevelWarning
	case p <= 6:
		return LevelInfo
	default:
		return LevelDebug
	}
}

// journaldLevel is the level an entry states, or LevelUnknown when its PRIORITY says nothing
// about severity and the text must tell: docker's journald driver sets PRIORITY from the
// stream (6 stdout, 3 stderr), and a service's stdout gets the default 6 unless it prefixed
// the line ("<4>…") or a writer such as systemd-cat -p chose another.
func journaldLevel(priority, transport string, dockerDriver bool) Level {
	if dockerDriver || (transport == "stdout" && priority == "6") {
		return LevelUnknown
	}
	return LevelFromSyslogPriority(priority)
}
