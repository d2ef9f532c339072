package cloudmeta

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDetectDMIFixtures(t *testing.T) {
	for _, tc := range []struct {
		tree      string
		want      Provider
		probe     bool
		detectOK  bool // what the exported Detect reports
		detectVal string
	}{
		{"aws-nitro", AWS, false, true, "aws"},
		{"aws-xen", AWS, false, true, "aws"},
		{"xen-ec2-uuid", AWS, true, false, ""},
		{"gcp", GCP, false, true, "gcp"},
		{"azure", Azure, false, true, "azure"},
		{"hyperv", Azure, true, false, ""},
		{"hetzner", Hetzner, false, true, "hetzner"},
		{"digitalocean", DigitalOcean, false, true, "digitalocean"},
		{"oracle", Oracle, false, true, "oracle"},
		{"alibaba", Alibaba, false, true, "alibaba"},
		{"scaleway", Scaleway, false, true, "scaleway"},
		{"qemu-kvm", "", false, false, ""},
		{"dell-server", "", false, false, ""},
		{"empty", "", false, false, ""},
		{"does-not-exist", "", false, false, ""},
	} {
		t.Run(tc.tree, func(t *testing.T) {
			root := filepath.Join("testdata", "dmi", tc.tree)
			d := detectDMI(root)
			if d.provider != tc.want || d.probe != tc.probe {
				t.Errorf("detectDMI = %+v, want provider %q probe %v", d, tc.want, tc.probe)
			}
			if d.provider != "" && d.evidence == "" {
				t.Error("a detection without evidence cannot be logged usefully")
			}
			got, ok := Detect(root)
			if got != tc.detectVal || ok != tc.detectOK {
				t.Errorf("Detect = %q, %v; want %q, %v", got, ok, tc.detectVal, tc.detectOK)
			}
		})
	}
}

// TestDetectThisMachine: the project's VMs are not in a cloud (they have no DMI directory at
// all); detection must say so without error, and a Watcher must publish nothing.
func TestDetectThisMachine(t *testing.T) {
	if d := detectDMI(DefaultDMIRoot); d.provider != "" {
		if _, err := os.Stat(filepath.Join(DefaultDMIRoot, "sys_vendor")); err == nil {
			t.Skipf("this machine's DMI names %s (%s): not the non-cloud example this test is about", d.provider, d.evidence)
		}
		t.Fatalf("detected %+v without a sys_vendor file", d)
	}
	if p, ok := Detect(DefaultDMIRoot); ok || p != "" {
		t.Fatalf("Detect(%s) = %q, %v; want nothing", DefaultDMIRoot, p, ok)
	}
	w := startWatcher(t, DefaultConfig())
	// The goroutine ends by itself when there is nothing to watch.
	<-w.done
	if md, ok := w.Current(); ok || !md.IsZero() {
		t.Fatalf("Current = %+v, %v on a non-cloud machine", md, ok)
	}
	if st := w.Stats(); st.Requests != 0 || st.LastError != "" {
		t.Fatalf("a non-cloud machine made requests or errors: %+v", st)
	}
}
