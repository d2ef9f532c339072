package logpatterns

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestHeaderFormats feeds each format's lines to one learner, as one stream, and checks the
// message left after the header of every line and the level the header states.
func TestHeaderFormats(t *testing.T) {
	tests := []struct {
		name  string
		lines []string // "header|message|level"; level "" for unknown
	}{
		{"syslog", []string{
			"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: |authentication failure; logname= uid=0|",
			"Jun  9 06:06:51 combo syslogd 1.4.1: |restart.|",
			"Jul 27 14:41:57 combo kernel: |hdc: ATAPI 48X CD-ROM drive|",
			"Dec 10 06:55:46 LabSZ sshd[24200]: |Invalid user webmaster from 173.234.31.186|",
		}},
		{"rfc3339 syslog", []string{
			"2024-06-24T14:36:49.123456+00:00 vm systemd[1]: |Started session-5.scope.|",
			"2024-06-24T14:36:50.000001+00:00 vm CRON[812]: |(root) CMD (run-parts /etc/cron.hourly)|",
		}},
		{"klog", []string{
			"I0102 15:04:05.000000   12345 reflector.go:123] |Listing and watching *v1.Pod|info",
			"E0102 15:04:06.000001   12345 controller.go:7] |sync failed: timeout|error",
		}},
		{"android logcat", []string{
			"03-17 16:13:38.811  1702  2395 D WindowManager: |printFreezingDisplayLogs opening app|debug",
			"03-17 16:13:38.819  1702  8671 W PowerManagerService: |acquire lock=233570404|warning",
		}},
		{"log4j with thread", []string{
			"2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: |Created MRAppMaster for application|info",
			"2015-10-18 18:01:52,867 WARN [RMCommunicator Allocator] org.apache.hadoop.ipc.Client: |Address change detected.|warning",
		}},
		{"zookeeper", []string{
			"2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - |Notification time out: 3200|info",
			"2015-07-29 19:04:29,071 - WARN  [SendWorker:188978561024:QuorumCnxManager$SendWorker@688] - |Send worker leaving thread|warning",
		}},
		{"padded columns", []string{
			"2016-09-28 04:30:30, Info                  CBS    |Loaded Servicing Stack v6.1.7601.23505|info",
			"2016-09-28 04:30:31, Info                  CSI    |00000001@2016/9/27:20:30:31.455 WcpInitialize called|info",
		}},
		{"bracketed time and level", []string{
			"[Sun Dec 04 04:47:44 2005] [notice] |workerEnv.init() ok /etc/httpd/conf/workers2.properties|info",
			"[Sun Dec 04 04:47:44 2005] [error] |mod_jk child workerEnv in error state 6|error",
			"[Sun Dec 04 04:52:12 2005] [error] |[client 1.2.3.4] Directory index forbidden by rule: /var/www/html/|error",
		}},
		{"pipes", []string{
			"20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579|",
			"20171223-22:15:29:615|Step_LSC|30002312|onExtend:1514038530000 14 0 4|",
		}},
		{"columns of a cluster event log", []string{
			"134681 node-246 unix.hw state_change.unavailable 1077804742 1 |Component State Change: Component is in the unavailable state (HWID=1973)|",
			"2568643 node-70 action start 1074119817 1 |clusterAddMember  (command 1902)|",
			"2286759 full partition status 1061219795 -1 |running|",
		}},
		{"nginx access", []string{
			`127.0.0.1 - - [10/Oct/2023:13:55:36 +0000] |"GET /index.html HTTP/1.1" 200 612 "-" "curl/8.0"|`,
			`10.0.0.7 - alice [10/Oct/2023:13:55:37 +0000] |"POST /api/v1/items HTTP/1.1" 201 17 "-" "Go-http-client/1.1"|`,
		}},
		{"nginx error", []string{
			"2023/10/10 13:55:36 [error] 123#123: |*1 open() \"/usr/share/nginx/html/x\" failed (2: No such file or directory)|error",
			"2023/10/10 13:55:37 [warn] 123#123: |*2 an upstream response is buffered to a temporary file|warning",
		}},
		{"python logging", []string{
			"2024-01-02 03:04:05,123 - app.db - INFO - |connected to primary|info",
			"2024-01-02 03:04:06,456 - app.db - ERROR - |query failed: timeout|error",
		}},
		{"dpkg", []string{
			"2024-06-24 14:36:49 |status half-installed libgc1:amd64 1:8.2.2-3|",
			"2024-06-24 14:38:29 |install libatk1.0-0:amd64 <none> 2.46.0-5|",
			"2024-06-24 14:39:01 |trigproc man-db:amd64 2.11.2-2 <none>|",
		}},
		{"kernel ring buffer", []string{
			"[    0.000000] |Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)|",
			"[    1.234567] |usb 1-1: new high-speed USB device number 2 using xhci_hcd|",
		}},
		{"level first", []string{
			"ERROR |cannot reach db-1: connection refused|error",
			"INFO |worker 3 started|info",
		}},
		{"no header: journald messages", []string{
			"|Started Session 5 of User root.|",
			"|pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)|",
			"|Accepted publickey for root from 10.0.0.1 port 52222 ssh2: ED25519 SHA256:abc|",
		}},
		{"no header: json", []string{
			`|{"level":"info","ts":1700000000.1,"msg":"request served","status":200}|`,
			`|{"level":"error","ts":1700000001.2,"msg":"request failed","status":500}|`,
		}},
		{"no header: logfmt", []string{
			`|time=2024-01-02T03:04:05Z level=warn msg="slow query" rows=12|`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h headerLearner
			// Twice through: while the layout is learnt and after.
			for round := 0; round < 2; round++ {
				for k := 0; k < headerLearnLines/len(tt.lines)+1; k++ {
					for _, l := range tt.lines {
						parts := strings.Split(l, "|")
						level := parts[len(parts)-1]
						header := strings.Join(parts[:len(parts)-2], "|")
						if strings.Count(l, "|") > 2 { // the pipes format: every '|' but the last two is the line's
							header = strings.Join(parts[:len(parts)-2], "|") + "|"
						}
						message := parts[len(parts)-2]
						line := strings.TrimSuffix(header, "|")
						if strings.Count(l, "|") > 2 {
							line = header
						}
						line += message
						cut, lv := h.cut(line)
						if got := strings.TrimLeft(line[cut:], " "); got != message {
							t.Fatalf("round %d %q: message %q, want %q", round, line, got, message)
						}
						want := LevelUnknown
						if level != "" {
							want = levelWord(level)
						}
						if lv != want {
							t.Fatalf("%q: level %v, want %v", line, lv, want)
						}
					}
				}
			}
		})
	}
}

