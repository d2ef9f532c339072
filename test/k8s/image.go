package k8s

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/codexray/codexray-node-agent/test/k8s/cluster/ociimage"
)

// AgentImage is the runtime stage of deploy/Dockerfile made without docker: the built
// distribution at /otelcol-codexray, config/otlp.yaml as its default config, the CA bundle
// for TLS exporters, and the shared libraries the binary loads — glibc, and libsystemd with
// its own dependencies, which go-systemd's journal reader dlopens. Entrypoint and command are
// the Dockerfile's.
func AgentImage(root, dist, name string) (*ociimage.Image, error) {
	entrypoint, cmd, err := DockerfileProcess(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		return nil, err
	}
	libs, err := ociimage.SharedLibraries(dist, "libsystemd.so.0")
	if err != nil {
		return nil, err
	}
	files := slices.Concat(libs, []ociimage.File{
		{Path: "/otelcol-codexray", Source: dist, Mode: 0o755},
		{Path: "/etc/otelcol-codexray/config.yaml", Source: filepath.Join(root, "config", "otlp.yaml")},
		{Path: "/tmp", Mode: os.ModeDir | 0o1777},
	})
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		files = append(files, ociimage.File{Path: "/etc/ssl/certs/ca-certificates.crt", Source: "/etc/ssl/certs/ca-certificates.crt"})
	}
	return &ociimage.Image{Name: name, Files: files, Entrypoint: entrypoint, Cmd: cmd}, nil
}

// DockerfileProcess reads the exec-form ENTRYPOINT and CMD of a Dockerfile's last stage.
func DockerfileProcess(path string) (entrypoint, cmd []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		key, rest, _ := strings.Cut(line, " ")
		var dst *[]string
		switch strings.ToUpper(key) {
		case "FROM":
			entrypoint, cmd = nil, nil
			continue
		case "ENTRYPOINT":
			dst = &entrypoint
		case "CMD":
			dst = &cmd
		default:
			continue
		}
		if err := json.Unmarshal([]byte(rest), dst); err != nil {
			return nil, nil, fmt.Errorf("%s: %s is not in exec form: %w", path, line, err)
		}
	}
	if len(entrypoint) == 0 {
		return nil, nil, fmt.Errorf("%s: no ENTRYPOINT in the last stage", path)
	}
	return entrypoint, cmd, sc.Err()
}
