// Package architecture checks the repository against ARCHITECTURE.md: every package has a row
// in its package table, every row names a package, and no package imports what its rows'
// "must not import" column forbids. The table is the one statement of the dependency rules;
// this test only reads it.
package architecture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/codexray/codexray-node-agent"

// rule is one row of the package table.
type rule struct {
	pattern   string   // package path relative to the module, "X/..." or "..."
	forbidden []string // import patterns: ours relative to the module, others as written
	allowed   []string // exceptions to forbidden
	line      int
}

var (
	tableRow = regexp.MustCompile("^\\|\\s*`([^`]+)`\\s*\\|[^|]*\\|([^|]*)\\|\\s*$")
	codeSpan = regexp.MustCompile("`([^`]+)`")
)

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// readRules parses the package table of ARCHITECTURE.md: the rows after the
// "| package | owns | must not import |" header.
func readRules(t *testing.T, root string) []rule {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rules []rule
	inTable := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "| package | owns | must not import |"):
			inTable = true
		case inTable && strings.HasPrefix(line, "|---"):
		case inTable && strings.HasPrefix(line, "|"):
			m := tableRow.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("ARCHITECTURE.md:%d: a package row must be | `path` | owns | must not import |", n)
			}
			r := rule{pattern: m[1], line: n}
			forbidden, allowed, _ := strings.Cut(m[2], "except")
			for _, c := range codeSpan.FindAllStringSubmatch(forbidden, -1) {
				r.forbidden = append(r.forbidden, c[1])
			}
			for _, c := range codeSpan.FindAllStringSubmatch(allowed, -1) {
				r.allowed = append(r.allowed, c[1])
			}
			rules = append(rules, r)
		case inTable:
			inTable = false
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 {
		t.Fatal("ARCHITECTURE.md has no package table")
	}
	return rules
}

// matches reports whether pkg (relative to the module, or an outside path) matches pattern.
func matches(pattern, pkg string) bool {
	if pattern == "..." {
		return !isOutside(pkg)
	}
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
	}
	return pkg == pattern
}

// isOutside reports whether a (relativized) import path is not one of this module's: ours
// start with one of the module's top-level package directories.
func isOutside(pkg string) bool {
	first, _, _ := strings.Cut(pkg, "/")
	return !ours[first]
}

var ours = map[string]bool{"internal": true, "receiver": true, "cmd": true, "test": true}

type listedPackage struct {
	ImportPath string
	Imports    []string
}

// listPackages runs `go list` over the module: every package with its non-test imports.
func listPackages(t *testing.T, root string) map[string][]string {
	t.Helper()
	// go test puts its own GOROOT/bin first in the test's PATH.
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		var imports []string
		for _, imp := range p.Imports {
			imports = append(imports, relative(imp))
		}
		pkgs[relative(p.ImportPath)] = imports
	}
	return pkgs
}

func relative(path string) string {
	if rest, ok := strings.CutPrefix(path, module+"/"); ok {
		return rest
	}
	return path
}

func TestEveryPackageHasARow(t *testing.T) {
	root := repoRoot(t)
	rules := readRules(t, root)
	pkgs := listPackages(t, root)
	rows := map[string]bool{}
	for _, r := range rules {
		rows[r.pattern] = true
		if strings.HasSuffix(r.pattern, "...") {
			continue
		}
		if _, ok := pkgs[r.pattern]; !ok {
			t.Errorf("ARCHITECTURE.md:%d names %s, which is not a package: remove or rename the row", r.line, r.pattern)
		}
	}
	for pkg := range pkgs {
		if !rows[pkg] {
			t.Errorf("package %s has no row in ARCHITECTURE.md's package table: say what it owns and what it must not import", pkg)
		}
	}
}

func TestImportsFollowTheTable(t *testing.T) {
	root := repoRoot(t)
	rules := readRules(t, root)
	for pkg, imports := range listPackages(t, root) {
		for _, r := range rules {
			if !matches(r.pattern, pkg) {
				continue
			}
			for _, imp := range imports {
				if violates(r, pkg, imp) {
					t.Errorf("%s imports %s, which ARCHITECTURE.md:%d forbids for %s", pkg, imp, r.line, r.pattern)
				}
			}
		}
	}
}

// violates reports whether pkg importing imp breaks rule r. A package may import its own
// subpackages.
func violates(r rule, pkg, imp string) bool {
	if strings.HasPrefix(imp, pkg+"/") {
		return false
	}
	for _, a := range r.allowed {
		if matches(a, imp) {
			return false
		}
	}
	for _, f := range r.forbidden {
		if matches(f, imp) {
			return true
		}
	}
	return false
}

// TestRulesMatch guards the pattern syntax the table relies on.
func TestRulesMatch(t *testing.T) {
	r := rule{forbidden: []string{"internal/...", "os", "net/...", "go.opentelemetry.io/collector/..."}, allowed: []string{"internal/procfs"}}
	tests := []struct {
		pkg, imp string
		want     bool
	}{
		{"internal/cgroups", "internal/procfs", false},
		{"internal/cgroups", "internal/containers", true},
		{"internal/cgroups", "internal/cgroups/sub", false},
		{"internal/cgroups", "os", true},
		{"internal/cgroups", "os/exec", false},
		{"internal/cgroups", "net/netip", true},
		{"internal/cgroups", "go.opentelemetry.io/collector/pdata/pmetric", true},
		{"internal/cgroups", "go.uber.org/zap", false},
		{"internal/cgroups", "internalx/foo", false},
	}
	for _, tt := range tests {
		if got := violates(r, tt.pkg, tt.imp); got != tt.want {
			t.Errorf("%s importing %s: violates = %v, want %v", tt.pkg, tt.imp, got, tt.want)
		}
	}
	if !matches("...", "test/e2e") || matches("...", "strings") || matches("...", "github.com/x/y") {
		t.Error(`"..." must match every package of the module and nothing else`)
	}
}
