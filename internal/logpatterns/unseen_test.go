package logpatterns

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/codexray/codexray-node-agent/internal/logpatterns/score"
)

// An event of a labelled fixture: its label and a generator of one raw line.
type fixtureEvent struct {
	label string
	line  func(r *rand.Rand) string
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func hexID(r *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[r.IntN(16)]
	}
	return string(b)
}

func uuid(r *rand.Rand) string {
	return hexID(r, 8) + "-" + hexID(r, 4) + "-" + hexID(r, 4) + "-" + hexID(r, 4) + "-" + hexID(r, 12)
}

func ip(r *rand.Rand) string {
	return fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254))
}

func stamp(r *rand.Rand) string {
	return fmt.Sprintf("2024-05-%02d %02d:%02d:%02d.%03d", 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000))
}

func syslogStamp(r *rand.Rand) string {
	return fmt.Sprintf("%s %2d %02d:%02d:%02d", pick(r, "Nov", "Dec"), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
}

// Labelled fixtures written for these tests, in the shape of logs the 12 Loghub systems do
// not have: each exercises one failure class of the extractor on unseen software.
var fixtures = map[string][]fixtureEvent{
	// A compute service: quoted HTTP request lines whose method tells the events apart,
	// lifecycle events that differ by one state word, a request id group in the header.
	"compute": func() []fixtureEvent {
		header := func(r *rand.Rand, level, logger string) string {
			return fmt.Sprintf("compute.log %s %d %s %s [req-%s %s - - -] ", stamp(r), 2000+r.IntN(9000), level, logger, uuid(r), hexID(r, 32))
		}
		request := func(method string) func(r *rand.Rand) string {
			return func(r *rand.Rand) string {
				return header(r, "INFO", "osapi.wsgi.server") + fmt.Sprintf(`%s "%s /v2/%s/servers/detail HTTP/1.1" status: %d len: %d time: 0.%07d`,
					ip(r), method, hexID(r, 32), pick(r, 200, 202, 204, 404), 200+r.IntN(2000), r.IntN(10000000))
			}
		}
		lifecycle := func(state string) func(r *rand.Rand) string {
			return func(r *rand.Rand) string {
				return header(r, "INFO", "compute.manager") + fmt.Sprintf("[instance: %s] VM %s (Lifecycle Event)", uuid(r), state)
			}
		}
		return []fixtureEvent{
			{"GET", request("GET")},
			{"POST", request("POST")},
			{"DELETE", request("DELETE")},
			{"Started", lifecycle("Started")},
			{"Stopped", lifecycle("Stopped")},
			{"Paused", lifecycle("Paused")},
			{"Resumed", lifecycle("Resumed")},
			{"spawn", func(r *rand.Rand) string {
				return header(r, "INFO", "compute.manager") + fmt.Sprintf("[instance: %s] Took %d.%02d seconds to spawn the instance on the hypervisor.", uuid(r), r.IntN(30), r.IntN(100))
			}},
			{"claim", func(r *rand.Rand) string {
				return header(r, "INFO", "compute.claims") + fmt.Sprintf("[instance: %s] Attempting claim: memory %d MB, disk %d GB, vcpus %d CPU", uuid(r), 512*(1+r.IntN(8)), 1+r.IntN(80), 1+r.IntN(16))
			}},
		}
	}(),
	// A proxy: the program that opened the connection heads the line; byte counts come with
	// or without a parenthesised size, a lifetime is "00:01" or "<1 sec".
	"proxy": func() []fixtureEvent {
		head := func(r *rand.Rand) string {
			return fmt.Sprintf("[%02d.%02d %02d:%02d:%02d] %s - %s:%d ", 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60),
				pick(r, "chrome.exe", "firefox.exe", "Dropbox.exe", "outlook.exe", "Teams.exe", "svchost.exe", "git.exe", "code.exe", "slack.exe", "zoom.exe"),
				pick(r, "www.example.com", "api.example.org", "cdn.example.net", "mail.example.com", "203.0.113.7"), pick(r, 80, 443, 8080))
		}
		size := func(r *rand.Rand) string {
			n := r.IntN(100000)
			if n < 1024 {
				return fmt.Sprintf("%d bytes", n)
			}
			return fmt.Sprintf("%d bytes (%.2f KB)", n, float64(n)/1024)
		}
		lifetime := func(r *rand.Rand) string {
			if r.IntN(3) == 0 {
				return "<1 sec"
			}
			return fmt.Sprintf("%02d:%02d", r.IntN(60), r.IntN(60))
		}
		return []fixtureEvent{
			{"open", func(r *rand.Rand) string { return head(r) + "open through proxy proxy.example.com:5070 HTTPS" }},
			{"close", func(r *rand.Rand) string {
				return head(r) + fmt.Sprintf("close, %s sent, %s received, lifetime %s", size(r), size(r), lifetime(r))
			}},
			{"error", func(r *rand.Rand) string {
				return head(r) + fmt.Sprintf("error : Could not connect through proxy proxy.example.com:5070 - Proxy server cannot establish a connection with the target, status code %d", pick(r, 403, 502, 504))
			}},
		}
	}(),
	// Cluster syslog: user names and hosts are words that vary, program names vary.
	"cluster syslog": func() []fixtureEvent {
		head := func(r *rand.Rand, prog string) string {
			host := fmt.Sprintf("dn%d", 100+r.IntN(400))
			return fmt.Sprintf("- %d 2005.11.09 %s %s %s/%s %s[%d]: ", 1131566461+r.IntN(100000), host, syslogStamp(r), host, host, prog, 1000+r.IntN(30000))
		}
		user := func(r *rand.Rand) string {
			return pick(r, "root", "root", "root", "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "nobody", "oscar")
		}
		return []fixtureEvent{
			{"opened", func(r *rand.Rand) string {
				return head(r, pick(r, "crond(pam_unix)", "sshd(pam_unix)", "su(pam_unix)")) + fmt.Sprintf("session opened for user %s by (uid=%d)", user(r), r.IntN(1000))
			}},
			{"closed", func(r *rand.Rand) string {
				return head(r, pick(r, "crond(pam_unix)", "sshd(pam_unix)")) + fmt.Sprintf("session closed for user %s", user(r))
			}},
			{"accepted", func(r *rand.Rand) string {
				return head(r, "sshd") + fmt.Sprintf("Accepted publickey for %s from %s port %d ssh2", user(r), ip(r), 1024+r.IntN(60000))
			}},
			{"failed", func(r *rand.Rand) string {
				return head(r, "sshd") + fmt.Sprintf("Failed password for %s from %s port %d ssh2", user(r), ip(r), 1024+r.IntN(60000))
			}},
			{"ntp", func(r *rand.Rand) string {
				return head(r, "ntpd") + fmt.Sprintf("synchronized to %s, stratum %d", ip(r), 1+r.IntN(4))
			}},
		}
	}(),
	// A web server's access log: the method is a word of the quoted request line.
	"access log": func() []fixtureEvent {
		line := func(method, path string) func(r *rand.Rand) string {
			return func(r *rand.Rand) string {
				return fmt.Sprintf(`%s - - [10/Oct/2023:%02d:%02d:%02d +0000] "%s %s/%d HTTP/1.1" %d %d "-" "curl/8.%d.0"`,
					ip(r), r.IntN(24), r.IntN(60), r.IntN(60), method, path, r.IntN(1000), pick(r, 200, 201, 404), r.IntN(5000), r.IntN(9))
			}
		}
		return []fixtureEvent{
			{"GET", line("GET", "/api/items")},
			{"POST", line("POST", "/api/items")},
			{"PUT", line("PUT", "/api/items")},
			{"DELETE", line("DELETE", "/api/items")},
		}
	}(),
	// A job runner: lists of varying length close the message.
	"lists": func() []fixtureEvent {
		list := func(r *rand.Rand, prefix string) string {
			n := 1 + r.IntN(12)
			parts := make([]string, n)
			for i := range parts {
				parts[i] = fmt.Sprintf("%s_%d", prefix, r.IntN(1<<30))
			}
			return strings.Join(parts, " ")
		}
		return []fixtureEvent{
			{"delete", func(r *rand.Rand) string {
				return stamp(r) + " INFO BlockManager: ask " + ip(r) + ":50010 to delete " + list(r, "blk")
			}},
			{"replicate", func(r *rand.Rand) string {
				return stamp(r) + " INFO BlockManager: ask " + ip(r) + ":50010 to replicate " + list(r, "blk") + " to datanode(s) " + ip(r) + ":50010"
			}},
		}
	}(),
}

// TestUnseenFixtures scores the extractor on each fixture, raw lines with their headers, the
// way cmd/loghub-score scores Loghub: by the pattern hash each line was counted under.
func TestUnseenFixtures(t *testing.T) {
	for name, events := range fixtures {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(17, uint64(len(name))))
			e := NewExtractor(DefaultConfig())
			var truth, got []string
			hashes := map[string]map[string]bool{} // label -> hashes
			for i := 0; i < 1500; i++ {
				ev := events[r.IntN(len(events))]
				line := ev.line(r)
				p, _ := e.Add(line)
				truth = append(truth, ev.label)
				got = append(got, p.Hash)
				if hashes[ev.label] == nil {
					hashes[ev.label] = map[string]bool{}
				}
				hashes[ev.label][p.Hash] = true
			}
			ga, err := score.GroupingAccuracy(truth, got)
			if err != nil {
				t.Fatal(err)
			}
			if ga < 0.99 {
				for label, hs := range hashes {
					for h := range hs {
						for _, p := range e.Patterns() {
							if p.Hash == h {
								t.Logf("%-10s %s %6d %s", label, h, p.Count, p.Template)
							}
						}
					}
				}
				t.Errorf("GA %.3f, want at least 0.99", ga)
			}
		})
	}
}
