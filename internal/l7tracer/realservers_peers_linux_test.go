package l7tracer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/codexray/codexray-node-agent/internal/l7"
)

// The servers and clients of testdata/peers, a module of its own (FerretDB, franz-go's kfake
// and client, amqp091-go, go-sql-driver/mysql): built once per test run, with the go command
// that runs the tests (its build cache makes later builds quick).

var peers struct {
	once sync.Once
	path string
	err  error
}

func peersBinary(t *testing.T) string {
	t.Helper()
	peers.once.Do(func() {
		goCmd, err := exec.LookPath("go")
		if err != nil {
			goCmd = "/usr/local/go/bin/go"
		}
		dir, err := os.MkdirTemp("", "codexray-l7peers")
		if err != nil {
			peers.err = err
			return
		}
		peers.path = filepath.Join(dir, "peers")
		cmd := exec.Command(goCmd, "build", "-o", peers.path, ".")
		cmd.Dir = filepath.Join("testdata", "peers")
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
		if out, err := cmd.CombinedOutput(); err != nil {
			peers.err = fmt.Errorf("building testdata/peers: %w: %s", err, out)
		}
	})
	if peers.err != nil {
		t.Fatal(peers.err)
	}
	return peers.path
}

// removePeers removes the built binary once the tests are done (TestMain).
func removePeers() {
	if peers.path != "" {
		_ = os.RemoveAll(filepath.Dir(peers.path))
	}
}

// peerServer starts a server role of peers in cg; it prints its address first.
func peerServer(role string, arg func(t *testing.T) string) func(*testing.T, *cgroup) string {
	return func(t *testing.T, cg *cgroup) string {
		t.Helper()
		cmd := cg.command(t, "", peersBinary(t), role, arg(t))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		startProcess(t, cmd)
		addr, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			t.Fatalf("%s printed no address: %v", role, err)
		}
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		return strings.TrimSpace(addr)
	}
}

// peerClient runs a client role of peers in cg against arg(addr) and returns its output.
func peerClient(t *testing.T, cg *cgroup, role, arg string) string {
	t.Helper()
	out, err := cg.command(t, "", peersBinary(t), role, arg).Output()
	if err != nil {
		msg := ""
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg = string(ee.Stderr)
		}
		t.Fatalf("peers %s %s: %v: %s", role, arg, err, msg)
	}
	return string(out)
}

// kafkaCase is franz-go's client producing to a kfake broker: the expected counts are what
// the client read (its broker-read hook) and what the broker answered, which must agree;
// one produce is refused (TOPIC_AUTHORIZATION_FAILED), one delayed. Nothing at the broker:
// it reads each request's 4-byte size alone, then its body (as Kafka's own broker does), and
// the kernel side detects a protocol within one syscall's bytes (a known gap).
func kafkaCase() serverCase {
	var stats string
	var responses int
	return serverCase{
		name: "kfake with franz-go", proto: l7.ProtocolKafka, slow: 1,
		server: peerServer("kafka-broker", func(t *testing.T) string {
			t.Helper()
			stats = filepath.Join(t.TempDir(), "stats")
			return stats
		}),
		client: func(t *testing.T, cg *cgroup, addr string) {
			t.Helper()
			out := peerClient(t, cg, "kafka-client", addr)
			if _, err := fmt.Sscanf(out, "responses %d", &responses); err != nil {
				t.Fatalf("kafka-client printed %q: %v", out, err)
			}
		},
		expect: func(t *testing.T) (out, in map[string]uint64) {
			t.Helper()
			b, err := os.ReadFile(stats)
			if err != nil {
				t.Fatal(err)
			}
			var requests, failed int
			if _, err := fmt.Sscanf(string(b), "requests %d failed %d", &requests, &failed); err != nil {
				t.Fatalf("broker stats %q: %v", b, err)
			}
			if requests != responses || failed != 1 || requests < 6 {
				t.Fatalf("the broker answered %d requests (%d refused), the client read %d responses", requests, failed, responses)
			}
			return map[string]uint64{"ok": uint64(requests - failed), "failed": uint64(failed)}, map[string]uint64{}
		},
	}
}
