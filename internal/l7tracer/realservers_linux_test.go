package l7tracer

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/l7"
	"github.com/codexray/codexray-node-agent/internal/l7/requeststats"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// Real servers and clients, each in a cgroup of its own, with the TCP tracer and the L7
// capture running: every request must be counted exactly once per status at the client
// (outbound, towards the server's address) and at the server (inbound), and the requests made
// slow by injectedDelay must show in the duration histograms at both ends.
//
// To add a protocol: one serverCase row with a server (a Debian package's daemon started by
// startProcess in the server cgroup, or a helper role of helpers_linux_test.go), a client (its
// CLI, or a helper role) and the expected counts.

// serverCase is one protocol against one real server.
type serverCase struct {
	name string
	// server starts the server in cg and returns its address (127.0.0.1:port).
	server func(t *testing.T, cg *cgroup) string
	// client runs the client workload against addr in cg until it is done.
	client func(t *testing.T, cg *cgroup, addr string)
	proto  l7.Protocol // the metrics family (HTTP/2 and gRPC count as HTTP)
	// out and in are the expected counts per status label ("method status" for RabbitMQ and
	// NATS) at the client and at the server.
	out, in map[string]uint64
	// expect, when set, gives out and in once the client is done (counts a peer reported).
	expect func(t *testing.T) (out, in map[string]uint64)
	slow   uint64 // requests made slow by injectedDelay
	needs  string // an executable the case needs (installed by scripts/install-deps.sh)
	// dns: the counts are DNS's, "type domain status" at the client and "status" at the
	// server, and ipToFQDN the pair its answers teach.
	dns      bool
	ipToFQDN [2]string
}

