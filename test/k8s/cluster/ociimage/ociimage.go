// Package ociimage writes container images as OCI image-layout tarballs, the form
// `ctr images import` reads, from files of the host: the e2e-k8s scenario runs the agent and
// its workloads in a real kubelet without a registry and without docker build.
//
// It owns the image format only (one uncompressed layer, a config, a manifest, an index). It
// must not import the project's packages or talk to a runtime.
package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"
)

// File is one entry of the image's file system.
type File struct {
	// Path inside the image, absolute ("/bin/sh").
	Path string
	// Exactly one of Source (a host file whose content is copied), Data, Link, or a Mode
	// with os.ModeDir (an empty directory).
	Source string
	Data   []byte
	Link   string // symbolic link target
	// Mode of a regular file; 0 takes the source file's mode (0644 for Data).
	Mode os.FileMode
}

// Image is what the runtime needs to run a container: the files and the process.
type Image struct {
	// Name is the full reference, e.g. "docker.io/codexray-test/busybox:1"; ctr imports
	// the image under it.
	Name       string
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
}

// Media types of the OCI image spec v1.
const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
)

// Descriptor points at a blob.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Platform of an image in the index.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// Manifest is an OCI image manifest.
type Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// Index is the index.json of an image layout.
type Index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// Config is the image configuration.
type Config struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint []string `json:"Entrypoint,omitempty"`
		Cmd        []string `json:"Cmd,omitempty"`
		Env        []string `json:"Env,omitempty"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// epoch is every entry's modification time: the same files give the same image digest.
var epoch = time.Unix(0, 0).UTC()

// WriteLayout writes the image as an OCI image-layout tar stream to w.
func (img *Image) WriteLayout(w io.Writer) error {
	if img.Name == "" || !strings.Contains(img.Name, ":") {
		return fmt.Errorf("image name %q: want a full reference with a tag", img.Name)
	}
	layer, err := img.layer()
	if err != nil {
		return err
	}
	layerDesc := describe(mediaLayer, layer)

	var cfg Config
	cfg.Architecture, cfg.OS = runtime.GOARCH, "linux"
	cfg.Config.Entrypoint, cfg.Config.Cmd, cfg.Config.Env = img.Entrypoint, img.Cmd, img.Env
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{layerDesc.Digest} // uncompressed: the diff id is the digest
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(Manifest{
		SchemaVersion: 2, MediaType: mediaManifest,
		Config: describe(mediaConfig, cfgJSON), Layers: []Descriptor{layerDesc},
	})
	if err != nil {
		return err
	}
	mdesc := describe(mediaManifest, manifest)
	mdesc.Platform = &Platform{Architecture: cfg.Architecture, OS: cfg.OS}
	tag := img.Name[strings.LastIndexByte(img.Name, ':')+1:]
	mdesc.Annotations = map[string]string{
		"io.containerd.image.name":          img.Name,
		"org.opencontainers.image.ref.name": tag,
	}
	index, err := json.Marshal(Index{SchemaVersion: 2, MediaType: mediaIndex, Manifests: []Descriptor{mdesc}})
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir}); err != nil {
			return err
		}
	}
	for _, b := range [][]byte{layer, cfgJSON, manifest} {
		if err := put("blobs/sha256/"+hexDigest(b), b); err != nil {
			return err
		}
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	return tw.Close()
}

// layer is the tar of the image's files, with every parent directory made explicit.
func (img *Image) layer() ([]byte, error) {
	files := slices.Clone(img.Files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	seen := map[string]bool{}
	var mkdirs func(dir string) error
	mkdirs = func(dir string) error {
		if dir == "/" || dirs[dir] {
			return nil
		}
		if seen[dir] {
			return fmt.Errorf("image path %s is a file and a directory", dir)
		}
		if err := mkdirs(path.Dir(dir)); err != nil {
			return err
		}
		dirs[dir] = true
		return tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir})
	}
	for _, f := range files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return nil, fmt.Errorf("image path %q: want a clean absolute file path", f.Path)
		}
		if seen[f.Path] || dirs[f.Path] {
			return nil, fmt.Errorf("image path %s given twice", f.Path)
		}
		if err := mkdirs(path.Dir(f.Path)); err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(f.Path, "/")
		if !f.Mode.IsDir() {
			seen[f.Path] = true
		}
		switch {
		case f.Mode.IsDir():
			if err := mkdirs(f.Path); err != nil {
				return nil, err
			}
		case f.Link != "":
			if err := tw.WriteHeader(&tar.Header{Name: name, Linkname: f.Link, Mode: 0o777, ModTime: epoch, Typeflag: tar.TypeSymlink}); err != nil {
				return nil, err
			}
		case f.Source != "":
			data, err := os.ReadFile(f.Source)
			if err != nil {
				return nil, fmt.Errorf("image file %s: %w", f.Path, err)
			}
			mode := f.Mode
			if mode == 0 {
				st, err := os.Stat(f.Source)
				if err != nil {
					return nil, err
				}
				mode = st.Mode().Perm()
			}
			if err := writeRegular(tw, name, mode, data); err != nil {
				return nil, err
			}
		case f.Data != nil:
			mode := f.Mode
			if mode == 0 {
				mode = 0o644
			}
			if err := writeRegular(tw, name, mode, f.Data); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("image file %s: no source, data or link", f.Path)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeRegular(tw *tar.Writer, name string, mode os.FileMode, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(mode.Perm()), Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func describe(mediaType string, blob []byte) Descriptor {
	return Descriptor{MediaType: mediaType, Digest: "sha256:" + hexDigest(blob), Size: int64(len(blob))}
}

func hexDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// WriteFile writes the layout tarball to a file.
func (img *Image) WriteFile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := img.WriteLayout(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ErrNotDynamic is returned by SharedLibraries for a statically linked binary.
var ErrNotDynamic = errors.New("not a dynamic executable")
