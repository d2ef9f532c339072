package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestIssuedCertificates(t *testing.T) {
	ca, err := newAuthority()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.certPEM)
	tests := []struct {
		id    identity
		usage x509.ExtKeyUsage
	}{
		{identity{user: "system:node:n1", groups: []string{"system:nodes"}}, x509.ExtKeyUsageClientAuth},
		{identity{user: "kube-apiserver", ips: []net.IP{net.ParseIP(NodeIP)}, names: []string{"kubernetes.default"}}, x509.ExtKeyUsageServerAuth},
	}
	for _, tt := range tests {
		l, err := ca.issue(tt.id)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(l.certPEM, l.keyPEM)
		if err != nil {
			t.Fatalf("%s: key and certificate do not pair: %v", tt.id.user, err)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{tt.usage}}
		if len(tt.id.names) > 0 {
			opts.DNSName = tt.id.names[0]
		}
		if _, err := cert.Verify(opts); err != nil {
			t.Errorf("%s: does not verify against the CA for %v: %v", tt.id.user, tt.usage, err)
		}
		// Kubernetes reads the user from CN and the groups from O.
		if cert.Subject.CommonName != tt.id.user || !slices.Equal(cert.Subject.Organization, tt.id.groups) {
			t.Errorf("subject %v, want CN %s O %v", cert.Subject, tt.id.user, tt.id.groups)
		}
		if len(tt.id.ips) > 0 && (len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(tt.id.ips[0])) {
			t.Errorf("IP SANs %v, want %v", cert.IPAddresses, tt.id.ips)
		}
	}
}

func TestKubeconfig(t *testing.T) {
	l := &leaf{certPEM: []byte("CERT"), keyPEM: []byte("KEY")}
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
				CA     string `yaml:"certificate-authority-data"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Cert string `yaml:"client-certificate-data"`
				Key  string `yaml:"client-key-data"`
			} `yaml:"user"`
		} `yaml:"users"`
		Current string `yaml:"current-context"`
	}
	if err := yaml.Unmarshal(kubeconfig("https://127.0.0.1:6443", []byte("CA"), l), &cfg); err != nil {
		t.Fatal(err)
	}
	dec := func(s string) string {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if len(cfg.Clusters) != 1 || len(cfg.Users) != 1 || cfg.Current != "cxk8s" ||
		cfg.Clusters[0].Cluster.Server != "https://127.0.0.1:6443" || dec(cfg.Clusters[0].Cluster.CA) != "CA" ||
		dec(cfg.Users[0].User.Cert) != "CERT" || dec(cfg.Users[0].User.Key) != "KEY" {
		t.Errorf("kubeconfig decoded to %+v", cfg)
	}
}

func TestServiceAccountKeyPair(t *testing.T) {
	dir := t.TempDir()
	priv, pub, err := serviceAccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ path, typ string }{{priv, "EC PRIVATE KEY"}, {pub, "PUBLIC KEY"}} {
		b := readFile(t, f.path)
		if blk, _ := pem.Decode(b); blk == nil || blk.Type != f.typ {
			t.Errorf("%s: want one %s PEM block", f.path, f.typ)
		}
	}
}

func TestCNIConfig(t *testing.T) {
	b, err := cniConfig("/x/ipam")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		CNIVersion string `json:"cniVersion"`
		Plugins    []struct {
			Type      string `json:"type"`
			Bridge    string `json:"bridge"`
			IsGateway bool   `json:"isGateway"`
			IPAM      struct {
				Type    string                `json:"type"`
				DataDir string                `json:"dataDir"`
				Ranges  [][]map[string]string `json:"ranges"`
				Routes  []map[string]string   `json:"routes"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	p := conf.Plugins[0]
	if len(conf.Plugins) != 1 || p.Type != "bridge" || p.Bridge != BridgeName || !p.IsGateway || p.IPAM.Type != "host-local" ||
		p.IPAM.DataDir != "/x/ipam" || p.IPAM.Ranges[0][0]["subnet"] != PodCIDR || p.IPAM.Ranges[0][0]["gateway"] != NodeIP {
		t.Errorf("CNI config %s", b)
	}
	// Pods reach the Service range through the node, and nothing beyond the machine.
	if len(p.IPAM.Routes) != 1 || p.IPAM.Routes[0]["dst"] != ServiceCIDR {
		t.Errorf("routes %v, want only %s", p.IPAM.Routes, ServiceCIDR)
	}
	if _, pods, _ := net.ParseCIDR(PodCIDR); !pods.Contains(net.ParseIP(NodeIP)) {
		t.Errorf("node IP %s is not in the pod subnet %s", NodeIP, PodCIDR)
	}
	if _, svc, _ := net.ParseCIDR(ServiceCIDR); !svc.Contains(net.ParseIP(APIServiceIP)) {
		t.Errorf("%s is not in %s", APIServiceIP, ServiceCIDR)
	}
}

func TestObjectPath(t *testing.T) {
	objs, err := DecodeManifests([]byte(`
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: d, namespace: a}
---
apiVersion: batch/v1
kind: Job
metadata: {name: j, namespace: a}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{
		{"/api/v1/namespaces", "/api/v1/namespaces/a"},
		{"/apis/apps/v1/namespaces/a/daemonsets", "/apis/apps/v1/namespaces/a/daemonsets/d"},
		{"/apis/batch/v1/namespaces/a/jobs", "/apis/batch/v1/namespaces/a/jobs/j"},
	}
	if len(objs) != len(want) {
		t.Fatalf("decoded %d objects, want %d (empty documents skipped)", len(objs), len(want))
	}
	for i, o := range objs {
		coll, path, err := ObjectPath(o)
		if err != nil || coll != want[i][0] || path != want[i][1] {
			t.Errorf("object %d: %s %s %v, want %v", i, coll, path, err, want[i])
		}
	}
	for _, bad := range []map[string]any{
		{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"}},                        // no namespace
		{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"namespace": "a"}},                   // no name
		{"apiVersion": "example/v1", "kind": "Thing", "metadata": map[string]any{"name": "x"}},              // unknown kind
		{"apiVersion": "apps/v1", "kind": "Pod", "metadata": map[string]any{"name": "p", "namespace": "a"}}, // wrong group
	} {
		if _, _, err := ObjectPath(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a/b`: `/a/b`, `/a\040b`: `/a b`, `/x\134y`: `/x\y`, `/t\011`: "/t\t"} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContainerStatusString(t *testing.T) {
	var cs ContainerStatus
	if err := json.Unmarshal([]byte(`{"name":"hog","restartCount":2,"state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off"}},
		"lastState":{"terminated":{"reason":"OOMKilled","exitCode":137}}}`), &cs); err != nil {
		t.Fatal(err)
	}
	got := cs.String()
	for _, want := range []string{"hog", "CrashLoopBackOff", "2 restarts", "OOMKilled", "137"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
