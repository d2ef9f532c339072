// Package testutil holds what the project's tests share: the rule for privileged tests (skip on
// a laptop, fail in CI) and access to the testbed daemons started by scripts/testbed.sh.
// Test code only; nothing outside _test.go files may import it.
package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequirePrivilegedEnv is the variable under which a privileged test that cannot run fails
// instead of skipping. .ci/run sets it.
const RequirePrivilegedEnv = "CODEXRAY_REQUIRE_PRIVILEGED"

// UnitOnlyEnv is set by `make unit`: every privileged test skips, also as root, so the fast
// loop needs no daemons, BPF, netlink or root. It contradicts RequirePrivilegedEnv.
const UnitOnlyEnv = "CODEXRAY_UNIT_ONLY"

// SkipUnlessPrivileged skips the test with the reason when the condition for running it is not
// met, or fails it when CODEXRAY_REQUIRE_PRIVILEGED=1: a privileged test never hides in CI.
// Under CODEXRAY_UNIT_ONLY=1 it skips whatever the condition.
func SkipUnlessPrivileged(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if os.Getenv(UnitOnlyEnv) == "1" {
		if os.Getenv(RequirePrivilegedEnv) == "1" {
			t.Fatalf("%s=1 and %s=1 contradict each other", UnitOnlyEnv, RequirePrivilegedEnv)
		}
		t.Skipf("privileged test skipped: %s=1 (make unit)", UnitOnlyEnv)
	}
	if ok {
		return
	}
	reason := fmt.Sprintf(format, args...)
	if os.Getenv(RequirePrivilegedEnv) == "1" {
		t.Fatalf("privileged test cannot run (%s=1): %s", RequirePrivilegedEnv, reason)
	}
	t.Skipf("privileged test skipped: %s (set %s=1 to make this a failure)", reason, RequirePrivilegedEnv)
}

// RequireRoot skips (or fails in CI) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	SkipUnlessPrivileged(t, os.Geteuid() == 0, "needs root")
}

// DockerImage is the registry-free busybox image that scripts/testbed.sh imports into dockerd
// and into the test containerd.
const DockerImage = "codexray-test/busybox:1"

// RequireDocker skips (or fails in CI) unless the testbed dockerd answers and has DockerImage.
func RequireDocker(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	err := exec.Command("docker", "image", "inspect", DockerImage).Run()
	SkipUnlessPrivileged(t, err == nil, "dockerd with %s not available (run scripts/testbed.sh up): %v", DockerImage, err)
}

// ContainerdSocket is where scripts/testbed.sh starts the test containerd (CRI enabled).
const ContainerdSocket = "/tmp/codexray-testbed/containerd/containerd.sock"

// RequireContainerd skips (or fails in CI) unless the testbed containerd and crictl answer.
func RequireContainerd(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	_, statErr := os.Stat(ContainerdSocket)
	_, lookErr := exec.LookPath("crictl")
	SkipUnlessPrivileged(t, statErr == nil && lookErr == nil,
		"testbed containerd/crictl not available (run scripts/testbed.sh up): %v %v", statErr, lookErr)
}

// Crictl returns a crictl command pointed at the testbed containerd.
func Crictl(args ...string) *exec.Cmd {
	full := append([]string{"--runtime-endpoint", "unix://" + ContainerdSocket, "--image-endpoint", "unix://" + ContainerdSocket, "--timeout", "20s"}, args...)
	return exec.Command("crictl", full...)
}

// CrictlOutput runs crictl against the testbed containerd and returns its stdout, trimmed; a
// failure fails the test with crictl's stderr.
func CrictlOutput(t testing.TB, args ...string) string {
	t.Helper()
	cmd := Crictl(args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crictl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// JournaldSocket is the native socket of the journald started by scripts/testbed.sh.
const JournaldSocket = "/run/systemd/journal/socket"

// RequireJournald skips (or fails in CI) unless journald is listening.
func RequireJournald(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	// A socket file outlives a killed journald: only a datagram that is accepted proves it runs.
	conn, err := net.Dial("unixgram", JournaldSocket)
	if err == nil {
		_ = conn.Close()
	}
	SkipUnlessPrivileged(t, err == nil, "journald not running (run scripts/testbed.sh up): %v", err)
}
