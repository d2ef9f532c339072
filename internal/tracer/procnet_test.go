package tracer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Lines as a little-endian kernel prints them (amd64, arm64: the targets of this agent).
const (
	tcpHeader  = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n"
	tcp6Header = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
)

func TestParseProcNetLine(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixture lines are those of a little-endian kernel")
	}
	tests := []struct {
		name    string
		line    string
		v6      bool
		want    procSocket
		wantErr bool
	}{
		{
			name: "ipv4 listen",
			line: "   1: 0100007F:8A91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 14126 1 000000003ef9d79c 100 0 0 10 0",
			want: procSocket{local: ap("127.0.0.1:35473"), remote: ap("0.0.0.0:0"), state: tcpListen, inode: 14126},
		},
		{
			name: "ipv4 established, lower-case hex",
			line: "  12: 0500000a:a028 0900000a:1538 01 00000000:00000000 02:00000a3c 00000000  1000        0 99887766 2 0000000000000000 20 4 30 10 -1",
			want: procSocket{local: ap("10.0.0.5:41000"), remote: ap("10.0.0.9:5432"), state: tcpEstablished, inode: 99887766},
		},
		{
			name: "time_wait has inode 0",
			line: "   3: 0100007F:1F90 0100007F:B3E2 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000",
			want: procSocket{local: ap("127.0.0.1:8080"), remote: ap("127.0.0.1:46050"), state: tcpTimeWait},
		},
		{
			name: "ipv6 listen on any",
			line: "   0: 00000000000000000000000000000000:2382 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1010 1 0000000000000000 100 0 0 10 0",
			v6:   true,
			want: procSocket{local: ap("[::]:9090"), remote: ap("[::]:0"), state: tcpListen, inode: 1010},
		},
		{
			name: "ipv6 v4-mapped stays mapped",
			line: "   1: 0000000000000000FFFF00000500000A:A410 0000000000000000FFFF00000A00000A:18EB 01 00000000:00000000 00:00000000 00000000     0        0 1011 1 0000000000000000 20 4 30 10 -1",
			v6:   true,
			want: procSocket{local: ap("[::ffff:10.0.0.5]:42000"), remote: ap("[::ffff:10.0.0.10]:6379"), state: tcpEstablished, inode: 1011},
		},
		{
			name: "ipv6 loopback",
			line: "   2: 00000000000000000000000001000000:A7F8 00000000000000000000000001000000:01BB 08 00000000:00000000 00:00000000 00000000     0        0 1012 1 0000000000000000 20 4 30 10 -1",
			v6:   true,
			want: procSocket{local: ap("[::1]:43000"), remote: ap("[::1]:443"), state: tcpCloseWait, inode: 1012},
		},
		{name: "header", line: strings.TrimSpace(tcpHeader), wantErr: true},
		{name: "empty", line: "", wantErr: true},
		{name: "truncated", line: "   1: 0100007F:8A91 00000000:0000 0A 00000000:00000000", wantErr: true},
		{name: "ipv6 address in tcp", line: "   0: 00000000000000000000000000000000:2382 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 1 1", wantErr: true},
		{name: "ipv4 address in tcp6", line: "   1: 0100007F:8A91 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1", v6: true, wantErr: true},
		{name: "state zero", line: "   1: 0100007F:8A91 00000000:0000 00 00000000:00000000 00:00000000 00000000 0 0 1 1", wantErr: true},
		{name: "state beyond closing", line: "   1: 0100007F:8A91 00000000:0000 0C 00000000:00000000 00:00000000 00000000 0 0 1 1", wantErr: true},
		{name: "bad hex", line: "   1: 0100007G:8A91 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1", wantErr: true},
		{name: "short port", line: "   1: 0100007F:8A9 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1", wantErr: true},
		{name: "negative inode", line: "   1: 0100007F:8A91 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 -1 1", wantErr: true},
		{name: "inode overflows", line: "   1: 0100007F:8A91 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 99999999999999999999 1", wantErr: true},
		{name: "no slot colon", line: "   1 0100007F:8A91 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcNetLine([]byte(tt.line), tt.v6)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// formatProcNetAddr writes an address the way the kernel prints it in /proc/net/tcp{,6}.
func formatProcNetAddr(a netip.AddrPort, v6 bool) string {
	var b strings.Builder
	raw := a.Addr().As16()
	words := raw[:]
	if !v6 {
		four := a.Addr().As4()
		words = four[:]
	}
	for i := 0; i < len(words); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(words[i:]))
	}
	fmt.Fprintf(&b, ":%04X", a.Port())
	return b.String()
}

