package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readLayout reads a layout tarball back into its files, checking nothing yet.
func readLayout(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			files[h.Name] = data
		}
	}
}

// blob returns the blob a descriptor names, after checking its digest and size.
func blob(t *testing.T, files map[string][]byte, d Descriptor) []byte {
	t.Helper()
	hexd, ok := strings.CutPrefix(d.Digest, "sha256:")
	if !ok {
		t.Fatalf("digest %q is not sha256", d.Digest)
	}
	b, ok := files["blobs/sha256/"+hexd]
	if !ok {
		t.Fatalf("blob %s missing", d.Digest)
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != hexd || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: content digest %x size %d, descriptor size %d", d.Digest, sum, len(b), d.Size)
	}
	return b
}

func TestWriteLayout(t *testing.T) {
	src := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho hi\n"), 0o750); err != nil {
		t.Fatal(err)
	}
	img := &Image{
		Name:       "docker.io/codexray-test/tool:2",
		Entrypoint: []string{"/usr/bin/tool"},
		Cmd:        []string{"--flag"},
		Env:        []string{"PATH=/bin"},
		Files: []File{
			{Path: "/usr/bin/tool", Source: src},
			{Path: "/etc/conf.yaml", Data: []byte("a: 1\n")},
			{Path: "/bin/sh", Link: "busybox"},
			{Path: "/tmp", Mode: os.ModeDir | 0o755},
		},
	}
	var out bytes.Buffer
	if err := img.WriteLayout(&out); err != nil {
		t.Fatal(err)
	}
	files := readLayout(t, out.Bytes())
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q", files["oci-layout"])
	}
	var index Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(index.Manifests))
	}
	md := index.Manifests[0]
	if md.Annotations["io.containerd.image.name"] != img.Name || md.Annotations["org.opencontainers.image.ref.name"] != "2" ||
		md.Platform == nil || md.Platform.OS != "linux" || md.MediaType != mediaManifest {
		t.Errorf("manifest descriptor %+v", md)
	}
	var m Manifest
	if err := json.Unmarshal(blob(t, files, md), &m); err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := json.Unmarshal(blob(t, files, m.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Config.Entrypoint, img.Entrypoint) || !slices.Equal(cfg.Config.Cmd, img.Cmd) || !slices.Equal(cfg.Config.Env, img.Env) {
		t.Errorf("config %+v", cfg.Config)
	}
	if len(m.Layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != m.Layers[0].Digest {
		t.Fatalf("layers %+v, diff ids %v: want one uncompressed layer whose digest is its diff id", m.Layers, cfg.RootFS.DiffIDs)
	}
	type entry struct {
		typ  byte
		mode int64
		link string
		data string
	}
	got := map[string]entry{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(blob(t, files, m.Layers[0])))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		got[h.Name] = entry{h.Typeflag, h.Mode, h.Linkname, string(data)}
		order = append(order, h.Name)
	}
	want := map[string]entry{
		"bin/":          {tar.TypeDir, 0o755, "", ""},
		"bin/sh":        {tar.TypeSymlink, 0o777, "busybox", ""},
		"etc/":          {tar.TypeDir, 0o755, "", ""},
		"etc/conf.yaml": {tar.TypeReg, 0o644, "", "a: 1\n"},
		"tmp/":          {tar.TypeDir, 0o755, "", ""},
		"usr/":          {tar.TypeDir, 0o755, "", ""},
		"usr/bin/":      {tar.TypeDir, 0o755, "", ""},
		"usr/bin/tool":  {tar.TypeReg, 0o750, "", "#!/bin/sh\necho hi\n"},
	}
	if len(got) != len(want) {
		t.Errorf("layer entries %v, want %d", order, len(want))
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("layer %s = %+v, want %+v", name, got[name], w)
		}
	}
	// Parents come before their children, as runtimes unpack in order.
	if i, j := slices.Index(order, "usr/"), slices.Index(order, "usr/bin/tool"); i < 0 || i > j {
		t.Errorf("order %v: usr/ must precede usr/bin/tool", order)
	}

	// The same files give the same bytes (and so the same image digest).
	var again bytes.Buffer
	if err := img.WriteLayout(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Error("two writes of one image differ")
	}
}

func TestWriteLayoutRefuses(t *testing.T) {
	for name, img := range map[string]Image{
		"no tag":        {Name: "busybox", Files: []File{{Path: "/a", Data: []byte{}}}},
		"relative path": {Name: "x:1", Files: []File{{Path: "a", Data: []byte{}}}},
		"unclean path":  {Name: "x:1", Files: []File{{Path: "/a/../b", Data: []byte{}}}},
		"twice":         {Name: "x:1", Files: []File{{Path: "/a", Data: []byte{}}, {Path: "/a", Link: "b"}}},
		"empty entry":   {Name: "x:1", Files: []File{{Path: "/a"}}},
		"file as dir":   {Name: "x:1", Files: []File{{Path: "/a", Data: []byte{}}, {Path: "/a/b", Data: []byte{}}}},
		"missing":       {Name: "x:1", Files: []File{{Path: "/a", Source: "/nonexistent/file"}}},
	} {
		if err := img.WriteLayout(io.Discard); err == nil {
			t.Errorf("%s: written without error", name)
		}
	}
}

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f01)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f02)\n"
	got, err := parseLdd([]byte(out))
	if err != nil || !slices.Equal(got, []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}) {
		t.Errorf("parseLdd = %v, %v", got, err)
	}
	if _, err := parseLdd([]byte("\tlibfoo.so.1 => not found\n")); err == nil {
		t.Error("a missing library was not reported")
	}
}

// TestSharedLibrariesOfARealBinary: ldd's view of a dynamic binary of this machine includes
// the C library and the loader, and a dlopened library brings its own dependencies.
func TestSharedLibrariesOfARealBinary(t *testing.T) {
	files, err := SharedLibraries("/bin/ls", "libz.so.1")
	if err != nil {
		t.Skipf("no ldd/ldconfig or libz here: %v", err)
	}
	var libc, loader, libz bool
	for _, f := range files {
		base := filepath.Base(f.Path)
		libc = libc || base == "libc.so.6"
		loader = loader || strings.HasPrefix(base, "ld-linux")
		libz = libz || base == "libz.so.1"
		if f.Source != f.Path {
			t.Errorf("%s is copied from %s, want the same path", f.Path, f.Source)
		}
	}
	if !libc || !loader || !libz {
		t.Errorf("libraries %+v: want libc, the loader and libz", files)
	}
}
