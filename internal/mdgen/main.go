// Command mdgen writes a receiver's internal/metadata package and documentation.md from its
// metadata.yaml. It replaces the collector's mdatagen, which is not obtainable here, for the
// subset of the schema this project uses. Run by `make generate` (go generate).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	dir := flag.String("dir", ".", "receiver directory holding metadata.yaml")
	scope := flag.String("scope", "github.com/codexray/codexray-node-agent/receiver/codexrayreceiver", "instrumentation scope name")
	check := flag.Bool("check", false, "report stale generated files instead of writing them")
	flag.Parse()
	if err := run(*dir, *scope, *check); err != nil {
		fmt.Fprintln(os.Stderr, "mdgen:", err)
		os.Exit(1)
	}
}

func run(dir, scope string, check bool) error {
	files, err := generateDir(dir, scope)
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(files) {
		path := filepath.Join(dir, name)
		if check {
			old, _ := os.ReadFile(path)
			if !bytes.Equal(old, files[name]) {
				return fmt.Errorf("%s is stale: run make generate", path)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func generateDir(dir, scope string) (map[string][]byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, "metadata.yaml"))
	if err != nil {
		return nil, err
	}
	md, err := ParseMetadata(data)
	if err != nil {
		return nil, err
	}
	return Generate(md, scope)
}
