package ociimage

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// SharedLibraries lists, as image files at their host paths, the shared libraries the
// dynamic executable bin loads (its ELF interpreter included), plus those of the libraries
// it opens only at run time with dlopen (sonames, e.g. "libsystemd.so.0"), and theirs. ldd
// resolves them exactly as the host's loader does.
func SharedLibraries(bin string, dlopened ...string) ([]File, error) {
	paths, err := ldd(bin)
	if err != nil {
		return nil, err
	}
	for _, soname := range dlopened {
		lib, err := findLibrary(soname)
		if err != nil {
			return nil, err
		}
		more, err := ldd(lib)
		if err != nil {
			return nil, err
		}
		paths = append(paths, lib)
		paths = append(paths, more...)
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	files := make([]File, 0, len(paths))
	for _, p := range paths {
		files = append(files, File{Path: p, Source: p})
	}
	return files, nil
}

// ldd returns the absolute paths ldd prints for a binary or library.
func ldd(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) {
			return nil, fmt.Errorf("%s: %w", bin, ErrNotDynamic)
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", bin, err, out)
	}
	return parseLdd(out)
}

// parseLdd reads lines of the forms "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)",
// "/lib64/ld-linux-x86-64.so.2 (0x...)" and "linux-vdso.so.1 (0x...)" (the vDSO is the
// kernel's: no file).
func parseLdd(out []byte) ([]string, error) {
	var paths []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "statically linked") {
			continue
		}
		if strings.Contains(line, "=> not found") {
			return nil, fmt.Errorf("ldd: a library is missing: %s", line)
		}
		target := line
		if _, after, ok := strings.Cut(line, "=>"); ok {
			target = strings.TrimSpace(after)
		}
		if i := strings.Index(target, " ("); i >= 0 {
			target = target[:i]
		}
		if filepath.IsAbs(target) {
			paths = append(paths, target)
		}
	}
	return paths, sc.Err()
}

// findLibrary resolves a soname through the loader's cache (ldconfig -p).
func findLibrary(soname string) (string, error) {
	out, err := exec.Command("ldconfig", "-p").Output()
	if err != nil {
		return "", fmt.Errorf("ldconfig -p: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || name != soname {
			continue
		}
		if _, p, ok := strings.Cut(rest, "=> "); ok {
			return strings.TrimSpace(p), nil
		}
	}
	return "", fmt.Errorf("library %s not found by ldconfig -p", soname)
}

// Busybox lists a busybox binary at /bin/busybox and one /bin/<applet> link per applet it
// has, plus the empty directories a shell expects.
func Busybox(busybox string) ([]File, error) {
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	files := []File{{Path: "/bin/busybox", Source: busybox, Mode: 0o755}}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" && !strings.Contains(applet, "/") {
			files = append(files, File{Path: "/bin/" + applet, Link: "busybox"})
		}
	}
	return files, nil
}
