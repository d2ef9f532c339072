package logpatterns

import (
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchTemplates shape the generated corpus: common formats of container logs.
var benchTemplates = []string{
	`%s INFO  [http-nio-8080-exec-%d] c.e.api.OrderController - order %d created for customer %s in %dms`,
	`%s ERROR [worker-%d] c.e.jobs.Sync - sync of tenant %d failed: connection to 10.0.%d.%d:5432 refused`,
	`{"time":"%s","level":"info","msg":"request served","status":%d,"path":"/api/v1/items/%d","user":"%s","duration":"%dms"}`,
	`time=%s level=warn msg="slow query" table=orders rows=%d elapsed=%d.%ds client=%s`,
	`I%s    %d reflector.go:%d] Listing and watching *v1.Pod from k8s.io/client-go/informers/factory.go:%d`,
	`%s 127.0.0.1 - %s [GET /static/app.%d.js HTTP/1.1] %d %d "-" "Mozilla/5.0"`,
	`%s WARN  cache eviction: %d entries removed, %d remaining, key prefix %s`,
	`%s DEBUG upstream %s:%d healthy=true latency=%dus`,
}

func benchCorpus(n int) []string {
	r := rand.New(rand.NewPCG(42, 7))
	words := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	lines := make([]string, n)
	for i := range lines {
		ts := fmt.Sprintf("2024-03-%02dT%02d:%02d:%02d.%03dZ", 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000))
		w := words[r.IntN(len(words))]
		a, b, c, d := r.IntN(100000), r.IntN(256), r.IntN(256), r.IntN(1000)
		switch i % len(benchTemplates) {
		case 0:
			lines[i] = fmt.Sprintf(benchTemplates[0], ts, b, a, w, d)
		case 1:
			lines[i] = fmt.Sprintf(benchTemplates[1], ts, b, a, b, c)
		case 2:
			lines[i] = fmt.Sprintf(benchTemplates[2], ts, 200+b%5, a, w, d)
		case 3:
			lines[i] = fmt.Sprintf(benchTemplates[3], ts, a, b, c, w)
		case 4:
			lines[i] = fmt.Sprintf(benchTemplates[4], ts[5:10], a, b, d)
		case 5:
			lines[i] = fmt.Sprintf(benchTemplates[5], ts, w, a, 200+b%5, d)
		case 6:
			lines[i] = fmt.Sprintf(benchTemplates[6], ts, a, d, w)
		default:
			lines[i] = fmt.Sprintf(benchTemplates[7], ts, w, 1024+a, d)
		}
	}
	return lines
}

func benchAdd(b *testing.B, lines []string) {
	b.Helper()
	var bytes int64
	for _, l := range lines {
		bytes += int64(len(l))
	}
	b.SetBytes(bytes / int64(len(lines)))
	b.ReportAllocs()
	e := NewExtractor(DefaultConfig())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Add(lines[i%len(lines)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkExtractor measures Add, one message per op (SetBytes is the mean message size).
// The loghub case replays the Content of the 12 Loghub-2k systems when ../shared/loghub2k
// exists next to the repository.
func BenchmarkExtractor(b *testing.B) {
	b.Run("corpus", func(b *testing.B) { benchAdd(b, benchCorpus(20000)) })
	b.Run("loghub", func(b *testing.B) {
		lines := loghubContent(b)
		benchAdd(b, lines)
	})
}

// BenchmarkRawReplay is the agent's path for a file, as codexray-logpatterns' summary mode
// runs it: the raw lines of the 12 Loghub-2k systems, headers included, through one Joiner
// and one Extractor per system, one line per op.
func BenchmarkRawReplay(b *testing.B) {
	dir := filepath.Join("..", "..", "..", "shared", "loghub2k")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*_2k.log"))
	if len(files) == 0 {
		b.Skipf("%s absent", dir)
	}
	var systems [][]string
	var total, bytes int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		systems = append(systems, lines)
		total += len(lines)
		bytes += len(data)
	}
	joiners := make([]*Joiner, len(systems))
	extractors := make([]*Extractor, len(systems))
	for i := range systems {
		joiners[i] = NewJoiner(DefaultJoinerConfig())
		extractors[i] = NewExtractor(DefaultConfig())
	}
	var now time.Time
	b.SetBytes(int64(bytes / total))
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; {
		for s, lines := range systems {
			j, e := joiners[s], extractors[s]
			for _, l := range lines {
				if m, ok := j.Add(l, now); ok {
					e.Add(m.Text)
				}
				n++
				if n == b.N {
					break
				}
			}
			if n == b.N {
				break
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func loghubContent(b *testing.B) []string {
	b.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "loghub2k")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*_2k.log_structured_corrected.csv"))
	if len(files) == 0 {
		b.Skipf("%s absent", dir)
	}
	var lines []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			b.Fatal(err)
		}
		recs, err := csv.NewReader(fh).ReadAll()
		_ = fh.Close() // read-only
		if err != nil {
			b.Fatal(err)
		}
		col := -1
		for i, h := range recs[0] {
			if h == "Content" {
				col = i
			}
		}
		for _, r := range recs[1:] {
			lines = append(lines, r[col])
		}
	}
	return lines
}

func BenchmarkTokenize(b *testing.B) {
	lines := benchCorpus(1000)
	buf := make([]Token, 0, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(strings.Join(lines, "")) / len(lines)))
	for i := 0; i < b.N; i++ {
		buf = Tokenize(lines[i%len(lines)], buf[:0])
	}
}

func BenchmarkDetectLevel(b *testing.B) {
	lines := benchCorpus(1000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		DetectLevel(lines[i%len(lines)])
	}
}
