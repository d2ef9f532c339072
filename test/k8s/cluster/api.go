package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Client speaks the API server's REST API with a client certificate: enough to create
// objects from manifests, read them back, patch and delete them. The project needs no
// client-go for that.
type Client struct {
	base string
	http *http.Client
}

func newClient(base string, caPEM, certPEM, keyPEM []byte) (*Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	return &Client{base: base, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// StatusError is an API error response.
type StatusError struct {
	Code    int
	Reason  string
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Code, e.Reason, e.Message)
}

// IsNotFound reports a 404 from the API server.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

func (c *Client) raw(ctx context.Context, method, path string, body []byte, contentType string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		se := &StatusError{Code: resp.StatusCode, Message: strings.TrimSpace(string(b))}
		var st struct{ Reason, Message string }
		if json.Unmarshal(b, &st) == nil && st.Message != "" {
			se.Reason, se.Message = st.Reason, st.Message
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, se)
	}
	return b, nil
}

// Get reads the object at path into out (when not nil).
func (c *Client) Get(ctx context.Context, path string, out any) error {
	b, err := c.raw(ctx, http.MethodGet, path, nil, "")
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// MergePatch applies a JSON merge patch (RFC 7386) to the object at path.
func (c *Client) MergePatch(ctx context.Context, path string, patch any) error {
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	_, err = c.raw(ctx, http.MethodPatch, path, b, "application/merge-patch+json")
	return err
}

// Delete deletes the object at path, its dependents in the background; a missing object
// is no error.
func (c *Client) Delete(ctx context.Context, path string) error {
	_, err := c.raw(ctx, http.MethodDelete, path, []byte(`{"propagationPolicy":"Background"}`), "application/json")
	if IsNotFound(err) {
		return nil
	}
	return err
}

// Create creates each object (a manifest document decoded into a map).
func (c *Client) Create(ctx context.Context, objs ...map[string]any) error {
	for _, obj := range objs {
		collection, _, err := ObjectPath(obj)
		if err != nil {
			return err
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		if _, err := c.raw(ctx, http.MethodPost, collection, b, "application/json"); err != nil {
			return err
		}
	}
	return nil
}

// kinds maps the kinds the project's manifests and the scenario use to their REST
// resources: group-version path, plural, namespaced.
var kinds = map[string]struct {
	prefix, plural string
	namespaced     bool
}{
	"v1/Namespace":       {"/api/v1", "namespaces", false},
	"v1/ServiceAccount":  {"/api/v1", "serviceaccounts", true},
	"v1/ConfigMap":       {"/api/v1", "configmaps", true},
	"v1/Service":         {"/api/v1", "services", true},
	"v1/Pod":             {"/api/v1", "pods", true},
	"apps/v1/DaemonSet":  {"/apis/apps/v1", "daemonsets", true},
	"apps/v1/Deployment": {"/apis/apps/v1", "deployments", true},
	"batch/v1/Job":       {"/apis/batch/v1", "jobs", true},
	"rbac.authorization.k8s.io/v1/ClusterRole":        {"/apis/rbac.authorization.k8s.io/v1", "clusterroles", false},
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": {"/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", false},
}

// ObjectPath returns the collection an object is created in and the object's own path.
func ObjectPath(obj map[string]any) (collection, path string, err error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	k, ok := kinds[apiVersion+"/"+kind]
	if !ok {
		return "", "", fmt.Errorf("kind %s/%s is not known to this client", apiVersion, kind)
	}
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	if name == "" {
		return "", "", fmt.Errorf("%s without metadata.name", kind)
	}
	collection = k.prefix + "/" + k.plural
	if k.namespaced {
		if ns == "" {
			return "", "", fmt.Errorf("%s %s without metadata.namespace", kind, name)
		}
		collection = k.prefix + "/namespaces/" + ns + "/" + k.plural
	}
	return collection, collection + "/" + name, nil
}

// DecodeManifests splits a multi-document YAML manifest into objects.
func DecodeManifests(data []byte) ([]map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var objs []map[string]any
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if obj != nil {
			objs = append(objs, obj)
		}
	}
}

// The parts of API objects the scenario reads.

// ObjectMeta is metadata.
type ObjectMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace"`
	UID             string            `json:"uid"`
	Labels          map[string]string `json:"labels"`
	OwnerReferences []struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"ownerReferences"`
	DeletionTimestamp *time.Time `json:"deletionTimestamp"`
}

// Condition is a status condition.
type Condition struct {
	Type   string `json:"type"`
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// Node is a node.
type Node struct {
	Metadata ObjectMeta `json:"metadata"`
	Status   struct {
		Conditions []Condition `json:"conditions"`
	} `json:"status"`
}

// Ready reports the node's Ready condition.
func (n *Node) Ready() bool { return conditionTrue(n.Status.Conditions, "Ready") }

// ContainerStatus is one container's status in a pod.
type ContainerStatus struct {
	Name         string `json:"name"`
	ContainerID  string `json:"containerID"`
	Ready        bool   `json:"ready"`
	RestartCount int    `json:"restartCount"`
	State        struct {
		Running *struct {
			StartedAt time.Time `json:"startedAt"`
		} `json:"running"`
		Terminated *struct {
			Reason     string    `json:"reason"`
			ExitCode   int       `json:"exitCode"`
			FinishedAt time.Time `json:"finishedAt"`
		} `json:"terminated"`
		Waiting *struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"waiting"`
	} `json:"state"`
	LastState struct {
		Terminated *struct {
			Reason   string `json:"reason"`
			ExitCode int    `json:"exitCode"`
		} `json:"terminated"`
	} `json:"lastState"`
}

