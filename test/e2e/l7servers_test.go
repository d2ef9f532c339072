package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// The acceptance workload's servers of the protocols Coroot's L7 queries read: the host's
// Debian programs, internal/l7tracer's peers program (kfake, FerretDB, and the clients that
// need large modules) and the L7 tracer's own test binary (its CQL and ClickHouse fixture
// servers and clients, its NATS and memcached clients), each in a docker container on the
// host's network.

// l7Servers are the servers and the one client container that talks to all of them.
type l7Servers struct {
	client, clientName string // its container_id, its docker name
	pgBin, dnsIP       string
	named              func(what string) (name, id string) // a server's docker name and container_id
	redis, memcached, postgres, dns, mysql, nats, rabbitmq, zookeeper,
	mongo, kafka, cassandra, clickhouse l7Server
}

type l7Server struct {
	id, addr string // container_id, the address its client dials
	// servicePort: it listens below the ephemeral port range, so the agent reports its
	// listen_addr as clients dial it (checked for joins_listen). The peers and fixture servers
	// pick an ephemeral port themselves, which the agent reports as port 0.
	servicePort bool
}

// byProtocol names the servers by the protocol of Coroot's metric names
// (container_<protocol>_...). DNS is not among them: its metrics are not by destination.
func (s *l7Servers) byProtocol() map[string]l7Server {
	return map[string]l7Server{
		"redis": s.redis, "memcached": s.memcached, "postgres": s.postgres, "mysql": s.mysql, "mongo": s.mongo,
		"kafka": s.kafka, "cassandra": s.cassandra, "clickhouse": s.clickhouse, "zookeeper": s.zookeeper,
		"rabbitmq": s.rabbitmq, "nats": s.nats,
	}
}

// builtTool is a program the tests build once per test binary.
type builtTool struct {
	once sync.Once
	done chan struct{}
	path string
	err  error
}

var l7Peers, l7Fixtures = &builtTool{done: make(chan struct{})}, &builtTool{done: make(chan struct{})}

// build runs the go command (args, in dir of the repository, with env) once, writing
// name into a temporary directory; safe in a goroutine of its own.
func (b *builtTool) build(root, dir, name string, env []string, args ...string) {
	b.once.Do(func() {
		defer close(b.done)
		tmp, err := os.MkdirTemp("", "cxe2e-"+name)
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(tmp, name)
		cmd := exec.Command("go", append(args, "-o", b.path)...)
		cmd.Dir = filepath.Join(root, dir)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %v in %s: %w\n%s", args, dir, err, out)
		}
	})
}

