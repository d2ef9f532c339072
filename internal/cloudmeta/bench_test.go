package cloudmeta

import (
	"os"
	"path/filepath"
	"testing"
)

func benchFile(b *testing.B, parts ...string) []byte {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(append([]string{"testdata", "imds"}, parts...)...))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkParseAzureInstance(b *testing.B) {
	data := benchFile(b, "azure", "metadata", "instance")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := parseAzureInstance(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAWSIdentityDocument(b *testing.B) {
	data := benchFile(b, "aws", "latest", "dynamic", "instance-identity", "document")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := parseAWSIdentityDocument(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchAWS is one complete IMDSv2 round (token, identity document, four meta-data
// paths) against a loopback imitation: the cost of a refresh, paid once an hour.
func BenchmarkFetchAWS(b *testing.B) {
	s := newIMDS(b, AWS)
	f := testFetcher(b, s)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fetchAWS(f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCurrent is what every collection tick pays (twice: metric and resource).
func BenchmarkCurrent(b *testing.B) {
	w := NewWatcher(DefaultConfig(), nil)
	w.md, w.known = wantFixture[AWS], true
	w.cfg.Overrides.Region = "eu-central-1"
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := w.Current(); !ok {
			b.Fatal("nothing known")
		}
	}
}
