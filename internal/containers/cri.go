package containers

import (
	"context"
	"fmt"

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

func (c *criClient) close() { _ = c.conn.Close() }