func procNetLine(sl int, local, remote netip.AddrPort, state uint8, inode uint64, v6 bool) string {
	return fmt.Sprintf("%4d: %s %s %02X 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 20 4 30 10 -1\n",
		sl, formatProcNetAddr(local, v6), formatProcNetAddr(remote, v6), state, inode)
}

func TestReadProcNet(t *testing.T) {
	dir := t.TempDir()
	var content strings.Builder
	content.WriteString(tcpHeader)
	// More than the initial buffer, so reading grows it.
	const n = 3000
	for i := 0; i < n; i++ {
		content.WriteString(procNetLine(i, ap(fmt.Sprintf("10.1.%d.%d:%d", i/256, i%256, 1000+i)), ap("10.9.9.9:443"), tcpEstablished, uint64(i+1), false))
		if i == 10 {
			content.WriteString("garbage in the middle\n")
		}
	}
	content.WriteString("\n")
	path := filepath.Join(dir, "tcp")
	if err := os.WriteFile(path, []byte(content.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf []byte
	var got []procSocket
	malformed, err := readProcNet(path, false, &buf, func(p *procSocket) { got = append(got, *p) })
	if err != nil {
		t.Fatal(err)
	}
	if malformed != 1 || len(got) != n {
		t.Fatalf("malformed %d, sockets %d; want 1, %d", malformed, len(got), n)
	}
	if got[2999].local != ap("10.1.11.183:3999") || got[2999].inode != 3000 {
		t.Errorf("last socket %+v", got[2999])
	}
	if _, err := readProcNet(filepath.Join(dir, "missing"), false, &buf, func(*procSocket) {}); !os.IsNotExist(err) {
		t.Errorf("missing file: err = %v", err)
	}
}

func FuzzParseProcNetLine(f *testing.F) {
	f.Add([]byte("   1: 0100007F:8A91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 14126 1 000000003ef9d79c 100 0 0 10 0"), false)
	f.Add([]byte("   1: 0000000000000000FFFF00000500000A:A410 0000000000000000FFFF00000A00000A:18EB 01 00000000:00000000 00:00000000 00000000     0        0 1011 1 0000000000000000 20 4 30 10 -1"), true)
	f.Add([]byte(strings.TrimSpace(tcpHeader)), false)
	f.Add([]byte("0: : : 0 0 0 0 0 0 0"), true)
	f.Fuzz(func(t *testing.T, line []byte, v6 bool) {
		s, err := parseProcNetLine(line, v6)
		if err != nil {
			return
		}
		if s.state == 0 || s.state > tcpClosing {
			t.Fatalf("state %d accepted", s.state)
		}
		if s.local.Addr().Is6() != v6 || s.remote.Addr().Is6() != v6 {
			t.Fatalf("family of %s, %s does not match v6=%v", s.local, s.remote, v6)
		}
		// What parsed must print back to the same address fields.
		fields := bytes.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		if got := formatProcNetAddr(s.local, v6); !strings.EqualFold(got, string(fields[1])) {
			t.Fatalf("local %q parsed as %s, prints as %q", fields[1], s.local, got)
		}
		if got := formatProcNetAddr(s.remote, v6); !strings.EqualFold(got, string(fields[2])) {
			t.Fatalf("remote %q parsed as %s, prints as %q", fields[2], s.remote, got)
		}
	})
}

func BenchmarkParseProcNetLine(b *testing.B) {
	line := []byte("  12: 0500000A:A028 0900000A:1538 01 00000000:00000000 02:00000A3C 00000000  1000        0 99887766 2 0000000000000000 20 4 30 10 -1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseProcNetLine(line, false); err != nil {
			b.Fatal(err)
		}
	}
}
