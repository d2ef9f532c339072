package cluster

import (
	"bytes"
	"context"
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

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Stop stops every component and undoes the node's changes to the machine. It keeps only
// the components' logs (LogDir) for a look after a failure; the next Start removes them.
func (c *Cluster) Stop() {
	// The kubelet first, so that it neither restarts containers nor recreates what is
	// being removed; then the pods, while containerd runs; then the rest, newest first.
	for _, p := range []*process{c.kproxy, c.kubelet} {
		if p != nil {
			p.stop(20 * time.Second)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if answers(ctx) {
		if err := c.removePods(ctx, ""); err != nil {
			c.logf("removing pods: %v", err)
		} else {
			c.podsRemoved = true
		}
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(15 * time.Second)
	}
	c.keepLogs = true
	if err := c.Cleanup(); err != nil {
		c.logf("cleanup: %v", err)
	}
	c.unlock()
}

// Cleanup undoes whatever a run of the node left on the machine, whether it stopped or died:
// pods and their network namespaces (through the node's containerd, started again if it is
// not running), the node's processes (by recorded pid), shims and container processes (by
// the node's socket and cgroup root), mounts below its directories, its cgroups, its bridge,
// kube-proxy's iptables rules, the kubelet's log links and kernel settings. A machine that
// never ran the node is left as it is.
func (c *Cluster) Cleanup() error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	containerdConfig := filepath.Join(c.root, "containerd", "config.toml")
	if _, err := os.Stat(containerdConfig); err == nil && !c.podsRemoved {
		// Stop what the kubelet would restart before removing the pods.
		for _, name := range []string{"kubelet", "kube-proxy"} {
			stopRecordedOne(c.runDir, name)
		}
		if err := c.removePods(ctx, containerdConfig); err != nil {
			errs = append(errs, fmt.Errorf("removing pods: %w", err))
		}
	}
	if stopped := stopRecorded(c.runDir); len(stopped) > 0 {
		c.logf("stopped leftover processes: %s", strings.Join(stopped, ", "))
	}
	killShims()
	if err := killCgroupProcesses(); err != nil {
		errs = append(errs, err)
	}
	if _, err := os.Stat(filepath.Join(c.runDir, "kube-proxy.started")); err == nil {
		out, err := exec.Command(c.bin("kube-proxy"), "--cleanup").CombinedOutput()
		if err != nil {
			// It also tries IPVS, which these machines lack; what matters is that no
			// KUBE- chain is left, checked below.
			c.logf("kube-proxy --cleanup: %v: %s", err, lastLines(out, 5))
		}
		// kube-proxy keeps a copy of the kubelet's KUBE-FIREWALL chain (martian packets to
		// 127.0.0.0/8) and leaves it to the kubelet, which here makes no iptables chains.
		removeFirewallChain()
		if left := kubeChains(); len(left) > 0 {
			errs = append(errs, fmt.Errorf("iptables chains left after kube-proxy --cleanup: %v", left))
		}
		_ = os.Remove(filepath.Join(c.runDir, "kube-proxy.started"))
	}
	for _, dir := range []string{c.root, filepath.Dir(ContainerdSocket), filepath.Dir(PodLogsDir)} {
		if err := unmountBelow(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeCgroupRoot(); err != nil {
		errs = append(errs, err)
	}
	if err := deleteBridge(); err != nil {
		errs = append(errs, err)
	}
	removeLogLinks()
	if err := restoreSysctls(filepath.Join(c.runDir, "sysctl.saved")); err != nil {
		errs = append(errs, err)
	}
	if err := unshareRoot(filepath.Join(c.runDir, "root.private")); err != nil {
		errs = append(errs, err)
	}
	for _, dir := range []string{filepath.Dir(ContainerdSocket), filepath.Dir(PodLogsDir)} {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	entries, _ := os.ReadDir(c.root)
	failed := len(errs) > 0
	for _, e := range entries {
		if e.Name() == "logs" && c.keepLogs {
			continue // this run's logs stay until the next start
		}
		if e.Name() == "run" && failed {
			continue // what is still to undo (pids, saved settings) for the next Cleanup
		}
		if err := os.RemoveAll(filepath.Join(c.root, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func stopRecordedOne(dir, name string) {
	tmp, err := os.MkdirTemp(dir, "stop")
	if err != nil {
		return
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if os.Rename(filepath.Join(dir, name+".pid"), filepath.Join(tmp, name+".pid")) == nil {
		stopRecorded(tmp)
	}
}

// removePods stops and removes every pod sandbox of the node's containerd (their containers,
// network namespaces and IP allocations go with them), starting the containerd for that if
// it does not answer.
func (c *Cluster) removePods(ctx context.Context, config string) error {
	if !answers(ctx) {
		stopRecordedOne(c.runDir, "containerd")
		p, err := c.start("containerd-cleanup", "/usr/bin/containerd", "--config", config)
		if err != nil {
			return err
		}
		defer c.stopTemporary(p)
		if err := poll(ctx, 30*time.Second, func() error {
			if err := p.running(); err != nil {
				return err
			}
			if !answers(ctx) {
				return errors.New("containerd does not answer")
			}
			return nil
		}); err != nil {
			return err
		}
	}
	conn, err := grpc.NewClient("unix://"+ContainerdSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	var errs []error
	for _, sb := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, err)
		}
	}
	if len(list.Items) > 0 {
		c.logf("removed %d pod sandboxes", len(list.Items))
	}
	return errors.Join(errs...)
}

func answers(ctx context.Context) bool {
	if _, err := os.Stat(ContainerdSocket); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "ctr", "--address", ContainerdSocket, "version").Run() == nil
}

// killShims stops the containerd shims serving the node's socket (they outlive containerd).
func killShims() {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(b, []byte("containerd-shim")) {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if i := slices.Index(args, "-address"); i >= 0 && i+1 < len(args) && args[i+1] == ContainerdSocket {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				waitGone(pid, 5*time.Second)
			}
		}
	}
}

// killCgroupProcesses kills what still runs below the node's cgroup root: only the node's
// containers can be there.
func killCgroupProcesses() error {
	hier, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hier {
		root := filepath.Join(h, CgroupRoot)
		if _, err := os.Stat(root); err != nil {
			continue
		}
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
						_ = syscall.Kill(pid, syscall.SIGKILL)
						waitGone(pid, 5*time.Second)
					}
				}
			}
			return nil // an unreadable directory is removed (or reported) by removeCgroupRoot
		})
	}
	return nil
}

// removeCgroupRoot removes the node's cgroups, innermost first.
func removeCgroupRoot() error {
	hier, err := hierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hier {
		root := filepath.Join(h, CgroupRoot)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for try := 0; try < 50; try++ { // a killed process leaves its cgroup a moment later
				if err = syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// unmountBelow detaches every mount at or below dir, deepest first.
func unmountBelow(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, mp := range slices.Compact(points) {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("umount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount decodes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeLogLinks removes the kubelet's /var/log/containers links into the node's pod logs.
func removeLogLinks() {
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, PodLogsDir+"/") {
			_ = os.Remove(l)
		}
	}
}

// removeFirewallChain removes KUBE-FIREWALL and the INPUT and OUTPUT rules that jump to it.
func removeFirewallChain() {
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if exec.Command(cmd, "-w", "-n", "-L", "KUBE-FIREWALL").Run() != nil {
			continue
		}
		for _, chain := range []string{"INPUT", "OUTPUT"} {
			for range 10 { // one rule per jump, unless something added it twice
				if exec.Command(cmd, "-w", "-D", chain, "-j", "KUBE-FIREWALL").Run() != nil {
					break
				}
			}
		}
		_ = exec.Command(cmd, "-w", "-F", "KUBE-FIREWALL").Run()
		_ = exec.Command(cmd, "-w", "-X", "KUBE-FIREWALL").Run()
	}
}

// kubeChains lists the KUBE- chains in iptables (IPv4 and IPv6).
func kubeChains() []string {
	var left []string
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(cmd).Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, ":KUBE-") {
				left = append(left, cmd+" "+strings.Fields(line)[0][1:])
			}
		}
	}
	return left
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
