package logs

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFindWriters runs findWriters on a fixture proc root: fd symlinks created by the test,
// fdinfo files with the open flags the kernel prints (octal).
func TestFindWriters(t *testing.T) {
	logs := t.TempDir()
	app, other := filepath.Join(logs, "app.log"), filepath.Join(logs, "other.log")
	for _, p := range []string{app, other} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	type fd struct {
		pid, fd, target, flags string
	}
	tests := []struct {
		name string
		fds  []fd
		want map[string]uint32
	}{
		{
			name: "write-only and read-write writers",
			fds: []fd{
				{"10", "3", app, "0102001"},   // O_WRONLY|O_APPEND|O_CREAT
				{"20", "4", other, "0100002"}, // O_RDWR
			},
			want: map[string]uint32{app: 10, other: 20},
		},
		{
			name: "readers are not writers",
			fds: []fd{
				{"10", "3", app, "0100000"}, // O_RDONLY (a tailer)
				{"11", "5", app, "02"},
			},
			want: map[string]uint32{app: 11},
		},
		{
			name: "sockets, pipes and other files are ignored",
			fds: []fd{
				{"10", "0", "socket:[123]", "02"},
				{"10", "1", "pipe:[7]", "01"},
				{"10", "2", filepath.Join(logs, "unrelated.log"), "01"},
			},
			want: map[string]uint32{},
		},
		{
			name: "no fdinfo, or unreadable flags",
			fds: []fd{
				{"10", "3", app, ""},
				{"11", "3", other, "0x1"},
			},
			want: map[string]uint32{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.fds {
				for _, d := range []string{"fd", "fdinfo"} {
					if err := os.MkdirAll(filepath.Join(root, f.pid, d), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.Symlink(f.target, filepath.Join(root, f.pid, "fd", f.fd)); err != nil {
					t.Fatal(err)
				}
				if f.flags != "" {
					info := "pos:\t0\nflags:\t" + f.flags + "\nmnt_id:\t30\nino:\t12\n"
					if err := os.WriteFile(filepath.Join(root, f.pid, "fdinfo", f.fd), []byte(info), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			got := findWriters(root, []string{app, other})
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for p, pid := range tt.want {
				if got[p] != pid {
					t.Errorf("%s: writer %d, want %d", p, got[p], pid)
				}
			}
		})
	}
}
