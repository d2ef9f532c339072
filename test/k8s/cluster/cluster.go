package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/codexray/codexray-node-agent/test/k8s/cluster/ociimage"
)

// Names and places of the node, all of its own.
const (
	NodeName = "cxk8s-node"
	// CgroupRoot is the kubelet's cgroup root: every pod's cgroup is below /cxk8s/kubepods.
	CgroupRoot = "/cxk8s"
	// ContainerdSocket is the node's containerd. Below /run, so that the DaemonSet's mount
	// of the host's /run reaches it, and not at containerd's default path, where dockerd
	// would take it for the system containerd.
	ContainerdSocket = "/run/cxk8s/containerd.sock"
	// PodLogsDir is the kubelet's podLogsDir. Not the default /var/log/pods: the kubelet
	// deletes every directory there that is not one of its pods.
	PodLogsDir = "/var/log/cxk8s/pods"
	// DefaultRoot holds everything else: certificates, etcd's data, containerd's and the
	// kubelet's state, logs, pid files.
	DefaultRoot = "/tmp/cxk8s"
	// BusyboxImage and PauseImage are imported into the node's containerd at start.
	BusyboxImage = "docker.io/cxk8s/busybox:1"
	PauseImage   = "docker.io/cxk8s/pause:1"
	cgroupfs     = "/sys/fs/cgroup"
)

// Binaries the node runs, looked up in Config.BinDir.
var Binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}

// Config says where the binaries are and where the node keeps its state.
type Config struct {
	BinDir string
	Root   string // DefaultRoot when empty
	Logf   func(format string, args ...any)
}

// Cluster is a running single-node cluster.
type Cluster struct {
	cfg                              Config
	root, runDir, logDir, pkiDir     string
	procs                            []*process
	api                              *Client
	apiServer                        string
	etcd, apiserver, kubelet, kproxy *process
	keepLogs                         bool // Stop keeps the logs of the run it ends
	podsRemoved                      bool // Stop removed them while containerd ran
	lock                             *os.File
}

func (c *Cluster) logf(format string, args ...any) {
	if c.cfg.Logf != nil {
		c.cfg.Logf(format, args...)
	}
}

func (c *Cluster) path() string {
	return c.cfg.BinDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.cfg.BinDir, name) }

// API is a client of the API server with cluster-admin rights.
func (c *Cluster) API() *Client { return c.api }

// LogDir holds every component's output.
func (c *Cluster) LogDir() string { return c.logDir }

// Root is where the node keeps its state.
func (c *Cluster) Root() string { return c.root }

