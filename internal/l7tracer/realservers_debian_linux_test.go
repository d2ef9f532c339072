package l7tracer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The Debian packages' servers and CLIs of serverCases.

func redisServer(t *testing.T, cg *cgroup) string {
	t.Helper()
	port := freePort(t)
	startProcess(t, cg.command(t, "", "redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", t.TempDir()))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, 10*time.Second)
	return addr
}

// redisCLI sends the commands (lines, or with pipe the raw protocol written at once) on one
// connection.
func redisCLI(commands string, pipe bool) func(*testing.T, *cgroup, string) {
	return func(t *testing.T, cg *cgroup, addr string) {
		t.Helper()
		host, port, _ := strings.Cut(addr, ":")
		args := []string{"-h", host, "-p", port}
		if pipe {
			args = append(args, "--pipe")
		}
		cmd := cg.command(t, "", "redis-cli", args...)
		cmd.Stdin = strings.NewReader(commands)
		run(t, cmd)
	}
}

// postgresServer initialises a cluster in a temporary directory and runs postgres as the
// postgres user on a free port (trust authentication on loopback).
func postgresServer(t *testing.T, cg *cgroup) string {
	t.Helper()
	bin := pgBin(t)
	dir, err := os.MkdirTemp("", "codexray-l7test-pg") // reachable by the postgres user
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o777)
	data := filepath.Join(dir, "data")
	initdb := cg.command(t, "postgres", filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
	run(t, initdb)
	port := freePort(t)
	startProcess(t, cg.command(t, "postgres", filepath.Join(bin, "postgres"), "-D", data, "-p", fmt.Sprint(port),
		"-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, 30*time.Second)
	// Listening is not ready: during startup postgres answers "the database system is starting
	// up". pg_isready sends a startup packet only, no query.
	for i := 0; ; i++ {
		if exec.Command(filepath.Join(bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", fmt.Sprint(port)).Run() == nil {
			break
		}
		if i == 300 {
			t.Fatal("postgres never became ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return addr
}

func pgBin(t *testing.T) string {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(matches) == 0 {
		t.Fatal("postgresql server binaries not found under /usr/lib/postgresql")
	}
	return filepath.Dir(matches[len(matches)-1])
}

// psql runs the script with the simple query protocol, one query per statement.
func psql(script string) func(*testing.T, *cgroup, string) {
	return func(t *testing.T, cg *cgroup, addr string) {
		t.Helper()
		host, port, _ := strings.Cut(addr, ":")
		cmd := cg.command(t, "", "psql", "-X", "-q", "-h", host, "-p", port, "-U", "postgres", "-d", "postgres")
		cmd.Stdin = strings.NewReader(script)
		_, _ = cmd.CombinedOutput() // the failing statement makes psql report an error: expected
	}
}

func pgxClient(queries string) func(*testing.T, *cgroup, string) {
	return pgxClientSSL(queries, "disable")
}

// pgxClientSSL runs pgx with an sslmode: "prefer" asks the server for TLS first (an
// SSLRequest, which a server without TLS refuses with 'N').
func pgxClientSSL(queries, sslmode string) func(*testing.T, *cgroup, string) {
	return func(t *testing.T, cg *cgroup, addr string) {
		t.Helper()
		host, port, _ := strings.Cut(addr, ":")
		dsn := fmt.Sprintf("postgres://postgres@%s:%s/postgres?sslmode=%s", host, port, sslmode)
		cmd := cg.command(t, "", os.Args[0], dsn+" "+queries)
		cmd.Env = append(os.Environ(), helperEnv+"=pgx-client")
		run(t, cmd)
	}
}

func memcachedServer(t *testing.T, cg *cgroup) string {
	t.Helper()
	port := freePort(t)
	startProcess(t, cg.command(t, "", "memcached", "-l", "127.0.0.1", "-p", fmt.Sprint(port), "-U", "0", "-u", "nobody"))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, 10*time.Second)
	return addr
}

// nginxServer runs nginx in one process (no workers) with a configuration of the test:
// /ok answers 200, /fail 500, anything else 404.
func nginxServer(t *testing.T, cg *cgroup) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
  access_log off;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  server {
    listen 127.0.0.1:%[2]d;
    location = /ok { return 200 "ok"; }
    location = /fail { return 500; }
    location / { return 404; }
  }
}
`, dir, port)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, cg.command(t, "", "nginx", "-p", dir, "-c", path))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, 10*time.Second)
	return addr
}

// curl requests the paths over one keep-alive connection.
func curl(paths ...string) func(*testing.T, *cgroup, string) {
	return func(t *testing.T, cg *cgroup, addr string) {
		t.Helper()
		args := []string{"-s", "-o", "/dev/null"}
		for _, p := range paths {
			args = append(args, "http://"+addr+p)
		}
		run(t, cg.command(t, "", "curl", args...))
	}
}

// dnsAddrs hands out loopback addresses of this test for servers that must listen on port 53.
var dnsAddrs = struct {
	sync.Mutex
	next byte
}{next: 1}

// dnsmasqServer answers example.test with 10.1.2.3 and nothing else in .test (NXDOMAIN),
// on port 53 of an address of its own (127.53.x.y: DNS is detected on port 53 only).
func dnsmasqServer(t *testing.T, cg *cgroup) string {
	t.Helper()
	dnsAddrs.Lock()
	ip := fmt.Sprintf("127.53.%d.%d", os.Getpid()%200+1, dnsAddrs.next)
	dnsAddrs.next++
	dnsAddrs.Unlock()
	startProcess(t, cg.command(t, "", "dnsmasq", "-k", "--conf-file=/dev/null", "--listen-address="+ip, "--bind-interfaces",
		"--port=53", "--no-resolv", "--no-hosts", "--address=/example.test/10.1.2.3", "--local=/test/", "-u", "root",
		"--pid-file="+filepath.Join(t.TempDir(), "dnsmasq.pid")))
	addr := ip + ":53"
	waitListening(t, addr, 10*time.Second) // dnsmasq answers TCP too
	return addr
}

// mariadbServer initialises a data directory and runs mariadbd on a free port, without grant
// tables (any user, no password).
func mariadbServer(t *testing.T, cg *cgroup) string {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	run(t, cg.command(t, "", "mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db"))
	port := freePort(t)
	startProcess(t, cg.command(t, "", "mariadbd", "--no-defaults", "--datadir="+data, "--user=root",
		fmt.Sprintf("--port=%d", port), "--bind-address=127.0.0.1", "--socket="+filepath.Join(dir, "sock"),
		"--pid-file="+filepath.Join(dir, "pid"), "--skip-grant-tables", "--skip-log-bin", "--innodb-buffer-pool-size=16M"))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, 30*time.Second)
	return addr
}

// rabbitmqServer runs a RabbitMQ node of its own (name, ports, epmd port, directories and
// cookie of the test; no plugins) and waits for its AMQP listener: about 8 s.
func rabbitmqServer(t *testing.T, cg *cgroup) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "plugins"), []byte("[].\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := cg.command(t, "", "/usr/lib/rabbitmq/bin/rabbitmq-server")
	cmd.Env = append(os.Environ(), "HOME="+dir,
		fmt.Sprintf("RABBITMQ_NODENAME=l7test%d@localhost", port), "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", port), fmt.Sprintf("RABBITMQ_DIST_PORT=%d", freePort(t)),
		fmt.Sprintf("ERL_EPMD_PORT=%d", freePort(t)), "RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"), "RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "plugins"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq"), "RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "env"))
	startProcess(t, cmd) // epmd, which it starts as a daemon, stays in the cgroup: killed with it
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, 60*time.Second)
	return addr
}

// zookeeperServer runs a standalone ZooKeeper (Debian's jar) on a free loopback port.
func zookeeperServer(t *testing.T, cg *cgroup) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	cfg := filepath.Join(dir, "zoo.cfg")
	conf := fmt.Sprintf("tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n", filepath.Join(dir, "data"), port)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, cg.command(t, "", "java", "-cp", "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar",
		"org.apache.zookeeper.server.ZooKeeperServerMain", cfg))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, 60*time.Second)
	return addr
}

// zkCli runs the commands with ZooKeeper's own CLI, one session.
func zkCli(commands string) func(*testing.T, *cgroup, string) {
	return func(t *testing.T, cg *cgroup, addr string) {
		t.Helper()
		cmd := cg.command(t, "", "/usr/share/zookeeper/bin/zkCli.sh", "-waitforconnection", "-server", addr)
		cmd.Stdin = strings.NewReader(commands)
		out, _ := cmd.CombinedOutput() // a refused command sets its exit status: expected
		if !strings.Contains(string(out), "Created") {
			t.Fatalf("zkCli: %s", out)
		}
	}
}

func natsServer(t *testing.T, cg *cgroup) string {
	t.Helper()
	port := freePort(t)
	startProcess(t, cg.command(t, "", "nats-server", "-a", "127.0.0.1", "-p", fmt.Sprint(port)))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, 10*time.Second)
	return addr
}
