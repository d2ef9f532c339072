package codexrayreceiver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/logs"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// The log state of a busy node: 100 containers, each with a stream of 200 patterns.
const benchContainers, benchPatterns = 100, 200

var benchVerbs = [...]string{"accepted", "rejected", "queued", "started", "stopped", "retried", "expired", "cached", "evicted", "logged"}

// benchMessage is a message of pattern p (p < benchPatterns): ten verbs and twenty lengths.
func benchMessage(p, n int) string {
	return fmt.Sprintf("INFO %s request %d%s", benchVerbs[p%len(benchVerbs)], n, strings.Repeat(" step", p/len(benchVerbs)))
}

func benchLogsSource(b *testing.B) (*logsSource, *stateStore, *memClient) {
	b.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.Logs.Enabled = false // a reader that reads nothing: its Checkpoint only takes the snapshot
	client := newMemClient()
	store := &stateStore{client: client, logger: zap.NewNop(), staged: map[string][]byte{}, written: map[string]uint64{}, full: true}
	patterns := logs.NewPatterns(cfg.Logs.Patterns, logs.MultilineConfig{})
	for c := range benchContainers {
		for p := range benchPatterns {
			patterns.Message(&logs.Message{
				Container: containers.ID(fmt.Sprintf("/docker/%064d", c)), Source: logs.SourceStdoutStderr,
				Text: benchMessage(p, c*p),
			})
		}
	}
	reader := logs.NewReader(cfg.Logs, nil, patterns, nil)
	if err := reader.Start(context.Background(), store); err != nil {
		b.Fatal(err)
	}
	src := &logsSource{cfg: cfg.Logs, patterns: patterns, reader: reader, state: store}
	return src, store, client
}

// touch counts one more message in every stream, as a busy node does between checkpoints.
func touch(src *logsSource, round int) {
	for c := range benchContainers {
		src.patterns.Message(&logs.Message{
			Container: containers.ID(fmt.Sprintf("/docker/%064d", c)), Source: logs.SourceStdoutStderr,
			Text: benchMessage(round%benchPatterns, round),
		})
	}
}

// BenchmarkCheckpoint is one checkpoint of the log state of a busy node (100 containers × 200
// patterns): every stream's counts changed since the last one ("changed"), or none did
// ("idle"). The baseline is what each collection does anyway with the same state: recording
// every container's message counts ("record").
func BenchmarkCheckpoint(b *testing.B) {
	for _, mode := range []string{"changed", "idle"} {
		b.Run(mode, func(b *testing.B) {
			src, store, client := benchLogsSource(b)
			keepers := []stateKeeper{src}
			if err := store.save(context.Background(), keepers); err != nil { // the first, full one
				b.Fatal(err)
			}
			var written int
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if mode == "changed" {
					b.StopTimer()
					touch(src, i)
					b.StartTimer()
				}
				before := client.bytesWritten
				if err := store.save(context.Background(), keepers); err != nil {
					b.Fatal(err)
				}
				written += client.bytesWritten - before
			}
			b.ReportMetric(float64(written)/float64(b.N), "bytes-written/op")
		})
	}
	b.Run("record", func(b *testing.B) {
		src, _, _ := benchLogsSource(b)
		mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			now := pcommon.NewTimestampFromTime(time.Now())
			for c := range benchContainers {
				recordMessageCounts(mb, now, src.patterns, containers.ID(fmt.Sprintf("/docker/%064d", c)))
			}
			mb.Emit()
		}
	})
}