// Start brings the node up: it first undoes whatever an earlier run left behind, then starts
// every component and waits until the node is Ready. On error everything started so far is
// stopped again and the end of each component's log is logged.
//
// One node runs on a machine at a time: Start waits for the machine's lock (LockFile) that
// Stop releases. Two runs at once would each take the other's leftovers for an earlier
// run's and remove them (pods, processes, logs).
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Root == "" {
		cfg.Root = DefaultRoot
	}
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil {
			return nil, fmt.Errorf("binary %s: %w (scripts/k8s-binaries.sh builds them)", b, err)
		}
	}
	c := &Cluster{cfg: cfg, root: cfg.Root}
	lock, err := lockMachine(ctx, LockFile, c.logf)
	if err != nil {
		return nil, err
	}
	c.lock = lock
	c.runDir, c.logDir, c.pkiDir = filepath.Join(c.root, "run"), filepath.Join(c.root, "logs"), filepath.Join(c.root, "pki")
	if err := c.bringUp(ctx); err != nil {
		c.logf("start failed: %v; stopping what was started", err)
		var exited *exitedError
		errors.As(err, &exited)
		for _, p := range c.procs {
			if exited == nil || exited.name != p.name { // the error has that one's log
				c.logf("%s log:\n%s", p.name, TailFile(p.logPath, 3000))
			}
		}
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) bringUp(ctx context.Context) error {
	if err := c.Cleanup(); err != nil {
		return fmt.Errorf("cleaning up an earlier run: %w", err)
	}
	for _, d := range []string{c.runDir, c.logDir, c.pkiDir, filepath.Dir(ContainerdSocket), PodLogsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := saveSysctls(filepath.Join(c.runDir, "sysctl.saved")); err != nil {
		return err
	}
	if err := shareRoot(filepath.Join(c.runDir, "root.private")); err != nil {
		return err
	}
	if err := addBridge(); err != nil {
		return err
	}
	if err := makeCgroupRoot(); err != nil {
		return err
	}
	steps := []struct {
		what string
		fn   func(context.Context) error
	}{
		{"certificates", c.writePKI},
		{"etcd", c.startEtcd},
		{"containerd", c.startContainerd},
		{"images", c.importBaseImages},
		{"kube-apiserver", c.startAPIServer},
		{"controllers", c.startControllers},
		{"kubelet", c.startKubelet},
		{"kube-proxy", c.startKubeProxy},
	}
	for _, s := range steps {
		t0 := time.Now()
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		c.logf("%s ready in %s", s.what, time.Since(t0).Round(100*time.Millisecond))
	}
	return nil
}

// Running reports the first component that has exited.
func (c *Cluster) Running() error {
	for _, p := range c.procs {
		if err := p.running(); err != nil {
			return err
		}
	}
	return nil
}

// freePort is a TCP port nobody listens on at host right now.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

func (c *Cluster) writePKI(context.Context) error {
	ca, err := newAuthority()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.pkiDir, "ca.crt"), ca.certPEM, 0o644); err != nil {
		return err
	}
	port, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	c.apiServer = fmt.Sprintf("https://127.0.0.1:%d", port)
	serving, err := ca.issue(identity{
		user:  "kube-apiserver",
		ips:   []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(NodeIP), net.ParseIP(APIServiceIP)},
		names: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	})
	if err != nil {
		return err
	}
	if _, _, err := serving.write(c.pkiDir, "apiserver"); err != nil {
		return err
	}
	kubeletServing, err := ca.issue(identity{user: "system:node:" + NodeName, ips: []net.IP{net.ParseIP(NodeIP)}, names: []string{NodeName}})
	if err != nil {
		return err
	}
	if _, _, err := kubeletServing.write(c.pkiDir, "kubelet-serving"); err != nil {
		return err
	}
	if _, _, err := serviceAccountKey(c.pkiDir); err != nil {
		return err
	}
	clients := []struct {
		file string
		id   identity
	}{
		{"admin", identity{user: "cxk8s-admin", groups: []string{"system:masters"}}},
		{"apiserver-kubelet-client", identity{user: "kube-apiserver-kubelet-client", groups: []string{"system:masters"}}},
		{"kubelet", identity{user: "system:node:" + NodeName, groups: []string{"system:nodes"}}},
		{"controller-manager", identity{user: "system:kube-controller-manager"}},
		{"scheduler", identity{user: "system:kube-scheduler"}},
		{"kube-proxy", identity{user: "system:kube-proxy", groups: []string{"system:node-proxier"}}},
	}
	for _, cl := range clients {
		l, err := ca.issue(cl.id)
		if err != nil {
			return err
		}
		if _, _, err := l.write(c.pkiDir, cl.file); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(c.pkiDir, cl.file+".kubeconfig"), kubeconfig(c.apiServer, ca.certPEM, l), 0o600); err != nil {
			return err
		}
		if cl.file == "admin" {
			if c.api, err = newClient(c.apiServer, ca.certPEM, l.certPEM, l.keyPEM); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Cluster) pki(name string) string { return filepath.Join(c.pkiDir, name) }