func serverCases() []serverCase {
	httpPaths := "/ok /ok /missing /fail /slow /ok /missing"
	httpWant := map[string]uint64{"200": 4, "404": 2, "500": 1}
	grpcMethods := "Get Get Missing Slow Get"
	grpcWant := map[string]uint64{"grpc:OK": 4, "grpc:NotFound": 1}
	return []serverCase{
		{
			name: "net/http keep-alive", proto: l7.ProtocolHTTP, out: httpWant, in: httpWant, slow: 1,
			server: helperServer("http-server"), client: helperClient("http-client", httpPaths),
		},
		{
			name: "net/http pipelining", proto: l7.ProtocolHTTP, out: httpWant, in: httpWant, slow: 1,
			server: helperServer("http-server"), client: helperClient("http-pipeline", httpPaths),
		},
		{
			name: "net/http h2c", proto: l7.ProtocolHTTP, out: httpWant, in: httpWant, slow: 1,
			server: helperServer("h2c-server"), client: helperClient("h2c-client", httpPaths),
		},
		{
			name: "grpc-go", proto: l7.ProtocolHTTP, out: grpcWant, in: grpcWant, slow: 1,
			server: helperServer("grpc-server"), client: helperClient("grpc-client", grpcMethods),
		},
		{
			// redis-cli sends the commands of its stdin on one connection; --pipe writes them all
			// at once (a pipeline). INCR of a string fails; BLPOP with a timeout waits it out.
			name: "redis-server with redis-cli", proto: l7.ProtocolRedis, needs: "redis-server",
			// redis-cli asks COMMAND DOCS first: one more ok.
			out: map[string]uint64{"ok": 6, "failed": 1}, in: map[string]uint64{"ok": 6, "failed": 1}, slow: 1,
			server: redisServer, client: redisCLI("SET k v\nGET k\nINCR k\nBLPOP nolist 0.06\nPING\nDEL k\n", false),
		},
		{
			// 30 commands in one write (within the 1024 bytes captured of it), then redis-cli's own
			// ECHO that tells it the last reply came: 31.
			name: "redis-server pipeline", proto: l7.ProtocolRedis, needs: "redis-server",
			out: map[string]uint64{"ok": 31}, in: map[string]uint64{"ok": 31},
			server: redisServer, client: redisCLI(strings.Repeat("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", 30), true),
		},
		{
			// curl reuses one connection for its URLs; nginx answers from its config.
			name: "nginx with curl", proto: l7.ProtocolHTTP, needs: "nginx",
			out: map[string]uint64{"200": 3, "404": 2, "500": 1}, in: map[string]uint64{"200": 3, "404": 2, "500": 1},
			server: nginxServer, client: curl("/ok", "/ok", "/missing", "/fail", "/nothing", "/ok"),
		},
		{
			// The text protocol on one connection: set, get (a hit and a miss), delete of a missing
			// key (NOT_FOUND answers the question: ok), incr of a string (CLIENT_ERROR: failed).
			name: "memcached", proto: l7.ProtocolMemcached, needs: "memcached",
			out: map[string]uint64{"ok": 4, "failed": 1}, in: map[string]uint64{"ok": 4, "failed": 1},
			server: memcachedServer, client: helperClient("raw-client", "set k 0 0 1\r\nv\r\n|get k\r\n|get nokey\r\n|delete nokey\r\n|incr k 1\r\n"),
		},
		{
			// Go's resolver asks dnsmasq (bound to an address of this test on port 53) for A
			// records: a name it answers twice, one it does not know.
			name: "dnsmasq with Go's resolver", proto: l7.ProtocolDNS, needs: "dnsmasq", dns: true,
			out:      map[string]uint64{"TypeA example.test ok": 2, "TypeA missing.test nxdomain": 1},
			in:       map[string]uint64{"ok": 2, "nxdomain": 1},
			ipToFQDN: [2]string{"10.1.2.3", "example.test"},
			server:   dnsmasqServer, client: helperClient("dns-client", "example.test example.test missing.test"),
		},
		{
			// h2c and gRPC: the call to Hang gives up before an answer, and the client resets
			// the stream (RST_STREAM CANCEL): grpc:Canceled at both ends, after 2×injectedDelay.
			name: "grpc-go with a stream reset", proto: l7.ProtocolHTTP,
			out: map[string]uint64{"grpc:OK": 2, "grpc:Canceled": 1}, in: map[string]uint64{"grpc:OK": 2, "grpc:Canceled": 1}, slow: 1,
			server: helperServer("grpc-server"), client: helperClient("grpc-client", "Get Hang Get"),
		},
		{
			// DNS over TCP: Go's resolver frames its queries for a stream connection. Nothing
			// at dnsmasq: it reads the 2-byte length a byte at a time, then the message, and the
			// kernel side detects a protocol within one syscall's bytes (a known gap).
			name: "dnsmasq over TCP", proto: l7.ProtocolDNS, needs: "dnsmasq", dns: true,
			out:      map[string]uint64{"TypeA example.test ok": 2, "TypeA missing.test nxdomain": 1},
			in:       map[string]uint64{},
			ipToFQDN: [2]string{"10.1.2.3", "example.test"},
			server:   dnsmasqServer, client: helperClient("dns-tcp-client", "example.test example.test missing.test"),
		},
		{
			// The text protocol (go-sql-driver/mysql, statements without arguments): COM_QUERY
			// each; a missing table fails.
			name: "mariadb with COM_QUERY", proto: l7.ProtocolMySQL, needs: "mariadbd",
			out: map[string]uint64{"ok": 3, "failed": 1}, in: map[string]uint64{"ok": 3, "failed": 1}, slow: 1,
			server: mariadbServer, client: func(t *testing.T, cg *cgroup, addr string) {
				t.Helper()
				peerClient(t, cg, "mysql-query-client", "root@tcp("+addr+")/mysql")
			},
		},
		{
			// The binary protocol (go-sql-driver/mysql): 3 prepares (one fails on a missing
			// table), 3 executes (one sleeps); COM_STMT_CLOSE gets no answer.
			name: "mariadb with prepared statements", proto: l7.ProtocolMySQL, needs: "mariadbd",
			out: map[string]uint64{"ok": 5, "failed": 1}, in: map[string]uint64{"ok": 5, "failed": 1}, slow: 1,
			server: mariadbServer, client: func(t *testing.T, cg *cgroup, addr string) {
				t.Helper()
				peerClient(t, cg, "mysql-client", "root@tcp("+addr+")/mysql")
			},
		},
		{
			// AMQP 0-9-1: three messages published and delivered back (amqp091-go); coroot
			// counts messages at the client only.
			name: "rabbitmq-server with amqp091-go", proto: l7.ProtocolRabbitMQ, needs: "/usr/lib/rabbitmq/bin/rabbitmq-server",
			out: map[string]uint64{"produce ok": 3, "consume ok": 3}, in: map[string]uint64{},
			server: rabbitmqServer, client: func(t *testing.T, cg *cgroup, addr string) {
				t.Helper()
				peerClient(t, cg, "amqp-client", "amqp://guest:guest@"+addr+"/")
			},
		},
		{
			// NATS: three messages published to a subscription of the same connection.
			name: "nats-server", proto: l7.ProtocolNATS, needs: "nats-server",
			out: map[string]uint64{"produce ok": 3, "consume ok": 3}, in: map[string]uint64{},
			server: natsServer, client: helperClient("nats-client", "one|two|three"),
		},
		{
			// zkCli: create, get, get of a missing node (NONODE answers the question: ok), set,
			// an ACL that leaves only reading, a set refused (NOAUTH: failed). ZooKeeper has no
			// request that waits on the server's side: no slow one. Nothing at the server: it
			// reads each request's 4-byte length alone, then its body, and the kernel side
			// detects a protocol within one syscall's bytes (a known gap).
			name: "zookeeper with zkCli", proto: l7.ProtocolZooKeeper, needs: "/usr/share/zookeeper/bin/zkCli.sh",
			out: map[string]uint64{"ok": 5, "failed": 1}, in: map[string]uint64{},
			server: zookeeperServer, client: zkCli("create /l7test x\nget /l7test\nget /l7missing\nset /l7test y\nsetAcl /l7test world:anyone:r\nset /l7test z\n"),
		},
		kafkaCase(),
		{
			// FerretDB (SQLite) with a raw OP_MSG client: hello, insert, find, a delayed find,
			// an unknown command (ok: 0), a duplicate key (writeErrors). FerretDB listens on a
			// Unix socket; the server end measured is peers' TCP forwarder in front of it, in
			// the same process (the delay is the forwarder's).
			name: "ferretdb with OP_MSG", proto: l7.ProtocolMongo,
			out: map[string]uint64{"ok": 4, "failed": 2}, in: map[string]uint64{"ok": 4, "failed": 2}, slow: 1,
			server: peerServer("ferretdb", func(t *testing.T) string {
				t.Helper()
				return t.TempDir()
			}),
			client: func(t *testing.T, cg *cgroup, addr string) {
				t.Helper()
				peerClient(t, cg, "mongo-client", addr)
			},
		},
		{
			// CQL v4 from the specification: OPTIONS and STARTUP (not counted), two queries,
			// one delayed, two in flight answered in the other order (one error).
			name: "cassandra v4 fixture", proto: l7.ProtocolCassandra,
			out: map[string]uint64{"ok": 3, "failed": 1}, in: map[string]uint64{"ok": 3, "failed": 1}, slow: 1,
			server: helperServer("fixture-server", "cql-v4"), client: helperClient("fixture-client", "cql-v4"),
		},
		{
			// CQL v5: the handshake in v4 framing, then segments with CRC24 headers (one the
			// Python driver wrote), two envelopes in one segment. The kernel detects the
			// connection at its first segment (not at the handshake's version-5 frames).
			name: "cassandra v5 fixture", proto: l7.ProtocolCassandra,
			out: map[string]uint64{"ok": 3, "failed": 1}, in: map[string]uint64{"ok": 3, "failed": 1}, slow: 1,
			server: helperServer("fixture-server", "cql-v5"), client: helperClient("fixture-client", "cql-v5"),
		},
		{
			// ClickHouse native: Hello (not counted), a query, a delayed one, an exception, a
			// ping (not counted).
			name: "clickhouse fixture", proto: l7.ProtocolClickHouse,
			out: map[string]uint64{"ok": 2, "failed": 1}, in: map[string]uint64{"ok": 2, "failed": 1}, slow: 1,
			server: helperServer("fixture-server", "clickhouse"), client: helperClient("fixture-client", "clickhouse"),
		},
		{
			// pgx with sslmode=prefer: an SSLRequest answered 'N', then the queries in clear.
			name: "postgresql with pgx after an SSLRequest", proto: l7.ProtocolPostgres, needs: "psql",
			out: map[string]uint64{"ok": 3, "failed": 1}, in: map[string]uint64{"ok": 3, "failed": 1}, slow: 1,
			server: postgresServer, client: pgxClientSSL("SELECT 1; SELECT pg_sleep(0.06); SELECT * FROM no_such_table; SELECT 2", "prefer"),
		},
		{
			name: "postgresql with psql (simple query)", proto: l7.ProtocolPostgres, needs: "psql",
			out: map[string]uint64{"ok": 3, "failed": 1}, in: map[string]uint64{"ok": 3, "failed": 1}, slow: 1,
			server: postgresServer, client: psql("SELECT 1;\nSELECT pg_sleep(0.06);\nSELECT * FROM no_such_table;\nSELECT 2;\n"),
		},
		{
			name: "postgresql with pgx (extended query)", proto: l7.ProtocolPostgres, needs: "psql",
			out: map[string]uint64{"ok": 3, "failed": 1}, in: map[string]uint64{"ok": 3, "failed": 1}, slow: 1,
			server: postgresServer, client: pgxClient("SELECT 1; SELECT pg_sleep(0.06); SELECT * FROM no_such_table; SELECT 2"),
		},
	}
}