// TestHeaderRelearns checks that a stream whose writer changes its format is learnt again.
func TestHeaderRelearns(t *testing.T) {
	var h headerLearner
	for i := 0; i < headerLearnLines; i++ {
		h.cut("2024-01-02 03:04:05 INFO worker started")
	}
	if !h.learnt {
		t.Fatal("layout not learnt")
	}
	line := "Jun 14 15:16:01 combo sshd[1]: session closed"
	for i := 0; i < 2*headerWindow; i++ {
		h.cut(line)
	}
	if cut, _ := h.cut(line); line[cut:] != " session closed" {
		t.Fatalf("after the format changed: message %q", line[cut:])
	}
}

// TestHeaderRelearnsOnAFittingLine: the window that starts learning again may end on a line
// that fits the old layout; that line is cut by it.
func TestHeaderRelearnsOnAFittingLine(t *testing.T) {
	var h headerLearner
	fits := "2024-01-02 03:04:05 INFO worker started"
	for i := 0; i < headerLearnLines; i++ {
		h.cut(fits)
	}
	misfit := "Jun 14 15:16:01 combo sshd[1]: session closed"
	for i := 0; i < headerWindow-1; i++ {
		if i%4 == 0 {
			h.cut(fits)
		} else {
			h.cut(misfit)
		}
	}
	if cut, level := h.cut(fits); fits[cut:] != " worker started" || level != LevelInfo {
		t.Fatalf("the window's last line: message %q, level %v", fits[cut:], level)
	}
	if h.learnt {
		t.Fatal("most lines misfit the layout, yet it stays")
	}
}

func TestHeaderDoesNotAllocate(t *testing.T) {
	var h headerLearner
	lines := []string{
		"2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster",
		"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0",
	}
	for i := 0; i < 2*headerLearnLines; i++ {
		h.cut(lines[i%2])
	}
	allocs := testing.AllocsPerRun(100, func() {
		h.cut(lines[0])
		h.cut(lines[1])
	})
	if allocs != 0 {
		t.Errorf("cut allocated %.1f times", allocs)
	}
}

func FuzzHeader(f *testing.F) {
	for _, s := range []string{
		"", "-", "[", "[]", "[[]", "|||", "2024-01-02 03:04:05 INFO x", "Jun  9 06:06:51 combo syslogd 1.4.1: restart.",
		"I0102 15:04:05.000000   12345 reflector.go:123] x", "[    0.000000] Linux", "20171223-22:15:29:606|a|1|b c",
		"134681 node-246 unix.hw state 1077804742 1 x", "\t\t  ", "é 12:00:00 ü",
	} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		var h headerLearner
		// Past the learning and two windows, the two lines in a mix that changes on the way
		// (so that windows may start learning again, on either line).
		for i := 0; i < headerLearnLines+2*headerWindow; i++ {
			lines := []string{a, b}
			if i%3 != 0 && i > headerLearnLines+headerWindow/2 {
				lines = lines[1:]
			}
			for _, line := range lines {
				cut, level := h.cut(line)
				if cut < 0 || cut > len(line) {
					t.Fatalf("cut %d outside %q", cut, line)
				}
				if level > LevelCritical {
					t.Fatalf("level %d", level)
				}
				if utf8.ValidString(line) && !utf8.ValidString(line[cut:]) {
					t.Fatalf("cut %d splits a character of %q", cut, line)
				}
				// The same line gives the same cut while the layout stays.
				if h.learnt {
					if again, _ := h.cut(line); again != cut && h.learnt {
						t.Fatalf("%q cut at %d then %d", line, cut, again)
					}
				}
			}
		}
	})
}
