//go:build e2ek8s

package k8s

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/test/k8s/cluster"
)

// workloadsManifest is every workload of the scenario, one per thing a kubelet does that the
// agent must follow. {{CLIENT_TARGET}} is filled with a web pod's IP once it has one.
const workloadsManifest = `
apiVersion: v1
kind: Namespace
metadata: {name: cxk8s-e2e}
---
# Guaranteed QoS (limits = requests), two replicas, rolled out later to a new ReplicaSet.
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: cxk8s-e2e}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 2, maxUnavailable: 0}}
  template:
    metadata:
      labels: {app: web}
      annotations: {revision: "1"}
    spec:
      terminationGracePeriodSeconds: 2
      automountServiceAccountToken: false
      containers:
      - name: httpd
        image: cxk8s/busybox:1
        command: [sh, -c, "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}
        resources:
          requests: {cpu: 200m, memory: 64Mi}
          limits: {cpu: 200m, memory: 64Mi}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: cxk8s-e2e}
spec:
  type: ClusterIP
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, protocol: TCP}]
---
# Burstable QoS: a memory limit only. Allocates until the kernel kills it; the kubelet
# restarts it (restartPolicy Always), with its back-off.
apiVersion: v1
kind: Pod
metadata: {name: oom, namespace: cxk8s-e2e}
spec:
  automountServiceAccountToken: false
  containers:
  - name: hog
    image: cxk8s/busybox:1
    command: [sh, -c, "sleep 3; tail /dev/zero"]
    resources:
      limits: {memory: 20Mi}
---
# BestEffort QoS: logs warnings and errors (and info lines) to stdout and stderr.
apiVersion: v1
kind: Pod
metadata: {name: logger, namespace: cxk8s-e2e}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: cxk8s/busybox:1
    command: [sh, -c, 'i=0; while :; do i=$((i+1)); echo "INFO request $i served in $((i % 9)) ms"; echo "WARN disk usage at $((80 + i % 20)) percent on volume data-$((i % 3))"; echo "ERROR connection to db-$((i % 4)) refused after $((i % 5)) retries" >&2; sleep 1; done']
---
apiVersion: batch/v1
kind: Job
metadata: {name: batch, namespace: cxk8s-e2e}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      containers:
      - name: work
        image: cxk8s/busybox:1
        command: [sh, -c, 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo "batch done after $i iterations"; sleep 12']
        resources:
          requests: {cpu: 100m, memory: 16Mi}
`

// clientManifest connects, every second, to the web Service (the kubelet's WEB_SERVICE_HOST
// and _PORT variables: the Service's ClusterIP) and to one web pod's IP directly.
const clientManifest = `
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: cxk8s-e2e}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: cxk8s/busybox:1
    command: [sh, -c, 'while :; do wget -q -O /dev/null http://$WEB_SERVICE_HOST:$WEB_SERVICE_PORT/; wget -q -O /dev/null http://%s:8080/; sleep 1; done']
    resources:
      limits: {cpu: 100m, memory: 32Mi}
`

// workloads is what startWorkloads made, as the API server reports it.
type workloads struct {
	web       []cluster.Pod // the Deployment's pods before the rollout
	client    cluster.Pod
	oom       cluster.Pod
	logger    cluster.Pod
	job       cluster.Pod
	serviceIP string
}

func startWorkloads(ctx context.Context, t *testing.T, api *cluster.Client) *workloads {
	t.Helper()
	objs, err := cluster.DecodeManifests([]byte(workloadsManifest))
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Create(ctx, objs[0]); err != nil {
		t.Fatal(err)
	}
	// Pods are admitted only once the namespace's default service account exists.
	eventually(ctx, t, "the default service account of "+workloadNS, time.Minute, func() error {
		return api.Get(ctx, "/api/v1/namespaces/"+workloadNS+"/serviceaccounts/default", nil)
	})
	if err := api.Create(ctx, objs[1:]...); err != nil {
		t.Fatal(err)
	}
	w := &workloads{}
	var svc struct {
		Spec struct {
			ClusterIP string `json:"clusterIP"`
		} `json:"spec"`
	}
	if err := api.Get(ctx, "/api/v1/namespaces/"+workloadNS+"/services/web", &svc); err != nil {
		t.Fatal(err)
	}
	w.serviceIP = svc.Spec.ClusterIP
	eventually(ctx, t, "both web pods Ready", 2*time.Minute, func() error {
		pods, err := api.Pods(ctx, workloadNS, "app=web")
		if err != nil {
			return err
		}
		w.web = w.web[:0]
		for i := range pods {
			p := &pods[i]
			if p.Ready() && p.Status.PodIP != "" {
				w.web = append(w.web, *p)
			}
		}
		if len(w.web) != 2 {
			return fmt.Errorf("%d of %d web pods Ready", len(w.web), len(pods))
		}
		return nil
	})
	client, err := cluster.DecodeManifests(fmt.Appendf(nil, clientManifest, w.web[0].Status.PodIP))
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Create(ctx, client...); err != nil {
		t.Fatal(err)
	}
	pod := func(name string) func() (cluster.Pod, error) {
		return func() (cluster.Pod, error) {
			var p cluster.Pod
			err := api.Get(ctx, "/api/v1/namespaces/"+workloadNS+"/pods/"+name, &p)
			return p, err
		}
	}
	running := func(p cluster.Pod) error {
		if !p.Ready() {
			return fmt.Errorf("pod %s %s: %+v", p.Metadata.Name, p.Status.Phase, p.Status.ContainerStatuses)
		}
		return nil
	}
	eventually(ctx, t, "the client and logger pods running", 2*time.Minute, func() error {
		var err error
		if w.client, err = pod("client")(); err != nil {
			return err
		}
		if w.logger, err = pod("logger")(); err != nil {
			return err
		}
		if err := running(w.client); err != nil {
			return err
		}
		return running(w.logger)
	})
	eventually(ctx, t, "the oom pod OOM-killed and restarted by the kubelet", 3*time.Minute, func() error {
		var err error
		if w.oom, err = pod("oom")(); err != nil {
			return err
		}
		for _, cs := range w.oom.Status.ContainerStatuses {
			if cs.RestartCount >= 1 && cs.LastState.Terminated != nil && cs.LastState.Terminated.Reason == "OOMKilled" {
				return nil
			}
		}
		return fmt.Errorf("oom pod: %+v", w.oom.Status.ContainerStatuses)
	})
	eventually(ctx, t, "the Job complete", 3*time.Minute, func() error {
		var job struct {
			Status struct {
				Succeeded int `json:"succeeded"`
				Failed    int `json:"failed"`
			} `json:"status"`
		}
		if err := api.Get(ctx, "/apis/batch/v1/namespaces/"+workloadNS+"/jobs/batch", &job); err != nil {
			return err
		}
		if job.Status.Failed > 0 {
			t.Fatalf("the Job failed: %+v", job.Status)
		}
		pods, err := api.Pods(ctx, workloadNS, "job-name=batch")
		if err != nil {
			return err
		}
		if len(pods) != 1 || job.Status.Succeeded != 1 {
			return fmt.Errorf("Job status %+v, %d pods", job.Status, len(pods))
		}
		w.job = pods[0]
		return nil
	})
	return w
}
