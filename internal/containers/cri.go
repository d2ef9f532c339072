package containers

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criClient asks a CRI runtime (containerd, CRI-O) over gRPC on its unix socket. The
// connection is lazy and reconnects by itself when the runtime restarts.
type criClient struct {
	socket string
	conn   *grpc.ClientConn
	rt     runtimeapi.RuntimeServiceClient

	mu          sync.Mutex
	runtimeName string // from Version, once it answered
}

// maxCRIResponse bounds a response from a misbehaving socket.
const maxCRIResponse = 4 << 20

func newCRIClient(socket string) (*criClient, error) {
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxCRIResponse)),
	)
	if err != nil {
		return nil, fmt.Errorf("CRI client for %s: %w", socket, err)
	}
	return &criClient{socket: socket, conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn)}, nil
}

func (c *criClient) inspect(ctx context.Context, id string) (metadata, error) {
	resp, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err == nil && resp.GetStatus() != nil {
		st := resp.GetStatus()
		m := metadata{
			Name:     st.GetMetadata().GetName(),
			Labels:   st.GetLabels(),
			Restarts: int64(st.GetMetadata().GetAttempt()),
			LogPath:  st.GetLogPath(),
			// Created and not started yet counts as running: it is not gone.
			Running: st.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING ||
				st.GetState() == runtimeapi.ContainerState_CONTAINER_CREATED,
		}
		if img := st.GetImage(); img != nil && img.GetImage() != "" {
			m.Image = img.GetImage()
		} else {
			m.Image = st.GetImageRef()
		}
		m.fillFromKubernetesLabels()
		if m.ContainerName == "" {
			m.ContainerName = m.Name
		}
		if m.PodName == "" || m.Namespace == "" {
			// kubelet adds the io.kubernetes.* labels; a runtime driven by another CRI client
			// (crictl, tests) has only the sandbox's metadata.
			c.fillFromSandbox(ctx, id, &m)
		}
		m.Runtime = c.name(ctx)
		return m, nil
	}
	if err != nil && status.Code(err) != codes.NotFound {
		return metadata{}, fmt.Errorf("CRI ContainerStatus %.12s on %s: %w", id, c.socket, err)
	}
	// Not a container: the pause process of a pod sandbox has its own cgroup too.
	sb, serr := c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if serr == nil && sb.GetStatus() != nil {
		return metadata{Sandbox: true, Labels: sb.GetStatus().GetLabels()}, nil
	}
	if serr != nil && status.Code(serr) != codes.NotFound {
		return metadata{}, fmt.Errorf("CRI PodSandboxStatus %.12s on %s: %w", id, c.socket, serr)
	}
	return metadata{}, errNotFound
}

func (c *criClient) fillFromSandbox(ctx context.Context, id string, m *metadata) {
	list, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: id}})
	if err != nil || len(list.GetContainers()) != 1 {
		return
	}
	sb, err := c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: list.GetContainers()[0].GetPodSandboxId()})
	if err != nil {
		return
	}
	md := sb.GetStatus().GetMetadata()
	if md == nil {
		return
	}
	m.PodName, m.Namespace = md.GetName(), md.GetNamespace()
	if m.PodUID == "" {
		m.PodUID = md.GetUid()
	}
}

// find looks for a Kubernetes container among the runtime's containers, exited ones included
// (the runtime lists them until they are removed): the pod sandboxes of ref's namespace and pod
// name (and pod UID, when known), their containers of ref's name. One that runs is the answer
// (the container is not gone); otherwise the one of ref's attempt, when known, else the newest.
// errNotFound: the runtime answered and lists none.
func (c *criClient) find(ctx context.Context, ref criRef) (string, metadata, error) {
	pods, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return "", metadata{}, fmt.Errorf("CRI ListPodSandbox on %s: %w", c.socket, err)
	}
	var best *runtimeapi.Container
	rank := func(ctr *runtimeapi.Container) int {
		switch {
		case ctr.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING || ctr.GetState() == runtimeapi.ContainerState_CONTAINER_CREATED:
			return 2
		case ref.attempt >= 0 && int(ctr.GetMetadata().GetAttempt()) == ref.attempt:
			return 1
		}
		return 0
	}
	for _, sb := range pods.GetItems() {
		md := sb.GetMetadata()
		if md.GetNamespace() != ref.namespace || md.GetName() != ref.pod || ref.uid != "" && md.GetUid() != ref.uid {
			continue
		}
		list, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: sb.GetId()}})
		if err != nil {
			return "", metadata{}, fmt.Errorf("CRI ListContainers on %s: %w", c.socket, err)
		}
		for _, ctr := range list.GetContainers() {
			if ctr.GetMetadata().GetName() != ref.container {
				continue
			}
			if best == nil || rank(ctr) > rank(best) || rank(ctr) == rank(best) && ctr.GetCreatedAt() > best.GetCreatedAt() {
				best = ctr
			}
		}
	}
	if best == nil {
		return "", metadata{}, errNotFound
	}
	m, err := c.inspect(ctx, best.GetId())
	if errors.Is(err, errNotFound) || err == nil && m.Sandbox {
		return "", metadata{}, errNotFound // removed between the two calls
	}
	return best.GetId(), m, err
}

// name is the runtime's own name ("containerd", "cri-o"), asked once.
func (c *criClient) name(ctx context.Context) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runtimeName == "" {
		if v, err := c.rt.Version(ctx, &runtimeapi.VersionRequest{}); err == nil {
			c.runtimeName = v.GetRuntimeName()
		}
	}
	return c.runtimeName
}

func (c *criClient) close() { _ = c.conn.Close() }
