package apptype

import (
	"bytes"
	"path"
	"regexp"
)

// Interpreters, by executable name with an optional version: php, php8.2, php-fpm8.1, php-cgi;
// python, python3, python3.11; node, nodejs, node18; ruby, ruby3.1.
var (
	phpName    = regexp.MustCompile(`^php(-fpm|-cgi)?\d*\.?\d*$`)
	pythonName = regexp.MustCompile(`^python\d*\.?\d*$`)
	rubyName   = regexp.MustCompile(`^ruby\d*\.?\d*$`)
	nodejsName = regexp.MustCompile(`^node(js)?\d*\.?\d*$`)
)

// byName maps a program's executable name to its type.
var byName = map[string]string{
	"coroot": "coroot-community-edition", "coroot-ee": "coroot-enterprise-edition",
	"coroot-node-agent": "coroot-node-agent", "coroot-cluster-agent": "coroot-cluster-agent",
	"coroot-operator": "coroot-operator",
	"memcached":       "memcached", "envoy": "envoy",
	"mongod": "mongodb", "mongos": "mongos",
	"mysqld": "mysql", "mariadbd": "mysql", "sqlservr": "mssql",
	"redis-server": "redis", "redis-sentinel": "redis-sentinel", "keydb-server": "keydb",
	"valkey-server": "valkey", "dragonfly": "dragonfly",
	"pgbouncer": "pgbouncer", "postgres": "postgres",
	"haproxy": "haproxy", "nginx": "nginx", "w3wp": "dotnet",
	"kubelet": "kubelet", "kube-apiserver": "kube-apiserver", "kube-controller-manager": "kube-controller-manager",
	"kube-scheduler": "kube-scheduler", "k3s": "k3s", "etcd": "etcd", "dockerd": "dockerd", "consul": "consul",
	"clickhouse-server": "clickhouse", "traefik": "traefik", "asd": "aerospike",
	"httpd": "httpd", "apache": "httpd", "apache2": "httpd", "influxd": "influxdb",
	"vault": "vault", "proxysql": "proxysql", "cockroach": "cockroach", "prometheus": "prometheus",
	"ceph-mon": "ceph", "ceph-mgr": "ceph", "ceph-osd": "ceph", "cephcsi": "ceph", "rook": "rook",
	"nats-server": "nats", "java": "java", "ollama": "ollama", "fdbserver": "foundationdb",
}

// byMainClass: JVM programs, told apart by the class (or argument) their command line names.
// They are checked before byName, whose "java" would otherwise hide them.
var byMainClass = []struct{ needle, typ string }{
	{"org.elasticsearch.bootstrap", "elasticsearch"},
	{"org.opensearch.bootstrap", "opensearch"},
	{"kafka.Kafka", "kafka"},
	{"io.confluent.support.metrics.SupportedKafka", "kafka"},
	{"org.apache.zookeeper.server.quorum.QuorumPeerMain", "zookeeper"},
	{"org.apache.cassandra.service.CassandraDaemon", "cassandra"},
	{"org.apache.catalina.startup.Bootstrap", "tomcat"},
}

// command is the program name a command line starts with: the first word of argv[0] (servers
// that rewrite their title, "nginx: master process …", "postgres: 16/main: checkpointer",
// keep their name there), without a trailing colon and without its directory.
func command(cmdline []byte) []byte {
	arg0, _, _ := bytes.Cut(cmdline, []byte{0})
	arg0 = bytes.TrimLeft(arg0, " \t")
	if i := bytes.IndexAny(arg0, " \t"); i >= 0 {
		arg0 = arg0[:i]
	}
	arg0 = bytes.TrimSuffix(arg0, []byte(":"))
	if i := bytes.LastIndexByte(arg0, '/'); i >= 0 {
		arg0 = arg0[i+1:]
	}
	return arg0
}

// FromCmdline returns the type a command line (/proc/<pid>/cmdline: NUL-separated arguments)
// names, "" when none. The vocabulary and the order of the checks are coroot-node-agent's.
//
// Difference: coroot-node-agent matches a suffix of argv[0] ("…httpd" is httpd, so lighttpd is
// too; "…asd" is aerospike); here the program name must equal the listed one.
func FromCmdline(cmdline []byte) string {
	cmd := command(cmdline)
	if len(cmd) == 0 {
		return ""
	}
	if string(cmd) == "beam.smp" {
		switch {
		case bytes.Contains(cmdline, []byte("rabbit")):
			return "rabbitmq"
		case bytes.Contains(cmdline, []byte("couch")):
			return "couchbase"
		}
	}
	for _, c := range byMainClass {
		if bytes.Contains(cmdline, []byte(c.needle)) {
			return c.typ
		}
	}
	if t, ok := byName[string(cmd)]; ok {
		return t
	}
	switch {
	case bytes.Contains(cmd, []byte("victoria-metrics")), bytes.Contains(cmd, []byte("vmstorage")),
		bytes.Contains(cmd, []byte("vminsert")), bytes.Contains(cmd, []byte("vmselect")):
		return "victoria-metrics"
	case bytes.Contains(cmd, []byte("victoria-logs")):
		return "victoria-logs"
	}
	return FromExecutable(string(cmd))
}

// FromExecutable returns the interpreter an executable path or name is (php, python, nodejs,
// ruby), "" otherwise. It serves processes whose command line names a script rather than the
// interpreter (a rewritten title, an env shebang).
func FromExecutable(p string) string {
	name := path.Base(p)
	switch {
	case phpName.MatchString(name):
		return "php"
	case pythonName.MatchString(name):
		return "python"
	case nodejsName.MatchString(name):
		return "nodejs"
	case rubyName.MatchString(name):
		return "ruby"
	}
	return ""
}

// dotnetHost reports whether a command line runs an assembly through the dotnet host
// ("dotnet Accounting.dll").
func dotnetHost(cmdline []byte) bool {
	args := bytes.Split(cmdline, []byte{0})
	return len(args) >= 2 && string(command(cmdline)) == "dotnet" && bytes.HasSuffix(args[1], []byte(".dll"))
}
