package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// metadata is what a runtime tells about one container.
type metadata struct {
	Name          string
	Image         string
	Labels        map[string]string
	PodName       string
	PodUID        string
	Namespace     string
	ContainerName string
	Restarts      int64
	LogPath       string
	// Running: the container runs now, or is created and about to (false when unknown).
	Running bool
	Env     map[string]string // see Container.Env
	Runtime string            // the runtime's own name, when it says ("containerd", "cri-o")
	// Sandbox: the id is a pod sandbox (pause container), not an application container.
	Sandbox bool
}

// errNotFound: the runtime answered and does not know the id.
var errNotFound = errors.New("not found")

// Kubernetes labels every CRI runtime (and cri-dockerd) puts on containers.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
)

func (m *metadata) fillFromKubernetesLabels() {
	if m.Labels == nil {
		return
	}
	m.PodName = m.Labels[labelPodName]
	m.Namespace = m.Labels[labelPodNamespace]
	m.PodUID = m.Labels[labelPodUID]
	m.ContainerName = m.Labels[labelContainerName]
}

// dockerClient asks dockerd's HTTP API over its unix socket. Plain net/http: the docker client
// module would pull in far more than the one call needed.
type dockerClient struct {
	socket string
	http   *http.Client
}

func newDockerClient(socket string, timeout time.Duration) *dockerClient {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: timeout,
		DisableCompression:    true,
	}
	return &dockerClient{socket: socket, http: &http.Client{Transport: transport, Timeout: timeout}}
}

// dockerInspect is the part of GET /containers/{id}/json the agent uses.
type dockerInspect struct {
	Name         string
	RestartCount int64
	LogPath      string
	State        struct {
		Running bool
	}
	Config dockerConfig
}

// dockerConfig is the part of an inspected container's Config the agent uses.
type dockerConfig struct {
	Image  string
	Labels map[string]string
	Env    []string // NAME=value
}

// keptEnv are the environment variables Container.Env keeps.
var keptEnv = map[string]bool{
	"NOMAD_ALLOC_ID": true, "NOMAD_GROUP_NAME": true, "NOMAD_JOB_NAME": true, "NOMAD_NAMESPACE": true, "NOMAD_TASK_NAME": true,
}

// envOf keeps the variables of keptEnv from a "NAME=value" list.
func envOf(list []string) map[string]string {
	var env map[string]string
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !keptEnv[k] {
			continue
		}
		if env == nil {
			env = make(map[string]string, len(keptEnv))
		}
		env[k] = v
	}
	return env
}

// maxDockerResponse bounds what a (possibly misbehaving) socket can make the agent read.
const maxDockerResponse = 4 << 20

func (d *dockerClient) inspect(ctx context.Context, id string) (metadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/containers/"+id+"/json", http.NoBody)
	if err != nil {
		return metadata{}, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return metadata{}, fmt.Errorf("docker inspect %.12s: %w", id, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxDockerResponse)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		_, _ = io.Copy(io.Discard, body)
		return metadata{}, errNotFound
	case resp.StatusCode != http.StatusOK:
		_, _ = io.Copy(io.Discard, body)
		return metadata{}, fmt.Errorf("docker inspect %.12s: HTTP %d", id, resp.StatusCode)
	}
	var in dockerInspect
	if err := json.NewDecoder(body).Decode(&in); err != nil {
		return metadata{}, fmt.Errorf("docker inspect %.12s: decoding: %w", id, err)
	}
	m := metadata{
		Name:     strings.TrimPrefix(in.Name, "/"),
		Image:    in.Config.Image,
		Labels:   in.Config.Labels,
		Restarts: in.RestartCount,
		LogPath:  in.LogPath,
		Running:  in.State.Running,
		Env:      envOf(in.Config.Env),
	}
	m.fillFromKubernetesLabels()
	if m.Labels["io.kubernetes.docker.type"] == "podsandbox" {
		m.Sandbox = true
	}
	return m, nil
}

func (d *dockerClient) close() { d.http.CloseIdleConnections() }
