package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a component the cluster started: its output goes to <logs>/<name>.log and its
// pid to <run>/<name>.pid, so that a later run can stop it if this one dies first.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	pidPath string
	exited  chan struct{}
}

func (c *Cluster) start(name, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(c.logDir, name+".log")
	for _, d := range []string{c.logDir, c.runDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "PATH="+c.path())
	// Its own process group: a signal to the test's group does not reach it, and a stop
	// reaches its helpers (containerd's shims are re-parented and are stopped separately).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, pidPath: filepath.Join(c.runDir, name+".pid"), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	if err := os.WriteFile(p.pidPath, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"+bin+"\n"), 0o644); err != nil {
		p.stop(time.Second)
		return nil, err
	}
	c.procs = append(c.procs, p)
	c.logf("started %s (pid %d)", name, cmd.Process.Pid)
	return p, nil
}

// exitedError says that a component exited, with the end of its log.
type exitedError struct {
	name, state, log string
}

func (e *exitedError) Error() string {
	return fmt.Sprintf("%s exited (%s):\n%s", e.name, e.state, e.log)
}

// running reports an *exitedError when the process has exited.
func (p *process) running() error {
	select {
	case <-p.exited:
		return &exitedError{name: p.name, state: p.cmd.ProcessState.String(), log: TailFile(p.logPath, 3000)}
	default:
		return nil
	}
}

// stopTemporary stops a process started for one task (a containerd that removes an earlier
// run's pods) and takes it off the list of components, whose exit Running reports.
func (c *Cluster) stopTemporary(p *process) {
	p.stop(15 * time.Second)
	c.procs = slices.DeleteFunc(c.procs, func(q *process) bool { return q == p })
}

// stop sends SIGTERM, then SIGKILL to its process group after grace.
func (p *process) stop(grace time.Duration) {
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.exited
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // helpers left in its group
	_ = os.Remove(p.pidPath)
}

// stopRecorded stops the processes a previous run recorded in dir and did not stop: a pid
// is signalled only while it still runs the binary recorded with it.
func stopRecorded(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	var stopped []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pidText, bin, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		pid, err := strconv.Atoi(pidText)
		if err == nil && pid > 1 && runsBinary(pid, bin) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 10*time.Second)
			stopped = append(stopped, fmt.Sprintf("%s (pid %d)", filepath.Base(bin), pid))
		}
		_ = os.Remove(f)
	}
	return stopped
}

// runsBinary reports whether pid is alive and executes bin.
func runsBinary(pid int, bin string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	return strings.TrimSuffix(exe, " (deleted)") == bin
}

func waitGone(pid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		// A zombie child of ours is reaped by its Wait goroutine; one of another process
		// counts as gone.
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TailFile returns the last n bytes of a file, or the error reading it, for logs of a failure.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