// Pod is a pod.
type Pod struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     struct {
		NodeName   string `json:"nodeName"`
		Containers []struct {
			Name string `json:"name"`
		} `json:"containers"`
	} `json:"spec"`
	Status struct {
		Phase             string            `json:"phase"`
		PodIP             string            `json:"podIP"`
		Conditions        []Condition       `json:"conditions"`
		ContainerStatuses []ContainerStatus `json:"containerStatuses"`
	} `json:"status"`
}

// Ready reports the pod's Ready condition.
func (p *Pod) Ready() bool { return conditionTrue(p.Status.Conditions, "Ready") }

// PodList is a list of pods.
type PodList struct {
	Items []Pod `json:"items"`
}

// Pods lists a namespace's pods, optionally by label selector ("app=web").
func (c *Client) Pods(ctx context.Context, namespace, selector string) ([]Pod, error) {
	path := "/api/v1/namespaces/" + namespace + "/pods"
	if selector != "" {
		path += "?labelSelector=" + selector
	}
	var l PodList
	if err := c.Get(ctx, path, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

func conditionTrue(cs []Condition, typ string) bool {
	for _, c := range cs {
		if c.Type == typ {
			return c.Status == "True"
		}
	}
	return false
}

// String says the container's state the way kubectl describes it.
func (cs ContainerStatus) String() string {
	state := "unknown"
	switch s := cs.State; {
	case s.Running != nil:
		state = "running since " + s.Running.StartedAt.Format(time.RFC3339)
	case s.Terminated != nil:
		state = fmt.Sprintf("terminated (%s, exit %d)", s.Terminated.Reason, s.Terminated.ExitCode)
	case s.Waiting != nil:
		state = fmt.Sprintf("waiting (%s: %s)", s.Waiting.Reason, s.Waiting.Message)
	}
	last := ""
	if t := cs.LastState.Terminated; t != nil {
		last = fmt.Sprintf(", last terminated (%s, exit %d)", t.Reason, t.ExitCode)
	}
	return fmt.Sprintf("%s: %s, ready %v, %d restarts%s", cs.Name, state, cs.Ready, cs.RestartCount, last)
}
