package containers

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// shortSocket returns a unix socket path short enough for sun_path (108 bytes).
func shortSocket(t *testing.T, name string) string {
	t.Helper()
	dir, err := filepathTempDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAll(dir) })
	return filepath.Join(dir, name)
}

// fakeDocker serves GET /containers/<id>/json for the given containers on a unix socket.
func fakeDocker(t *testing.T, containers map[string]dockerInspect) (socket string, requests *atomic.Int64) {
	t.Helper()
	return fakeDockerAt(t, shortSocket(t, "docker.sock"), containers)
}

func fakeDockerAt(t *testing.T, socket string, containers map[string]dockerInspect) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	requests := new(atomic.Int64)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		requests.Add(1)
		id := strings.TrimSuffix(strings.TrimPrefix(req.URL.Path, "/containers/"), "/json")
		c, ok := containers[id]
		if !ok {
			http.Error(w, `{"message":"No such container"}`, http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(c)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return socket, requests
}

// fakeCRI answers ContainerStatus, PodSandboxStatus and their listings like containerd's CRI
// plugin. A container's sandbox is listed in inSandbox (ListContainers filters by it).
type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	containers map[string]*runtimeapi.ContainerStatus
	sandboxes  map[string]*runtimeapi.PodSandboxStatus
	inSandbox  map[string]string // container id -> sandbox id
	lists      atomic.Int64      // ListPodSandbox calls
}

func (f *fakeCRI) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f.lists.Add(1)
	resp := &runtimeapi.ListPodSandboxResponse{}
	for id, st := range f.sandboxes {
		resp.Items = append(resp.Items, &runtimeapi.PodSandbox{Id: id, Metadata: st.GetMetadata(), State: st.GetState()})
	}
	return resp, nil
}

func (f *fakeCRI) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	resp := &runtimeapi.ListContainersResponse{}
	for id, st := range f.containers {
		sb := f.inSandbox[id]
		if want := req.GetFilter().GetPodSandboxId(); want != "" && sb != want {
			continue
		}
		if want := req.GetFilter().GetId(); want != "" && id != want {
			continue
		}
		resp.Containers = append(resp.Containers, &runtimeapi.Container{
			Id: id, PodSandboxId: sb, Metadata: st.GetMetadata(), State: st.GetState(), CreatedAt: st.GetCreatedAt(),
			Image: st.GetImage(), ImageRef: st.GetImageRef(), Labels: st.GetLabels(),
		})
	}
	return resp, nil
}

func (f *fakeCRI) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if st, ok := f.containers[req.GetContainerId()]; ok {
		return &runtimeapi.ContainerStatusResponse{Status: st}, nil
	}
	return nil, status.Errorf(codes.NotFound, "an error occurred when try to find container %q: not found", req.GetContainerId())
}

func (f *fakeCRI) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	if st, ok := f.sandboxes[req.GetPodSandboxId()]; ok {
		return &runtimeapi.PodSandboxStatusResponse{Status: st}, nil
	}
	return nil, status.Errorf(codes.NotFound, "an error occurred when try to find sandbox %q: not found", req.GetPodSandboxId())
}

func serveCRI(t *testing.T, f *fakeCRI) string {
	t.Helper()
	return serveCRIAt(t, shortSocket(t, "cri.sock"), f)
}

func serveCRIAt(t *testing.T, socket string, f *fakeCRI) string {
	t.Helper()
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, f)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return socket
}

// badSocket accepts connections and either answers garbage or never answers.
func badSocket(t *testing.T, garbage bool) string {
	t.Helper()
	socket := shortSocket(t, "bad.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	connCh := make(chan net.Conn)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(connCh)
				return
			}
			connCh <- c
		}
	}()
	go func() {
		for c := range connCh {
			conns = append(conns, c)
			if garbage {
				_, _ = c.Write([]byte("\x00\xffthis is not HTTP nor HTTP/2\r\n\r\n\x07garbage"))
				_ = c.Close()
			}
			// else: hold the connection open and say nothing
		}
		for _, c := range conns {
			_ = c.Close()
		}
		close(done)
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
	return socket
}