func (b *builtTool) wait(t testing.TB) string {
	t.Helper()
	<-b.done
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// buildL7Tools starts building, in the background, internal/l7tracer/testdata/peers (a module
// of its own) and the L7 tracer's test binary, whose helper roles (CODEXRAY_L7_HELPER) serve the
// fixtures of internal/l7tracer's real-server tests.
func buildL7Tools(root string) {
	go l7Peers.build(root, filepath.Join("internal", "l7tracer", "testdata", "peers"), "peers",
		[]string{"GOWORK=off", "GOFLAGS=-mod=readonly"}, "build")
	go l7Fixtures.build(root, ".", "l7tracer.test", nil, "test", "-c", "./internal/l7tracer")
}

// jvmMounts let a container run the host's Java (ZooKeeper and its CLI): the alternatives
// links, the JDK's configuration, ZooKeeper's.
func jvmMounts(t testing.TB) []string {
	t.Helper()
	dirs, _ := filepath.Glob("/etc/java-*-openjdk")
	dirs = append(dirs, "/etc/alternatives", "/etc/zookeeper")
	var opts []string
	for _, d := range dirs {
		opts = append(opts, "-v", d+":"+d+":ro")
	}
	return opts
}

// startL7Servers starts, in containers of their own and all at once, the servers that take
// their port on the command line (below the ephemeral range): redis, memcached, postgres,
// dnsmasq, mariadbd, nats-server, rabbitmq-server and ZooKeeper (the host's Debian programs).
// It starts building peers and the fixtures' binary for startPeers and startClient.
func startL7Servers(t testing.TB, suffix string) *l7Servers {
	t.Helper()
	for _, prog := range []string{
		"redis-server", "redis-cli", "memcached", "dnsmasq", "mariadbd", "mariadb-install-db",
		"nats-server", "java", "/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/share/zookeeper/bin/zkCli.sh",
	} {
		_, err := exec.LookPath(prog)
		testutil.SkipUnlessPrivileged(t, err == nil, "%s not installed (scripts/install-deps.sh installs it): %v", prog, err)
	}
	pgBins, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	testutil.SkipUnlessPrivileged(t, len(pgBins) > 0, "postgresql server not installed (scripts/install-deps.sh installs it)")
	pgBin := pgBins[len(pgBins)-1]
	buildL7Tools(repoRoot(t))
	s := &l7Servers{}
	named := func(what string) (string, string) {
		name := "cxc-" + what + "-" + suffix
		return name, "/docker/" + name
	}
	servicePort := func(srv *l7Server, what string) (string, int) {
		name, id := named(what)
		port := freeServicePort(t)
		*srv = l7Server{id: id, addr: fmt.Sprintf("127.0.0.1:%d", port), servicePort: true}
		return name, port
	}

	var runs [][]string
	name, port := servicePort(&s.redis, "redis")
	runs = append(runs, hostProgram(name, nil, "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", "/tmp"))
	name, port = servicePort(&s.memcached, "memcached")
	runs = append(runs, hostProgram(name, nil, "memcached", "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-u", "nobody"))
	name, port = servicePort(&s.postgres, "postgres")
	pgDir := t.TempDir()
	if err := os.Chmod(pgDir, 0o777); err != nil { // the postgres user writes its cluster there
		t.Fatal(err)
	}
	pgUser, err := user.Lookup("postgres") // docker resolves names in the image, which has none
	if err != nil {
		t.Fatal(err)
	}
	runs = append(runs, hostProgram(name, []string{"--user", pgUser.Uid + ":" + pgUser.Gid, "-v", pgDir + ":/pg"}, "sh", "-c", fmt.Sprintf(
		"%[1]s/initdb -D /pg/data -A trust -U postgres --no-sync >/dev/null && exec %[1]s/postgres -D /pg/data -p %[2]d -k /pg -c listen_addresses=127.0.0.1 -c fsync=off",
		pgBin, port)))
	// DNS is told by port 53: dnsmasq listens there on a loopback address of its own.
	dnsIP := fmt.Sprintf("127.54.%d.1", os.Getpid()%200+1)
	name, s.dns.id = named("dns")
	s.dns.addr = dnsIP + ":53"
	runs = append(runs, hostProgram(name, nil, "dnsmasq", "-k", "--conf-file=/dev/null", "--listen-address="+dnsIP, "--bind-interfaces",
		"--port=53", "--no-resolv", "--no-hosts", "--address=/web.cx.test/10.1.2.3", "--local=/test/", "-u", "root",
		"--pid-file=/tmp/dnsmasq.pid"))
	// mariadbd without grant tables: any user, no password.
	name, port = servicePort(&s.mysql, "mysql")
	runs = append(runs, hostProgram(name, nil, "sh", "-c", fmt.Sprintf(
		"mariadb-install-db --no-defaults --datadir=/tmp/data --user=root --auth-root-authentication-method=normal --skip-test-db >/dev/null && "+
			"exec mariadbd --no-defaults --datadir=/tmp/data --user=root --port=%d --bind-address=127.0.0.1 --socket=/tmp/sock "+
			"--pid-file=/tmp/pid --skip-grant-tables --skip-log-bin --innodb-buffer-pool-size=16M", port)))
	name, port = servicePort(&s.nats, "nats")
	runs = append(runs, hostProgram(name, nil, "nats-server", "-a", "127.0.0.1", "-p", strconv.Itoa(port)))
	// A RabbitMQ node of its own (name, ports, directories; no plugins): about 6 s to listen.
	name, port = servicePort(&s.rabbitmq, "rabbitmq")
	rabbitEnv := []string{
		"HOME=/tmp", fmt.Sprintf("RABBITMQ_NODENAME=cxc%d@localhost", port), "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", port), fmt.Sprintf("RABBITMQ_DIST_PORT=%d", freePort(t)),
		fmt.Sprintf("ERL_EPMD_PORT=%d", freePort(t)), "RABBITMQ_MNESIA_BASE=/tmp/mnesia", "RABBITMQ_LOG_BASE=/tmp/log",
		"RABBITMQ_ENABLED_PLUGINS_FILE=/tmp/plugins", "RABBITMQ_CONFIG_FILE=/tmp/rabbitmq",
		"RABBITMQ_ADVANCED_CONFIG_FILE=/tmp/advanced.config", "RABBITMQ_CONF_ENV_FILE=/tmp/env",
	}
	var opts []string
	for _, e := range rabbitEnv {
		opts = append(opts, "-e", e)
	}
	runs = append(runs, hostProgram(name, opts, "sh", "-c", `echo '[].' >/tmp/plugins && exec /usr/lib/rabbitmq/bin/rabbitmq-server`))
	name, port = servicePort(&s.zookeeper, "zookeeper")
	runs = append(runs, hostProgram(name, jvmMounts(t), "sh", "-c", fmt.Sprintf(
		`printf 'tickTime=2000\ndataDir=/tmp/zk\nclientPort=%d\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n' >/tmp/zoo.cfg && `+
			`exec java -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar org.apache.zookeeper.server.ZooKeeperServerMain /tmp/zoo.cfg`, port)))

	dockerRunAll(t, runs...)
	s.pgBin, s.dnsIP, s.clientName = pgBin, dnsIP, "cxc-l7client-"+suffix
	s.client = "/docker/" + s.clientName
	s.named = named
	return s
}

