package l7tracer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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
			peers.err = fmt.Errorf("building testdata/peers: %v: %s", err, out)
		}
	})
	if peers.err != nil {
		t.Fatal(peers.err)
	}
	return peers.path
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
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("peers %s %s: %v: %s", role, arg, err, msg)
	}
	return string(out)
}