func (c *Cluster) startEtcd(ctx context.Context) error {
	client, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	peer, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	clientURL, peerURL := fmt.Sprintf("http://127.0.0.1:%d", client), fmt.Sprintf("http://127.0.0.1:%d", peer)
	c.etcd, err = c.start("etcd", c.bin("etcd"),
		"--name=cxk8s", "--data-dir="+filepath.Join(c.root, "etcd"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=cxk8s="+peerURL,
		// A throw-away store on a disk other runs share: no fsync.
		"--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.runDir, "etcd.url"), []byte(clientURL), 0o644); err != nil {
		return err
	}
	return poll(ctx, 60*time.Second, func() error {
		if err := c.etcd.running(); err != nil {
			return err
		}
		resp, err := httpGet(clientURL + "/health")
		if err != nil {
			return err
		}
		if !strings.Contains(resp, `"health":"true"`) {
			return fmt.Errorf("etcd /health: %s", resp)
		}
		return nil
	})
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	etcdURL, err := os.ReadFile(filepath.Join(c.runDir, "etcd.url"))
	if err != nil {
		return err
	}
	port := c.apiServer[strings.LastIndexByte(c.apiServer, ':')+1:]
	c.apiserver, err = c.start("kube-apiserver", c.bin("kube-apiserver"),
		"--etcd-servers="+string(etcdURL),
		"--bind-address=127.0.0.1", "--secure-port="+port, "--advertise-address="+NodeIP,
		"--tls-cert-file="+c.pki("apiserver.crt"), "--tls-private-key-file="+c.pki("apiserver.key"),
		"--client-ca-file="+c.pki("ca.crt"),
		"--kubelet-client-certificate="+c.pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+c.pki("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+c.pki("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+c.pki("sa.pub"),
		"--service-account-signing-key-file="+c.pki("sa.key"),
		"--service-cluster-ip-range="+ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		// No privileged container is admitted: the agent must run with its capability list.
		"--allow-privileged=false",
		// Nothing in the pods talks to the API server (it listens on loopback only): the
		// "kubernetes" Service needs no endpoints.
		"--endpoint-reconciler-type=none",
		"--profiling=false")
	if err != nil {
		return err
	}
	return poll(ctx, 120*time.Second, func() error {
		if err := c.apiserver.running(); err != nil {
			return err
		}
		body, err := c.api.raw(ctx, "GET", "/readyz", nil, "")
		if err != nil {
			return err
		}
		if string(body) != "ok" {
			return fmt.Errorf("/readyz: %s", body)
		}
		return nil
	})
}

func (c *Cluster) startControllers(ctx context.Context) error {
	_, err := c.start("kube-controller-manager", c.bin("kube-controller-manager"),
		"--kubeconfig="+c.pki("controller-manager.kubeconfig"),
		"--service-account-private-key-file="+c.pki("sa.key"),
		"--root-ca-file="+c.pki("ca.crt"),
		"--use-service-account-credentials=true",
		"--leader-elect=false", "--secure-port=0", "--profiling=false")
	if err != nil {
		return err
	}
	_, err = c.start("kube-scheduler", c.bin("kube-scheduler"),
		"--kubeconfig="+c.pki("scheduler.kubeconfig"),
		"--leader-elect=false", "--secure-port=0", "--profiling=false")
	if err != nil {
		return err
	}
	// The service-account controller has created kube-system's default account once the
	// controllers work.
	return poll(ctx, 90*time.Second, func() error {
		if err := c.Running(); err != nil {
			return err
		}
		return c.api.Get(ctx, "/api/v1/namespaces/kube-system/serviceaccounts/default", nil)
	})
}

func (c *Cluster) startKubeProxy(ctx context.Context) error {
	metrics, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	healthz, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	// Cleanup runs kube-proxy --cleanup (iptables) only after a run that started kube-proxy.
	if err := os.WriteFile(filepath.Join(c.runDir, "kube-proxy.started"), nil, 0o644); err != nil {
		return err
	}
	c.kproxy, err = c.start("kube-proxy", c.bin("kube-proxy"),
		"--kubeconfig="+c.pki("kube-proxy.kubeconfig"),
		"--hostname-override="+NodeName,
		"--proxy-mode=iptables",
		"--cluster-cidr="+PodCIDR,
		// Machine-wide settings stay as they are: conntrack table size and timeouts, and
		// route_localnet (only needed for NodePorts on 127.0.0.1).
		"--conntrack-max-per-core=0",
		"--conntrack-tcp-timeout-established=0",
		"--conntrack-tcp-timeout-close-wait=0",
		"--iptables-localhost-nodeports=false",
		"--nodeport-addresses="+NodeIP+"/32",
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metrics),
		fmt.Sprintf("--healthz-bind-address=127.0.0.1:%d", healthz),
		"--profiling=false")
	if err != nil {
		return err
	}
	return poll(ctx, 60*time.Second, func() error {
		if err := c.kproxy.running(); err != nil {
			return err
		}
		_, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz))
		return err
	})
}

