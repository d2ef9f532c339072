package l7

import (
	"bytes"
	"testing"
)

// copyingLineBuf is takeLine as it was before its no-copy path: every line is assembled in
// the buffer. The reference for FuzzTakeLine.
type copyingLineBuf struct {
	line    [lineKeep]byte
	lineLen int
	lineTs  uint64
}

func (lb *copyingLineBuf) takeLine(d []byte, ts uint64) (line, rest []byte, complete bool) {
	if lb.lineLen == 0 {
		lb.lineTs = ts
	}
	nl := bytes.IndexByte(d, '\n')
	part := d
	if nl >= 0 {
		part = d[:nl]
	}
	if lb.lineLen < lineKeep {
		copy(lb.line[lb.lineLen:], part)
	}
	lb.lineLen += len(part)
	if nl < 0 {
		return nil, nil, false
	}
	n := min(lb.lineLen, lineKeep)
	line = lb.line[:n]
	if lb.lineLen <= lineKeep && n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	lb.lineLen = 0
	return line, d[nl+1:], true
}

// FuzzTakeLine: a stream cut into chunks anywhere gives the same lines, rests and line
// times through takeLine as through the copying reference.
func FuzzTakeLine(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), uint8(5))
	f.Add(bytes.Repeat([]byte("a"), 700), uint8(0))
	f.Add(append(bytes.Repeat([]byte("b"), lineKeep), "\r\n\r\nx\n"...), uint8(3))
	f.Add(append(bytes.Repeat([]byte("c"), lineKeep-1), "\r\n"...), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, cut uint8) {
		var got lineBuf
		var want copyingLineBuf
		step := int(cut)*3 + 1 // 1 to 766 bytes: lines within a chunk, and beyond lineKeep
		for start, ts := 0, uint64(1); start < len(stream); start, ts = start+step, ts+1 {
			d := stream[start:min(start+step, len(stream))]
			for len(d) > 0 {
				gl, gr, gc := got.takeLine(d, ts)
				wl, wr, wc := want.takeLine(d, ts)
				if !bytes.Equal(gl, wl) || len(gr) != len(wr) || gc != wc || got.lineTs != want.lineTs || got.lineLen != want.lineLen {
					t.Fatalf("chunk %q: line %q rest %d complete %v ts %d, want %q %d %v %d", d, gl, len(gr), gc, got.lineTs, wl, len(wr), wc, want.lineTs)
				}
				if !gc {
					break
				}
				d = gr
			}
		}
	})
}