func TestRealServers(t *testing.T) {
	testutil.RequireRoot(t)
	cgroups := &cgroupResolver{ids: map[uint64]containers.ID{}}
	_, lt := startTracers(t, cgroups, true)
	for i, tc := range serverCases() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needs != "" {
				_, err := exec.LookPath(tc.needs)
				testutil.SkipUnlessPrivileged(t, err == nil, "%s not installed (scripts/install-deps.sh test installs it): %v", tc.needs, err)
			}
			srv, cl := newCgroup(t, cgroups, fmt.Sprintf("s%d", i)), newCgroup(t, cgroups, fmt.Sprintf("c%d", i))
			addr := tc.server(t, srv)
			tc.client(t, cl, addr)
			if tc.expect != nil {
				tc.out, tc.in = tc.expect(t)
			}
			if tc.dns {
				checkDNS(t, lt, cl.id, false, tc.out)
				checkDNS(t, lt, srv.id, true, tc.in)
				checkIPToFQDN(t, lt, tc.ipToFQDN)
				return
			}
			checkEnd(t, lt, cl.id, tc.proto, false, addr, tc.out, tc.slow)
			checkEnd(t, lt, srv.id, tc.proto, true, "", tc.in, tc.slow)
		})
	}
}

// checkEnd waits until one end's counts equal want, then checks its histogram.
func checkEnd(t *testing.T, lt *Tracer, id containers.ID, proto l7.Protocol, inbound bool, dst string, want map[string]uint64, slow uint64) {
	t.Helper()
	counts := func(st *requeststats.ContainerStats) map[string]uint64 {
		out := map[string]uint64{}
		for _, r := range st.Requests {
			if r.Inbound == inbound && (inbound || r.Destination == dst) {
				key := r.Protocol.String() + " " + r.Status.Label()
				if m := r.Method.String(); m != "" {
					key = r.Protocol.String() + " " + m + " " + r.Status.Label()
				}
				out[key] += r.Count
			}
		}
		return out
	}
	wantKeys := map[string]uint64{}
	var total uint64
	for s, n := range want {
		wantKeys[proto.String()+" "+s] = n
		total += n
	}
	var st requeststats.ContainerStats
	deadline := time.Now().Add(10 * time.Second)
	for {
		lt.ContainerStats(id, &st)
		got := counts(&st)
		if fmt.Sprint(got) == fmt.Sprint(wantKeys) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inbound=%v: counts %v, want %v (all the requests of the end: %+v; stats %+v)", inbound, got, wantKeys, st.Requests, lt.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if l7.Metrics(proto).Duration == "" {
		return // RabbitMQ and NATS: messages, no durations
	}
	var hist *requeststats.DurationHistogram
	for i := range st.Durations {
		if h := &st.Durations[i]; h.Inbound == inbound && (inbound || h.Destination == dst) {
			hist = h
		}
	}
	if total == 0 && hist == nil {
		return // an end the capture does not see (the known gaps of the cases)
	}
	if hist == nil || hist.Count != total {
		t.Fatalf("inbound=%v: histogram %+v, want %d observations", inbound, hist, total)
	}
	var above uint64 // observations above the bucket bound just below the injected delay (0.05 s)
	for i, b := range l7.HistogramBuckets {
		if b >= 0.05 {
			for _, n := range hist.Counts[i+1:] {
				above += n
			}
			break
		}
	}
	if above < slow || hist.Sum < float64(slow)*injectedDelay.Seconds() {
		t.Errorf("inbound=%v: %d observations above 50 ms (sum %.3f s), want ≥ %d slow ones of %s", inbound, above, hist.Sum, slow, injectedDelay)
	}
}

