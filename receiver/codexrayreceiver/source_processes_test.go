package codexrayreceiver

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/testutil"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// processesFixture is the cgroup v2 fixture host with two processes of its docker container
// given command lines, executables and a mount table: nginx (pid 201) with a docker named
// volume on sda1 at /data, and redis (pid 209).
func processesFixture(t testing.TB) (*processesSource, *containers.Registry, *containers.Container) {
	t.Helper()
	testdata, err := filepath.Abs("../../testdata")
	require.NoError(t, err)
	proc := testutil.CopyTree(t, filepath.Join(testdata, "proc", "v2"))
	native := "/bin/true"
	if _, err := os.Stat(native); err != nil {
		native = "/usr/bin/true"
	}
	write := func(rel, content string) {
		p := filepath.Join(proc, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("201/cmdline", "nginx: master process /usr/sbin/nginx -g daemon off;\x00")
	write("209/cmdline", "redis-server *:6379\x00")
	for _, pid := range []string{"201", "209"} {
		require.NoError(t, os.Symlink(native, filepath.Join(proc, pid, "exe")))
	}
	write("201/mountinfo", "500 400 0:50 / / rw,relatime - overlay overlay rw\n"+
		"501 500 0:51 / /proc rw,nosuid - proc proc rw\n"+
		"503 500 8:1 /var/lib/docker/volumes/pgdata/_data /data rw,relatime - ext4 /dev/sda1 rw\n")
	containerRoot := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(containerRoot, "data"), 0o755))
	require.NoError(t, os.Symlink(containerRoot, filepath.Join(proc, "201", "root")))
	write("1/mountinfo", "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n")
	write("diskstats", "   8       0 sda 1 0 0 0 0 0 0 0 0 0 0\n   8       1 sda1 1 0 0 0 0 0 0 0 0 0 0\n")

	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Cgroups.Root = filepath.Join(testdata, "cgroupfs", "v2")
	cfg.Node.ProcRoot = proc
	cfg.Containers.DockerSocket, cfg.Containers.CRISockets = "", nil
	cfg.Containers.ScanInterval = time.Hour
	cfg = cfg.withProcRoots()
	reg := &containers.Registry{}
	require.NoError(t, reg.Start(cfg.Containers, cfg.Cgroups, nil))
	t.Cleanup(func() { require.NoError(t, reg.Close()) })
	reg.Scan()
	c, ok := reg.ContainerByPID(201)
	require.True(t, ok)
	src := newProcessesSource(sourceEnv{cfg: cfg, settings: receivertest.NewNopSettings(metadata.Type), registry: reg}).(*processesSource)
	require.True(t, src.enabled())
	require.NoError(t, src.start(context.Background(), componenttest.NewNopHost()))
	return src, reg, c
}

// TestProcessesSource: a container's application types are the union over its processes, and
// its volumes are its block-device mounts with the host's statfs figures, the disk and the
// docker volume name.
func TestProcessesSource(t *testing.T) {
	src, reg, c := processesFixture(t)
	mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	now := pcommon.NewTimestampFromTime(time.Now())
	src.recordContainer(mb, now, c)
	got := metricValues(t, mb.Emit())

	var fs syscall.Statfs_t
	require.NoError(t, syscall.Statfs(os.TempDir(), &fs))
	size := float64(fs.Blocks) * float64(fs.Frsize)
	assert.Equal(t, 1.0, got["container.application_type{application_type=nginx}"])
	assert.Equal(t, 1.0, got["container.application_type{application_type=redis}"])
	key := "{device=sda,mount_point=/data,volume=pgdata}"
	assert.InEpsilon(t, size, got["container.resources.disk.size"+key], 0.01, "size of the file system the test's temp dir is on")
	assert.Contains(t, got, "container.resources.disk.used"+key)
	assert.Contains(t, got, "container.resources.disk.reserved"+key)
	assert.Len(t, got, 5, "%v: no series for the overlay root or /proc", got)

	// The fixture has no command line or mount table for the systemd service.
	unit, ok := reg.ContainerByID("/system.slice/nginx.service")
	require.True(t, ok)
	src.recordContainer(mb, now, unit)
	assert.Equal(t, 0, mb.Emit().MetricCount(), "nothing readable of the service's process: no series and no error")
	src.recordNode(mb, now)
	errs := metricValues(t, mb.Emit())
	assert.Equal(t, 0.0, errs["codexray.source.errors{reason=process_unreadable,source=processes}"])
	assert.Equal(t, 0.0, errs["codexray.source.errors{reason=host_mounts_unreadable,source=processes}"])
}

// TestProcessesSourceSwitchedOff: with its metrics switched off the source reads nothing for
// them.
func TestProcessesSourceSwitchedOff(t *testing.T) {
	src, _, c := processesFixture(t)
	src.appTypes, src.volumes = false, false
	mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	src.recordContainer(mb, pcommon.NewTimestampFromTime(time.Now()), c)
	assert.Equal(t, 0, mb.Emit().MetricCount())
}

// BenchmarkProcessesSource is one collection of the processes source for the fixture's docker
// container (two processes, their types cached after the first round; one volume: mount table
// and statfs), the registry's pid index read once per collection as the receiver does.
func BenchmarkProcessesSource(b *testing.B) {
	src, _, c := processesFixture(b)
	mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	b.ReportAllocs()
	for b.Loop() {
		src.recordContainer(mb, pcommon.NewTimestampFromTime(time.Now()), c)
		mb.Emit()
	}
}