// startPeers starts, once their programs are built, the servers that choose their own port
// and print it first: kfake and FerretDB (peers), the CQL v4 and ClickHouse fixtures.
func (s *l7Servers) startPeers(t testing.TB) {
	t.Helper()
	peers, fixtures := l7Peers.wait(t), l7Fixtures.wait(t)
	peer := []string{"-v", peers + ":/peers:ro"}
	fixture := []string{"-v", fixtures + ":/l7fixtures:ro", "-e", "CODEXRAY_L7_HELPER=fixture-server"}
	servers := []struct {
		srv        *l7Server
		what       string
		opts, args []string
	}{
		{&s.kafka, "kafka", peer, []string{"/peers", "kafka-broker", "/tmp/stats"}},
		{&s.mongo, "mongo", peer, []string{"/peers", "ferretdb", "/tmp"}},
		{&s.cassandra, "cassandra", fixture, []string{"/l7fixtures", "cql-v4"}},
		{&s.clickhouse, "clickhouse", fixture, []string{"/l7fixtures", "clickhouse"}},
	}
	names, runs := make([]string, len(servers)), make([][]string, len(servers))
	for i, sv := range servers {
		names[i], sv.srv.id = s.named(sv.what)
		runs[i] = hostProgram(names[i], sv.opts, sv.args...)
	}
	dockerRunAll(t, runs...)
	// Not dialled to see whether they listen: a fixture server serves one scripted exchange
	// per connection and stops at a connection that breaks it off.
	for i, sv := range servers {
		sv.srv.addr = printedAddr(t, names[i], 30*time.Second)
	}
}