// checkDNS waits until one end's DNS counts equal want, then checks its histogram.
func checkDNS(t *testing.T, lt *Tracer, id containers.ID, inbound bool, want map[string]uint64) {
	t.Helper()
	var st requeststats.ContainerStats
	var total uint64
	for _, n := range want {
		total += n
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		lt.ContainerStats(id, &st)
		got := map[string]uint64{}
		for _, d := range st.DNS {
			if d.Inbound != inbound {
				continue
			}
			key := d.Status.Label()
			if !inbound {
				key = d.RequestType + " " + d.Domain + " " + key
			}
			got[key] += d.Count
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inbound=%v: DNS counts %v, want %v (stats %+v)", inbound, got, want, lt.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range st.DNSDurations {
		if h := &st.DNSDurations[i]; h.Inbound == inbound && (h.Count != total || h.Sum <= 0) {
			t.Errorf("inbound=%v: DNS histogram %+v, want %d observations", inbound, h, total)
		}
	}
}

func checkIPToFQDN(t *testing.T, lt *Tracer, want [2]string) {
	t.Helper()
	found := false
	lt.IPToFQDN(func(ip netip.Addr, fqdn string) {
		if ip.String() == want[0] && fqdn == want[1] {
			found = true
		}
	})
	if !found {
		t.Errorf("no ip_to_fqdn pair %s → %s", want[0], want[1])
	}
}

// cgroupResolver attributes the cgroups the test created to their names.
type cgroupResolver struct {
	mu  sync.Mutex
	ids map[uint64]containers.ID
}

func (r *cgroupResolver) ContainerIDByCgroupID(id uint64) (containers.ID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.ids[id]
	return c, ok
}

func (r *cgroupResolver) ContainerIDByPID(uint32) (containers.ID, bool) { return "", false }

// cgroup is a cgroup v2 directory the test created; processes start in it.
type cgroup struct {
	id   containers.ID
	path string
	fd   int
}

// cgroup2Root is where cgroup v2 is mounted: alone, or beside v1 controllers (hybrid).
func cgroup2Root(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st syscall.Statfs_t
		if syscall.Statfs(p, &st) == nil && st.Type == 0x63677270 { // CGROUP2_SUPER_MAGIC
			return p
		}
	}
	testutil.SkipUnlessPrivileged(t, false, "no cgroup v2 mount")
	return ""
}

