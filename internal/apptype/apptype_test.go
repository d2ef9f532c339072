package apptype

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/procfs"
)

func cmdline(args ...string) []byte { return []byte(strings.Join(args, "\x00") + "\x00") }

func TestFromCmdline(t *testing.T) {
	for _, tc := range []struct {
		cmdline []byte
		want    string
	}{
		{cmdline("postgres: 16/main: checkpointer "), "postgres"},
		{cmdline("/usr/lib/postgresql/16/bin/postgres", "-D", "/var/lib/postgresql/16/main"), "postgres"},
		{cmdline("/usr/sbin/mysqld"), "mysql"},
		{cmdline("/usr/sbin/mariadbd", "--user=mysql"), "mysql"},
		{cmdline("mongod", "--bind_ip_all"), "mongodb"},
		{cmdline("redis-server *:6379"), "redis"},
		{cmdline("/usr/bin/memcached", "-m", "64"), "memcached"},
		{cmdline("nginx: master process /usr/sbin/nginx -g daemon off;"), "nginx"},
		{cmdline("nginx: worker process"), "nginx"},
		{cmdline("envoy", "-c", "/etc/envoy.yaml"), "envoy"},
		{cmdline("/usr/sbin/haproxy", "-f", "/etc/haproxy/haproxy.cfg"), "haproxy"},
		{cmdline("/opt/java/bin/java", "-Xmx1g", "kafka.Kafka", "/config/server.properties"), "kafka"},
		{cmdline("java", "-cp", "/z/lib/*", "org.apache.zookeeper.server.quorum.QuorumPeerMain", "/conf/zoo.cfg"), "zookeeper"},
		{cmdline("/usr/share/elasticsearch/jdk/bin/java", "-Xms1g", "org.elasticsearch.bootstrap.Elasticsearch"), "elasticsearch"},
		{cmdline("java", "org.apache.cassandra.service.CassandraDaemon"), "cassandra"},
		{cmdline("java", "org.apache.catalina.startup.Bootstrap", "start"), "tomcat"},
		{cmdline("/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "-jar", "app.jar"), "java"},
		{cmdline("/usr/lib/erlang/erts-13.2/bin/beam.smp", "-W", "w", "--", "-root", "/usr/lib/erlang", "-s", "rabbit", "boot"), "rabbitmq"},
		{cmdline("beam.smp", "-name", "couchdb@localhost"), "couchbase"},
		{cmdline("beam.smp", "-name", "ejabberd"), ""},
		{cmdline("php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"), "php"},
		{cmdline("php-fpm8.2"), "php"},
		{cmdline("/usr/bin/python3.11", "app.py"), "python"},
		{cmdline("python", "-m", "http.server"), "python"},
		{cmdline("node", "server.js"), "nodejs"},
		{cmdline("/usr/local/bin/nodejs18"), "nodejs"},
		{cmdline("ruby3.1", "bin/rails", "server"), "ruby"},
		{cmdline("w3wp"), "dotnet"},
		{cmdline("/usr/local/bin/victoria-metrics-prod"), "victoria-metrics"},
		{cmdline("vmstorage-prod"), "victoria-metrics"},
		{cmdline("/usr/bin/dockerd", "-H", "fd://"), "dockerd"},
		{cmdline("/usr/bin/kubelet"), "kubelet"},
		{cmdline("/usr/local/bin/etcd"), "etcd"},
		{cmdline("fdbserver"), "foundationdb"},
		{cmdline("/usr/sbin/apache2", "-k", "start"), "httpd"},
		// Differences from coroot-node-agent's suffix match: these are not httpd or aerospike.
		{cmdline("/usr/sbin/lighttpd", "-D"), ""},
		{cmdline("/opt/qwerasd"), ""},
		{cmdline("/bin/sh", "-c", "sleep 1"), ""},
		{cmdline("dotnet", "Accounting.dll"), ""}, // the dotnet host: Detector adds "dotnet"
		{nil, ""},
		{cmdline(""), ""},
		{cmdline("   "), ""},
		{[]byte("nginx"), "nginx"}, // no trailing NUL
	} {
		if got := FromCmdline(tc.cmdline); got != tc.want {
			t.Errorf("FromCmdline(%q) = %q, want %q", tc.cmdline, got, tc.want)
		}
	}
}

func TestFromExecutable(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/python3.11": "python", "/usr/local/bin/node": "nodejs", "/usr/bin/php8.1": "php",
		"/usr/bin/ruby": "ruby", "/usr/bin/python3-config": "", "/usr/sbin/nginx": "", "": "", "/": "",
	} {
		if got := FromExecutable(in); got != want {
			t.Errorf("FromExecutable(%q) = %q, want %q", in, got, want)
		}
	}
}

// goBinary builds a small Go program (stripped when strip) and returns its path.
func goBinary(t testing.TB, strip bool) string {
	t.Helper()
	goCmd, err := exec.LookPath("go") // go test puts its own GOROOT/bin first in PATH
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := "package main\n\nimport \"os\"\n\nfunc main() { b := make([]byte, 1); os.Stdin.Read(b) }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module waiter\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "waiter")
	args := []string{"build", "-o", out}
	if strip {
		args = append(args, "-ldflags=-s -w")
	}
	cmd := exec.Command(goCmd, append(args, ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// nativeBinary returns a non-Go ELF executable of this machine.
func nativeBinary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/bin/true", "/usr/bin/true", "/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("no native executable (/bin/true, /usr/bin/true, /bin/busybox) on this machine")
	return ""
}

func TestReadELFFacts(t *testing.T) {
	script := filepath.Join(t.TempDir(), "run.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path string
		want       elfFacts
	}{
		{"go", goBinary(t, false), elfFacts{golang: true}},
		{"stripped go", goBinary(t, true), elfFacts{golang: true}},
		{"native", nativeBinary(t), elfFacts{}},
		{"script", script, elfFacts{}},
	}
	if apphost := dotnetApphost(t); apphost != "" {
		cases = append(cases, struct {
			name, path string
			want       elfFacts
		}{"apphost rpath", apphost, elfFacts{dotnetApphost: true}})
	}
	for _, tc := range cases {
		f, err := os.Open(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		got := readELFFacts(f)
		f.Close()
		if got != tc.want {
			t.Errorf("%s (%s): %+v, want %+v", tc.name, tc.path, got, tc.want)
		}
	}
}

// dotnetApphost links a C program with the RPATH a .NET apphost carries, when a C compiler is
// installed (the deps script installs gcc for cgo).
func dotnetApphost(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Log("no gcc: the apphost case is not run")
		return ""
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.c"), []byte("int main(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "Accounting")
	cmd := exec.Command(cc, "-o", out, "a.c", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/netcoredeps")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return out
}

// fakeProc builds a proc root whose processes have the given command lines and executables
// (symlinks, as /proc/<pid>/exe is).
func fakeProc(t *testing.T, procs map[uint32][2]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(int(pid)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(p[0]), 0o644); err != nil {
			t.Fatal(err)
		}
		if p[1] != "" {
			if err := os.Symlink(p[1], filepath.Join(dir, "exe")); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestDetectorFixture(t *testing.T) {
	goBin, native := goBinary(t, true), nativeBinary(t)
	root := fakeProc(t, map[uint32][2]string{
		10: {string(cmdline("consul", "agent")), goBin},
		11: {string(cmdline("/app/server")), goBin},
		12: {string(cmdline("nginx: worker process")), native},
		13: {string(cmdline("dotnet", "Accounting.dll")), native},
		14: {"", ""}, // kernel thread: empty cmdline, no exe
		15: {string(cmdline("/usr/bin/python3", "app.py")), native},
		16: {string(cmdline("redis-server *:6379")), filepath.Join(t.TempDir(), "deleted")}, // exe unreadable
	})
	d := NewDetector(root)
	for _, tc := range []struct {
		pid  uint32
		want []string
	}{
		{10, []string{"consul", "golang"}},
		{11, []string{"golang"}},
		{12, []string{"nginx"}},
		{13, []string{"dotnet"}},
		{14, nil},
		{15, []string{"python"}},
		{16, []string{"redis"}},
	} {
		got, err := d.Process(tc.pid)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Process(%d) = %v, %v; want %v", tc.pid, got, err, tc.want)
		}
	}
	if d.elfReads != 2 {
		t.Errorf("%d executables opened for two distinct files, want 2 (cached per file)", d.elfReads)
	}
	if _, err := d.Process(99); !procfs.Gone(err) {
		t.Errorf("missing process: %v, want a Gone error", err)
	}
}

// TestDetectorRealProcesses runs a Go binary and a native one and reads them through /proc,
// then reads the Go one again after it exited.
func TestDetectorRealProcesses(t *testing.T) {
	goBin := goBinary(t, false)
	start := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(name, args...)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	goProc := start(goBin)
	sleepPath, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal("no sleep:", err)
	}
	native := start(sleepPath, "30")

	d := NewDetector("")
	deadline := time.Now().Add(5 * time.Second)
	var got []string
	for time.Now().Before(deadline) { // exec may not have replaced the forked image yet
		if got, err = d.Process(uint32(goProc.Process.Pid)); err == nil && len(got) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !slices.Equal(got, []string{"golang"}) {
		t.Errorf("Go process: %v, %v; want [golang]", got, err)
	}
	if got, err := d.Process(uint32(native.Process.Pid)); err != nil || got != nil {
		t.Errorf("sleep: %v, %v; want no type", got, err)
	}
	_ = goProc.Process.Kill()
	_ = goProc.Wait()
	if _, err := d.Process(uint32(goProc.Process.Pid)); err == nil || !procfs.Gone(err) {
		t.Errorf("exited process: %v, want a Gone error", err)
	}
}

// The cache never holds more than its bound: a full cache starts over.
func TestCacheBounded(t *testing.T) {
	native := nativeBinary(t)
	b, err := os.ReadFile(native)
	if err != nil {
		t.Fatal(err)
	}
	procs := map[uint32][2]string{}
	for i := range 5 { // five copies: five inodes, five cache keys
		p := filepath.Join(t.TempDir(), "bin")
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		procs[uint32(100+i)] = [2]string{string(cmdline("bin")), p}
	}
	d := NewDetector(fakeProc(t, procs))
	d.maxFacts = 2
	for round := range 2 {
		for i := range 5 {
			if _, err := d.Process(uint32(100 + i)); err != nil {
				t.Fatal(err)
			}
			if len(d.facts) > 2 {
				t.Fatalf("round %d: cache holds %d entries, bound 2", round, len(d.facts))
			}
		}
	}
	if d.elfReads != 10 {
		t.Errorf("%d executables read, want 10 (every key evicted before its next use)", d.elfReads)
	}
}

func FuzzFromCmdline(f *testing.F) {
	for _, s := range []string{"nginx: master process", "java\x00kafka.Kafka", "beam.smp\x00rabbit", "python3.11\x00app.py", "\x00\x00", "/:"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := FromCmdline(b)
		if got != "" && strings.ContainsAny(got, " /\x00") {
			t.Fatalf("type %q", got)
		}
		dotnetHost(b)
	})
}

func BenchmarkFromCmdline(b *testing.B) {
	c := cmdline("/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "-Xmx1g", "-cp", "/app/lib/*", "com.example.Main")
	for b.Loop() {
		FromCmdline(c)
	}
}

// BenchmarkProcess is one detection of a running Go process: cached (the steady state: its
// executable was read before) and uncached (first sight of the binary).
func BenchmarkProcess(b *testing.B) {
	goBin := goBinary(b, false)
	cmd := exec.Command(goBin)
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	pid := uint32(cmd.Process.Pid)
	time.Sleep(50 * time.Millisecond)
	b.Run("cached", func(b *testing.B) {
		d := NewDetector("")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.Process(pid); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		d := NewDetector("")
		b.ReportAllocs()
		for b.Loop() {
			clear(d.facts)
			if _, err := d.Process(pid); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkContainerTypes is one collection's work for a container of ten running Go
// processes: Processes with its per-process cache (the steady state: a stat per process)
// against reading every process again with Process (what a collection would cost uncached).
func BenchmarkContainerTypes(b *testing.B) {
	goBin := goBinary(b, false)
	pids := make([]uint32, 0, 10)
	for range 10 {
		cmd := exec.Command(goBin)
		stdin, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
		pids = append(pids, uint32(cmd.Process.Pid))
	}
	time.Sleep(100 * time.Millisecond)
	b.Run("cached", func(b *testing.B) {
		d := NewDetector("")
		var types []string
		b.ReportAllocs()
		for b.Loop() {
			types, _ = d.Processes(pids, types[:0])
			d.Forget()
		}
		if !slices.Equal(types, []string{"golang"}) {
			b.Fatalf("types %v", types)
		}
	})
	b.Run("read every time", func(b *testing.B) {
		d := NewDetector("")
		b.ReportAllocs()
		for b.Loop() {
			for _, pid := range pids {
				if _, err := d.Process(pid); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// A container's types are the sorted union over its processes; a process's types are read
// once while it runs the same executable, and forgotten once it is no longer asked about.
func TestProcessesUnionAndCache(t *testing.T) {
	native, goBin := nativeBinary(t), goBinary(t, false)
	root := fakeProc(t, map[uint32][2]string{
		100: {string(cmdline("postgres: 16/main: checkpointer ")), native},
		101: {string(cmdline("redis-server *:6379")), native},
		102: {string(cmdline("/app/server")), goBin},
		103: {string(cmdline("postgres: walwriter ")), native},
		104: {string(cmdline("sleep", "10")), native},
	})
	d := NewDetector(root)
	got, unreadable := d.Processes([]uint32{100, 101, 102, 103, 104, 999}, nil)
	if !slices.Equal(got, []string{"golang", "postgres", "redis"}) || unreadable != 0 || d.cmdlineReads != 6 {
		t.Fatalf("first: %v, %d unreadable, %d command lines read; want [golang postgres redis], 0, 6", got, unreadable, d.cmdlineReads)
	}
	d.Forget()
	got, _ = d.Processes([]uint32{100, 102}, got[:0])
	if !slices.Equal(got, []string{"golang", "postgres"}) || d.cmdlineReads != 6 {
		t.Fatalf("second: %v after %d command lines; want the cached [golang postgres], no read", got, d.cmdlineReads)
	}
	d.Forget() // 101, 103, 104 were not asked about since the previous Forget
	if len(d.procs) != 2 {
		t.Fatalf("cache after forgetting: %d processes, want 2", len(d.procs))
	}
	// The same pid running another executable (an exec) is read again.
	exe := filepath.Join(root, "100", "exe")
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(goBin, exe); err != nil {
		t.Fatal(err)
	}
	if got, _ = d.Processes([]uint32{100}, got[:0]); !slices.Equal(got, []string{"golang", "postgres"}) || d.cmdlineReads != 7 {
		t.Fatalf("after an exec: %v after %d reads; want [golang postgres] read again", got, d.cmdlineReads)
	}
	// A command line that cannot be read of a process still there counts; an exited one does
	// not (999 above).
	cmd := filepath.Join(root, "101", "cmdline")
	if err := os.Remove(cmd); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(cmd, 0o755); err != nil { // reading it fails with EISDIR
		t.Fatal(err)
	}
	if got, unreadable = d.Processes([]uint32{101}, nil); unreadable != 1 || got != nil {
		t.Fatalf("unreadable command line: %v, %d; want none, 1", got, unreadable)
	}
}