// startClient waits for the servers of startL7Servers to listen (RabbitMQ takes seconds: the
// caller starts the agent meanwhile), then starts the client container. In a loop it sets and
// gets a redis key and a memcached key (each answer read before the next request), selects from postgres, resolves a name dnsmasq answers,
// queries mariadb (COM_QUERY, go-sql-driver/mysql), sends MongoDB commands, produces to Kafka,
// publishes and consumes over AMQP and NATS, runs the CQL and ClickHouse fixture exchanges and,
// every fourth round (a JVM start), zkCli commands. Each command opens connections of its own,
// so the L7 capture sees them begin whenever the agent started, and has 10 s to finish, so that
// none stalls the others.
func (s *l7Servers) startClient(t testing.TB) {
	t.Helper()
	for _, srv := range []l7Server{s.redis, s.memcached, s.postgres, s.dns, s.mysql, s.nats, s.zookeeper, s.rabbitmq} {
		waitListening(t, srv.addr, 60*time.Second)
	}
	pgBin, dnsIP := s.pgBin, s.dnsIP
	peers, fixtures := l7Peers.wait(t), l7Fixtures.wait(t)
	client := append([]string{"-v", peers + ":/peers:ro", "-v", fixtures + ":/l7fixtures:ro"}, jvmMounts(t)...)
	hostProgramContainer(t, s.clientName, client, "sh", "-c", fmt.Sprintf(`t="timeout 10"; i=0
mc=$(printf '127.0.0.1:%[2]s set cx 0 0 1\r\nx\r\n|get cx\r\n.'); mc=${mc%%.} # $(...) would drop the last newline
while :; do
$t redis-cli -h 127.0.0.1 -p %[1]s set cx v >/dev/null; $t redis-cli -h 127.0.0.1 -p %[1]s get cx >/dev/null
CODEXRAY_L7_HELPER=raw-client $t /l7fixtures "$mc" >/dev/null 2>&1
$t %[5]s/psql -h 127.0.0.1 -p %[3]s -U postgres -qAtc 'select 1' >/dev/null
$t nslookup web.cx.test %[4]s >/dev/null
$t /peers mysql-query-client 'root@tcp(%[6]s)/mysql' >/dev/null 2>&1
$t /peers mongo-client %[7]s >/dev/null 2>&1
$t /peers kafka-client %[8]s >/dev/null 2>&1
$t /peers amqp-client amqp://guest:guest@%[9]s/ >/dev/null 2>&1
CODEXRAY_L7_HELPER=nats-client $t /l7fixtures '%[10]s one|two' >/dev/null 2>&1
CODEXRAY_L7_HELPER=fixture-client $t /l7fixtures '%[11]s cql-v4' >/dev/null 2>&1
CODEXRAY_L7_HELPER=fixture-client $t /l7fixtures '%[12]s clickhouse' >/dev/null 2>&1
if [ $((i %% 4)) = 0 ]; then printf 'create /cx x\nget /cx\nget /cxmissing\n' | $t /usr/share/zookeeper/bin/zkCli.sh -server %[13]s >/dev/null 2>&1; fi
i=$((i+1)); sleep 0.5; done`, portOf(s.redis), portOf(s.memcached), portOf(s.postgres), dnsIP, pgBin,
		s.mysql.addr, s.mongo.addr, s.kafka.addr, s.rabbitmq.addr, s.nats.addr, s.cassandra.addr, s.clickhouse.addr, s.zookeeper.addr))
}

func portOf(s l7Server) string {
	_, p, _ := net.SplitHostPort(s.addr)
	return p
}

// printedAddr waits for the first line a container wrote to its stdout: the host:port it
// listens on.
func printedAddr(t testing.TB, container string, timeout time.Duration) string {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		out, err := exec.Command("docker", "logs", container).Output() // stdout only
		line, _, _ := strings.Cut(string(out), "\n")
		if _, _, splitErr := net.SplitHostPort(line); err == nil && splitErr == nil {
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s printed no address within %s (stdout %q, %v)", container, timeout, out, err)
		}
	}
}
