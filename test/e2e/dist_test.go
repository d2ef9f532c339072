// Package e2e runs the built otelcol-codexray distribution as a user would: real configs, real
// Prometheus, real processes stopped by pid. `make test` builds the distribution first and
// passes its path in CODEXRAY_DIST.
package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// repoRoot is the repository root, found from this file's location.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// distBinary returns the built distribution, or skips (fails in CI) when it is not built.
func distBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("CODEXRAY_DIST")
	if bin == "" {
		bin = filepath.Join(repoRoot(t), "_build", "otelcol-codexray")
	}
	_, err := os.Stat(bin)
	testutil.SkipUnlessPrivileged(t, err == nil, "distribution not built (run make build): %v", err)
	return bin
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// loggedProcess is a child whose stdout and stderr go to a file (read while it runs without
// racing with the writer), stopped by pid at cleanup.
type loggedProcess struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

func startLoggedProcess(t testing.TB, env []string, name string, args ...string) *loggedProcess {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(name)+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	f.Close()
	p := &loggedProcess{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("output of %s %v:\n%s", name, args, tail(string(b), 4000))
		}
	})
	return p
}

func (p *loggedProcess) requireRunning(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
		b, _ := os.ReadFile(p.logPath)
		t.Fatalf("%s exited: %s\n%s", p.cmd.Path, p.cmd.ProcessState, tail(string(b), 4000))
	default:
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// writeFile writes content into the test's temp dir and returns the path.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitFor polls cond until it returns true or the deadline passes.
func waitFor(ctx context.Context, t testing.TB, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
}

func kernelRelease(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// otlpBackend is a second otelcol-codexray standing in for an OTLP backend: it receives
// OTLP/gRPC at otlp and serves the metrics it got at prom (Prometheus text), with the listed
// resource attributes as labels.
type otlpBackend struct {
	*loggedProcess
	otlp, prom string
}

// startOTLPBackend starts one; with logs, the log records it receives are written to its log
// (logPath) by the debug exporter.
func startOTLPBackend(t testing.TB, bin string, logs bool, labels ...string) *otlpBackend {
	t.Helper()
	b := &otlpBackend{otlp: addr(freePort(t)), prom: addr(freePort(t))}
	debug, logsPipeline := "", ""
	if logs {
		debug = "\n  debug: {verbosity: detailed}"
		logsPipeline = "\n    logs: {receivers: [otlp], exporters: [debug]}"
	}
	b.loggedProcess = startLoggedProcess(t, nil, bin, "--config", writeFile(t, "backend.yaml", fmt.Sprintf(`
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
exporters:
  prometheus:
    endpoint: %s
    resource_constant_labels:
      included: [%s]%s
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    metrics: {receivers: [otlp], exporters: [prometheus]}%s
`, b.otlp, b.prom, strings.Join(labels, ", "), debug, logsPipeline)))
	return b
}
