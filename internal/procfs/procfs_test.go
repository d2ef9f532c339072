package procfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fixture builds a proc root in a temp dir: directories for dirs, symlinks for links (path ->
// target, created by the test so no real process is needed), files for files.
func fixture(t *testing.T, dirs []string, links map[string]string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPids(t *testing.T) {
	tests := []struct {
		name  string
		dirs  []string
		links map[string]string
		files map[string]string
		dst   []uint32
		want  []uint32
	}{
		{name: "empty root", want: nil},
		{
			name:  "pids among procfs's other entries",
			dirs:  []string{"1", "42", "4194304", "net", "sys", "irq", "acpi"},
			links: map[string]string{"self": "42", "thread-self": "42/task/42", "mounts": "self/mounts"},
			files: map[string]string{"uptime": "1.0 2.0\n", "1stat": "x"},
			want:  []uint32{1, 42, 4194304},
		},
		{
			name: "names that are not pids",
			dirs: []string{"0", "007", "-1", "+5", "4294967296", "99999999999", "12a", " 3", "7"},
			want: []uint32{7},
		},
		{
			name: "largest 32-bit pid",
			dirs: []string{"4294967295"},
			want: []uint32{4294967295},
		},
		{
			name: "appends to dst",
			dirs: []string{"5"},
			dst:  []uint32{100},
			want: []uint32{100, 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixture(t, tt.dirs, tt.links, tt.files)
			got, err := Pids(root, tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			head := len(tt.dst)
			slices.Sort(got[head:]) // a temp dir lists in no particular order
			if !slices.Equal(got, tt.want) {
				t.Errorf("Pids = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPidsManyEntries(t *testing.T) {
	// More than one Readdirnames batch.
	var dirs []string
	for i := 1; i <= 1300; i++ {
		dirs = append(dirs, strconv.Itoa(i))
	}
	got, err := Pids(fixture(t, dirs, nil, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if len(got) != 1300 || got[0] != 1 || got[1299] != 1300 {
		t.Fatalf("got %d pids, first %v", len(got), got[:min(3, len(got))])
	}
}

func TestPidsRootErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := Pids(missing, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: got %v, want ErrNotExist", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Pids(file, nil); err == nil {
		t.Error("a file as root: no error")
	}
}

func TestPidsRealProc(t *testing.T) {
	pids, err := Pids("/proc", nil)
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if !slices.Contains(pids, uint32(os.Getpid())) {
		t.Errorf("own pid %d not among %d pids", os.Getpid(), len(pids))
	}
}

func TestPidPath(t *testing.T) {
	if got := PidPath("/host/proc", 42, "net/tcp6"); got != "/host/proc/42/net/tcp6" {
		t.Errorf("got %q", got)
	}
}

func TestEachFD(t *testing.T) {
	long := "/var/log/" + strings.Repeat("d/", 300) + "app.log" // beyond the first readlink buffer
	tests := []struct {
		name    string
		links   map[string]string
		dirs    []string
		want    map[int]string
		wantErr func(error) bool
	}{
		{
			name: "sockets, pipes and files",
			links: map[string]string{
				"7/fd/0":  "/dev/null",
				"7/fd/1":  "pipe:[1234]",
				"7/fd/3":  "socket:[99887766]",
				"7/fd/4":  "anon_inode:[eventfd]",
				"7/fd/10": "/var/log/app.log",
				"7/fd/11": long,
			},
			want: map[int]string{0: "/dev/null", 1: "pipe:[1234]", 3: "socket:[99887766]", 4: "anon_inode:[eventfd]", 10: "/var/log/app.log", 11: long},
		},
		{
			name:  "entries that are not descriptors or not links are skipped",
			links: map[string]string{"7/fd/5": "socket:[1]", "7/fd/x": "socket:[2]"},
			dirs:  []string{"7/fd/6"},
			want:  map[int]string{5: "socket:[1]"},
		},
		{
			name: "no descriptors",
			dirs: []string{"7/fd"},
			want: map[int]string{},
		},
		{
			name:    "process gone",
			dirs:    []string{"8/fd"},
			wantErr: Gone,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixture(t, tt.dirs, tt.links, nil)
			got := map[int]string{}
			var buf []byte
			err := EachFD(root, 7, &buf, func(fd int, target []byte) { got[fd] = string(target) })
			if tt.wantErr != nil {
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEachFDOwnProcess(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "held")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := false
	var buf []byte
	err = EachFD("/proc", uint32(os.Getpid()), &buf, func(fd int, target []byte) {
		found = found || (fd == int(f.Fd()) && string(target) == f.Name())
	})
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if !found {
		t.Errorf("descriptor %d on %s not found", f.Fd(), f.Name())
	}
}

func TestReadLink(t *testing.T) {
	root := fixture(t, nil, map[string]string{"1/ns/net": "net:[4026531840]"}, nil)
	buf := make([]byte, 4) // too small: grown
	got, err := ReadLink(PidPath(root, 1, "ns/net"), &buf)
	if err != nil || string(got) != "net:[4026531840]" {
		t.Fatalf("got %q, %v", got, err)
	}
	_, err = ReadLink(PidPath(root, 2, "ns/net"), &buf)
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "readlink" || !Gone(err) {
		t.Errorf("missing link: got %v", err)
	}
}

func TestReadFile(t *testing.T) {
	big := strings.Repeat("0123456789abcdef\n", 10000) // many reads, buffer grows
	root := fixture(t, nil, nil, map[string]string{"1/stat": "1 (init) S 0\n", "1/big": big, "1/empty": ""})
	tests := []struct {
		name, file, want string
		cap              int
	}{
		{"small file, no buffer", "stat", "1 (init) S 0\n", 0},
		{"small file, buffer too small", "stat", "1 (init) S 0\n", 3},
		{"larger than the buffer", "big", big, 512},
		{"empty", "empty", "", 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := make([]byte, 0, tt.cap)
			got, err := ReadFile(PidPath(root, 1, tt.file), &buf)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %d bytes, want %d", len(got), len(tt.want))
			}
			if cap(buf) < len(tt.want) {
				t.Errorf("buffer not kept: cap %d", cap(buf))
			}
		})
	}
	var buf []byte
	if _, err := ReadFile(PidPath(root, 9, "stat"), &buf); !Gone(err) {
		t.Errorf("missing file: got %v", err)
	}
	if _, err := ReadFile(root, &buf); err == nil || Gone(err) {
		t.Errorf("a directory: got %v, want a read error", err)
	}
}

func TestGone(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&fs.PathError{Op: "open", Path: "/proc/1/cgroup", Err: syscall.ENOENT}, true},
		{fmt.Errorf("reading: %w", syscall.ESRCH), true},
		{fs.ErrNotExist, true},
		{&fs.PathError{Op: "open", Path: "/proc/1/fd", Err: syscall.EACCES}, false},
		{errors.New("other"), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := Gone(tt.err); got != tt.want {
			t.Errorf("Gone(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// FuzzParsePid: a name is a pid exactly when it is the canonical decimal form of a number in
// 1..2^32-1 (procfs never writes a sign or a leading zero).
func FuzzParsePid(f *testing.F) {
	for _, s := range []string{"1", "0", "007", "4294967295", "4294967296", "self", "", "-1", "+1", "1 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		pid, ok := parsePid(name)
		v, err := strconv.ParseUint(name, 10, 32)
		want := err == nil && v > 0 && strconv.FormatUint(v, 10) == name
		if ok != want || (ok && uint64(pid) != v) {
			t.Fatalf("parsePid(%q) = %d, %v; want ok %v (%d)", name, pid, ok, want, v)
		}
	})
}

func TestRoot(t *testing.T) {
	for _, tt := range []struct{ configured, want string }{
		{"", "/proc"},
		{"/host/proc", "/host/proc"},
	} {
		if got := Root(tt.configured); got != tt.want {
			t.Errorf("Root(%q) = %q, want %q", tt.configured, got, tt.want)
		}
	}
}
