package containers

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// criRefOf takes the names a Kubernetes container's ID tells, and the pod UID and attempt of a
// CRI log path only when that path names the same container.
func TestCRIRefOf(t *testing.T) {
	const (
		uid  = "5f0c4c9a-0000-4000-8000-000000000001"
		pods = "/var/log/pods/"
	)
	byID := criRef{namespace: "batch", pod: "job-x", container: "work", attempt: -1}
	withPath := func(p string, attempt int) criRef {
		r := byID
		r.uid, r.attempt, r.logPath = uid, attempt, p
		return r
	}
	for _, tc := range []struct {
		name    string
		id      ID
		logPath string
		want    criRef
		ok      bool
	}{
		{"ID alone", "/k8s/batch/job-x/work", "", byID, true},
		{"its log path", "/k8s/batch/job-x/work", pods + "batch_job-x_" + uid + "/work/0.log", withPath(pods+"batch_job-x_"+uid+"/work/0.log", 0), true},
		{"a later attempt", "/k8s/batch/job-x/work", pods + "batch_job-x_" + uid + "/work/3.log", withPath(pods+"batch_job-x_"+uid+"/work/3.log", 3), true},
		{"another container's path", "/k8s/batch/job-x/work", pods + "batch_job-x_" + uid + "/sidecar/0.log", byID, true},
		{"another pod's path", "/k8s/batch/job-x/work", pods + "batch_job-y_" + uid + "/work/0.log", byID, true},
		{"another namespace's path", "/k8s/batch/job-x/work", pods + "default_job-x_" + uid + "/work/0.log", byID, true},
		{"no UID in the path", "/k8s/batch/job-x/work", pods + "batch_job-x_/work/0.log", byID, true},
		{"not an attempt", "/k8s/batch/job-x/work", pods + "batch_job-x_" + uid + "/work/x.log", byID, true},
		{"a negative attempt", "/k8s/batch/job-x/work", pods + "batch_job-x_" + uid + "/work/-1.log", byID, true},
		{"a rotated file", "/k8s/batch/job-x/work", pods + "batch_job-x_" + uid + "/work/0.log.20260101-000000", byID, true},
		{"a docker json-file", "/k8s/batch/job-x/work", "/var/lib/docker/containers/abc/abc-json.log", byID, true},
		{"a docker ID", "/docker/abc", "", criRef{}, false},
		{"too few names", "/k8s/batch/job-x", "", criRef{}, false},
		{"too many names", "/k8s/batch/job-x/work/more", "", criRef{}, false},
		{"an empty name", "/k8s/batch//work", "", criRef{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := criRefOf(tc.id, tc.logPath)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("criRefOf(%q, %q) = %+v, %v; want %+v, %v", tc.id, tc.logPath, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// Whatever the ID and the path, a reference names the container of the ID, and takes from a
// path only a UID and an attempt that the path's own names hold beside that container's.
func FuzzCRIRefOf(f *testing.F) {
	f.Add("/k8s/batch/job-x/work", "/var/log/pods/batch_job-x_5f0c4c9a/work/0.log")
	f.Add("/k8s/batch/job-x/work", "")
	f.Add("/k8s/a/b/c", "a_b_u/c/+1.log")
	f.Add("/docker/abc", "/var/lib/docker/containers/abc/abc-json.log")
	f.Add("/k8s/a_b/c/d", "/x/a_b_c_u/d/0.log")
	f.Fuzz(func(t *testing.T, id, logPath string) {
		ref, ok := criRefOf(ID(id), logPath)
		if !ok {
			if ref != (criRef{}) {
				t.Fatalf("not a Kubernetes ID, yet %+v", ref)
			}
			return
		}
		if "/k8s/"+ref.namespace+"/"+ref.pod+"/"+ref.container != id || ref.namespace == "" || ref.pod == "" || ref.container == "" ||
			strings.Contains(ref.namespace+ref.pod+ref.container, "/") {
			t.Fatalf("%q: %+v", id, ref)
		}
		if ref.logPath == "" {
			if ref.uid != "" || ref.attempt != -1 {
				t.Fatalf("a UID or attempt without a path: %+v", ref)
			}
			return
		}
		if ref.logPath != logPath || ref.uid == "" || strings.ContainsAny(ref.uid, "_/") || ref.attempt < 0 {
			t.Fatalf("%q: %+v", logPath, ref)
		}
		attempt, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(logPath), ".log"))
		ctrDir := filepath.Dir(logPath)
		if err != nil || attempt != ref.attempt || filepath.Base(ctrDir) != ref.container ||
			filepath.Base(filepath.Dir(ctrDir)) != ref.namespace+"_"+ref.pod+"_"+ref.uid {
			t.Fatalf("%q does not name %+v", logPath, ref)
		}
	})
}