func newCgroup(t *testing.T, r *cgroupResolver, name string) *cgroup {
	t.Helper()
	path := filepath.Join(cgroup2Root(t), fmt.Sprintf("codexray-l7test-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	cg := &cgroup{id: containers.ID(name), path: path, fd: fd}
	r.mu.Lock()
	r.ids[st.Ino] = cg.id
	r.mu.Unlock()
	t.Cleanup(func() {
		_ = syscall.Close(fd)
		// What the servers left behind (daemons they forked, such as RabbitMQ's epmd).
		_ = os.WriteFile(filepath.Join(path, "cgroup.kill"), []byte("1"), 0o644)
		for i := 0; i < 50 && os.Remove(path) != nil; i++ { // processes may still be exiting
			time.Sleep(100 * time.Millisecond)
		}
	})
	return cg
}

// command returns a command that starts in the cgroup (CLONE_INTO_CGROUP), as user when set.
func (cg *cgroup) command(t *testing.T, as string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd, Setpgid: true}
	if as != "" {
		u, err := user.Lookup(as)
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return cmd
}

// startProcess starts a long-running server, killed (its whole process group) at the end.
func startProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	var out strings.Builder
	if cmd.Stdout == nil {
		cmd.Stdout = &out
	}
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s: %s", cmd.Path, out.String())
		}
	})
}

// run runs a client to completion.
func run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", cmd.Args, err, out)
	}
}

// helperServer starts a server role of this test binary; arg, when given, is its argument.
func helperServer(role string, arg ...string) func(*testing.T, *cgroup) string {
	return func(t *testing.T, cg *cgroup) string {
		t.Helper()
		cmd := cg.command(t, "", os.Args[0], arg...)
		cmd.Env = append(os.Environ(), helperEnv+"="+role)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		startProcess(t, cmd)
		addr, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		return strings.TrimSpace(addr)
	}
}

func helperClient(role, script string) func(*testing.T, *cgroup, string) {
	return func(t *testing.T, cg *cgroup, addr string) {
		t.Helper()
		cmd := cg.command(t, "", os.Args[0], addr+" "+script)
		cmd.Env = append(os.Environ(), helperEnv+"="+role)
		run(t, cmd)
	}
}

// freePort returns a port nobody listens on now, for servers that take one on the command line.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, addr string, within time.Duration) {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	// Readiness from /proc/net/tcp, without connecting: a connection closed at once makes a
	// server that speaks first (NATS, MySQL) write its greeting into a reset connection, and
	// the kernel side then keeps L7 state for a closed socket, which the next socket at that
	// address inherits (l7-protocols note). Local address and port in hex, state 0A: LISTEN;
	// Java listens on an IPv6 socket, at the IPv4-mapped address.
	v4 := fmt.Sprintf("%08X", binary.LittleEndian.Uint32(ap.Addr().AsSlice()))
	locals := map[string]bool{
		fmt.Sprintf("%s:%04X", v4, ap.Port()):                         true,
		fmt.Sprintf("0000000000000000FFFF0000%s:%04X", v4, ap.Port()): true,
	}
	deadline := time.Now().Add(within)
	for {
		var table []byte
		for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			table = append(table, b...)
		}
		for _, line := range strings.Split(string(table), "\n") {
			if f := strings.Fields(line); len(f) > 3 && locals[f[1]] && f[3] == "0A" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
