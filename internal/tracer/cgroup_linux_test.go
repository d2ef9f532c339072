package tracer

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

const dialHelperEnv = "CODEXRAY_TEST_DIAL"

// dialHelper is the child process of TestTracerAttributesByCgroup (see TestMain): it waits for a
// line on stdin, sent once it has been moved into its cgroup, then connects 3 times to addr.
func dialHelper(addr string) int {
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c.Close()
	}
	return 0
}

// TestTracerAttributesByCgroup dials from a child in a cgroup of its own: the connects belong
// to that cgroup's container and not to the test process's.
func TestTracerAttributesByCgroup(t *testing.T) {
	tr, reg := startTracer(t, nil)
	dir := filepath.Join(unifiedRoot, fmt.Sprintf("codexray-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("creating cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing cgroup: %v", err)
		}
	})
	other := &containers.Container{ID: "codexray-test"}
	reg.mu.Lock()
	reg.docker[cgroupInode(t, dir)] = other
	reg.mu.Unlock()

	ln := echoServer(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), dialHelperEnv+"="+ln.Addr().String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("moving the child into its cgroup: %v", err)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dial helper: %v", err)
	}

	dst := ln.Addr().String()
	waitStats(t, tr, other.ID, 5*time.Second, "connects of the child's cgroup", func(s *ContainerStats) bool {
		d, ok := destOf(s, dst)
		return ok && d.SuccessfulConnects == 3
	})
	var s ContainerStats
	if tr.ContainerStats(selfContainer.ID, &s) {
		if d, ok := destOf(&s, dst); ok {
			t.Errorf("the child's connects also counted for the test process: %+v", d)
		}
		// The listener is the test process's: inbound connections count there.
		found := false
		for _, l := range s.Listens {
			found = found || (l.Address == dst && l.InboundConnections == 3)
		}
		if !found {
			t.Errorf("inbound connects not on the listener's container: %+v", s.Listens)
		}
	} else {
		t.Error("nothing recorded for the listener's container")
	}
}
