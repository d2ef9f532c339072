package containers

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// TestRestartCountStart: container.restarts is a cumulative count under RestartsSince. A
// container restarted by kubelet in the same pod (attempt+1) continues the count under the same
// start; a pod re-created under the same name (a StatefulSet pod: new pod UID, attempts from 0
// again) lands on the same ID, so its count begins anew at the time it was observed.
func TestRestartCountStart(t *testing.T) {
	const (
		id6       = "0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad"
		newPodUID = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"
		k8sID     = ID("/k8s/shop/api-7d9f/api")
	)
	podDirOf := func(uid string) string {
		return "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
	}
	labelsOf := func(uid string) map[string]string {
		return map[string]string{labelPodName: "api-7d9f", labelPodNamespace: "shop", labelPodUID: uid, labelContainerName: "api"}
	}
	for _, tc := range []struct {
		name                   string
		oldAttempt, newAttempt uint32
		newPodUID              string
		wantNewStart           bool
	}{
		{name: "restart in the same pod", oldAttempt: 3, newAttempt: 4, newPodUID: podUID},
		{name: "pod re-created, count drops", oldAttempt: 3, newAttempt: 0, newPodUID: newPodUID, wantNewStart: true},
		{name: "pod re-created, count equal", oldAttempt: 0, newAttempt: 0, newPodUID: newPodUID, wantNewStart: true},
		{name: "attempt lower in the same pod", oldAttempt: 3, newAttempt: 1, newPodUID: podUID, wantNewStart: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			criSock := serveCRI(t, &fakeCRI{containers: map[string]*runtimeapi.ContainerStatus{
				id2: {Id: id2, Metadata: &runtimeapi.ContainerMetadata{Name: "api", Attempt: tc.oldAttempt}, Labels: labelsOf(podUID)},
				id6: {Id: id6, Metadata: &runtimeapi.ContainerMetadata{Name: "api", Attempt: tc.newAttempt}, Labels: labelsOf(tc.newPodUID)},
			}})
			root := testutil.CopyTree(t, filepath.Join(testdata, "cgroupfs", "v2"))
			proc := copyProc(t)
			clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			cfg := testConfig()
			cfg.CRISockets = []string{criSock}
			r := startAt(t, cfg, root, proc, clk)

			first, ok := r.ContainerByID(k8sID)
			if !ok || first.Restarts != int64(tc.oldAttempt) || !first.RestartsSince.Equal(first.FirstSeen) || first.FirstSeen.IsZero() {
				t.Fatalf("before: %+v; want restarts %d counted since it was first seen", first, tc.oldAttempt)
			}

			clk.add(time.Minute)
			observedAt := clk.now()
			removeAll(filepath.Join(proc, "202"))
			r.OnProcessExit(202)
			removeAll(filepath.Join(root, podDirOf(podUID)))
			newCgroup := podDirOf(tc.newPodUID) + "/cri-containerd-" + id6 + ".scope"
			writeCgroup(t, filepath.Join(root, newCgroup), "1000")
			writeProc(t, proc, "210", "0::"+newCgroup+"\n")
			r.Scan()

			second, ok := r.ContainerByID(k8sID)
			if !ok || second.RuntimeID != id6 || second.PodUID != tc.newPodUID || second.Restarts != int64(tc.newAttempt) {
				t.Fatalf("after: %+v; want runtime id %.12s, pod %s, restarts %d", second, id6, tc.newPodUID, tc.newAttempt)
			}
			wantStart := first.RestartsSince
			if tc.wantNewStart {
				wantStart = observedAt
			}
			if !second.RestartsSince.Equal(wantStart) {
				t.Fatalf("restarts counted since %v, want %v", second.RestartsSince, wantStart)
			}

			// Refreshing the unchanged metadata later keeps the start.
			clk.add(time.Minute)
			r.refreshMetadata(r.ctx)
			if c, _ := r.ContainerByID(k8sID); !c.RestartsSince.Equal(wantStart) || c.Restarts != int64(tc.newAttempt) {
				t.Fatalf("after a refresh: restarts %d since %v, want %d since %v", c.Restarts, c.RestartsSince, tc.newAttempt, wantStart)
			}
		})
	}
}

// TestDockerRestartCountStart: dockerd's RestartCount rises with each restart by its restart
// policy and falls back when the container is started by hand; a fall starts the count anew.
func TestDockerRestartCountStart(t *testing.T) {
	var restartCount atomic.Int64
	restartCount.Store(2)
	socket := shortSocket(t, "docker.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/containers/"+id1+"/json" {
			http.Error(w, `{"message":"No such container"}`, http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(dockerInspect{Name: "/web", RestartCount: restartCount.Load()})
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := testConfig()
	cfg.DockerSocket = socket
	r := startFixture(t, cfg, copyProc(t), clk)
	first, ok := r.ContainerByRuntimeID(id1)
	if !ok || first.Restarts != 2 || !first.RestartsSince.Equal(first.FirstSeen) {
		t.Fatalf("docker container: %+v; want restarts 2 counted since it was first seen", first)
	}
	since := first.RestartsSince
	for _, step := range []struct {
		count    int64
		newStart bool
	}{
		{count: 3},                 // restarted by its policy
		{count: 3},                 // unchanged
		{count: 0, newStart: true}, // started by hand: dockerd reset the count
		{count: 1},
	} {
		clk.add(time.Minute)
		restartCount.Store(step.count)
		r.refreshMetadata(r.ctx)
		if step.newStart {
			since = clk.now()
		}
		c, _ := r.ContainerByRuntimeID(id1)
		if c.Restarts != step.count || !c.RestartsSince.Equal(since) {
			t.Fatalf("RestartCount %d: restarts %d since %v, want since %v", step.count, c.Restarts, c.RestartsSince, since)
		}
	}
}