// makeCgroupRoot creates CgroupRoot in every hierarchy (the kubelet refuses a cgroup root
// that does not exist); cpuset's needs the parent's CPUs and memory nodes before anything can
// join a cgroup below it.
func makeCgroupRoot() error {
	hier, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hier {
		dir := filepath.Join(h, CgroupRoot)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// hierarchies lists the mounted cgroup hierarchies below /sys/fs/cgroup (v1 controllers and
// a hybrid's unified one), or /sys/fs/cgroup itself on a pure cgroup v2 host.
func hierarchies() ([]string, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(cgroupfs, &st); err != nil {
		return nil, err
	}
	const cgroup2Magic = 0x63677270
	if st.Type == cgroup2Magic {
		return []string{cgroupfs}, nil
	}
	entries, err := os.ReadDir(cgroupfs)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(cgroupfs, e.Name())
		if e.IsDir() && isMountPoint(p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func isMountPoint(p string) bool {
	var st, parent syscall.Stat_t
	if syscall.Stat(p, &st) != nil || syscall.Stat(filepath.Dir(p), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// importBaseImages builds the busybox and pause images from the host's busybox and imports
// them; every pod needs the pause image, the workloads run busybox.
func (c *Cluster) importBaseImages(ctx context.Context) error {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox (busybox-static) not installed: %w", err)
	}
	files, err := ociimage.Busybox(busybox)
	if err != nil {
		return err
	}
	for _, d := range []string{"/tmp", "/proc", "/sys", "/dev", "/etc", "/var/log"} {
		files = append(files, ociimage.File{Path: d, Mode: os.ModeDir | 0o755})
	}
	images := []ociimage.Image{
		{Name: BusyboxImage, Files: files, Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}},
		// The sandbox's only process: sleeps until the runtime kills it.
		{Name: PauseImage, Files: files, Entrypoint: []string{"/bin/sleep", "2147483647"}},
	}
	for i := range images {
		if err := c.ImportImage(ctx, &images[i]); err != nil {
			return err
		}
	}
	return nil
}

// ImportImage writes the image as an OCI layout and imports it into the node's containerd
// (namespace k8s.io, where the CRI finds it), unpacked: a pod with imagePullPolicy
// IfNotPresent or Never runs it without any registry.
func (c *Cluster) ImportImage(ctx context.Context, img *ociimage.Image) error {
	tarball := filepath.Join(c.root, "images", strings.NewReplacer("/", "_", ":", "_").Replace(img.Name)+".tar")
	if err := os.MkdirAll(filepath.Dir(tarball), 0o755); err != nil {
		return err
	}
	if err := img.WriteFile(tarball); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "ctr", "--address", ContainerdSocket, "--namespace", "k8s.io",
		"images", "import", "--all-platforms", tarball).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import %s: %w: %s", img.Name, err, out)
	}
	out, err = exec.CommandContext(ctx, "ctr", "--address", ContainerdSocket, "--namespace", "k8s.io", "images", "ls", "-q").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images ls: %w: %s", err, out)
	}
	if !strings.Contains(string(out), img.Name) {
		return fmt.Errorf("image %s not listed after import: %s", img.Name, out)
	}
	c.logf("imported %s", img.Name)
	return nil
}

func poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return nil
		}
		// A component that exited does not come back: waiting on would only hide its log.
		if errors.As(err, new(*exitedError)) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
