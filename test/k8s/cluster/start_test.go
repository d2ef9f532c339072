package cluster

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLockMachineWaitsForTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.lock")
	nolog := func(string, ...any) {}
	first, err := lockMachine(context.Background(), path, nolog)
	if err != nil {
		t.Fatal(err)
	}
	// While the first run holds it, a second gives up when its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var logged []string
	if _, err := lockMachine(ctx, path, func(f string, a ...any) { logged = append(logged, f) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: %v, want the context's deadline", err)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "waiting") {
		t.Fatalf("logged %q, want one line saying it waits", logged)
	}
	// Once released, the next run takes it.
	c := &Cluster{lock: first}
	c.unlock()
	second, err := lockMachine(context.Background(), path, nolog)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	second.Close()
}

func TestPollStopsAtAnExitedComponent(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantWait bool
	}{
		{"exited", &exitedError{name: "kube-scheduler", state: "exit status 1", log: "bad flag"}, false},
		{"not yet", errors.New("404"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Now()
			err := poll(context.Background(), 600*time.Millisecond, func() error { return tt.err })
			if !errors.Is(err, tt.err) {
				t.Fatalf("poll: %v, want it to wrap %v", err, tt.err)
			}
			waited := time.Since(t0) >= 600*time.Millisecond
			if waited != tt.wantWait {
				t.Fatalf("waited the whole timeout: %v, want %v", waited, tt.wantWait)
			}
		})
	}
}

func TestTemporaryProcessIsNoComponent(t *testing.T) {
	dir := t.TempDir()
	c := &Cluster{logDir: filepath.Join(dir, "logs"), runDir: filepath.Join(dir, "run"), cfg: Config{BinDir: dir}}
	component, err := c.start("component", "/bin/sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	defer component.stop(time.Second)
	temporary, err := c.start("temporary", "/bin/sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	c.stopTemporary(temporary)
	if err := c.Running(); err != nil {
		t.Fatalf("Running after a temporary process stopped: %v, want nil", err)
	}
	if len(c.procs) != 1 || c.procs[0] != component {
		t.Fatalf("components %v, want only the first", c.procs)
	}
}
