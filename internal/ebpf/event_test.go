package ebpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// record builds a ring-buffer record from the type bpf2go generates from codexray.c, encoded
// field by field (encoding/binary knows nothing of the decoder's offsets).
func record(typ EventType, family uint16, saddr, daddr []byte, sport, dport uint16) []byte {
	e := codexrayEvent{
		TimestampNs: 123456789, Sock: 0xffff888012345678, CgroupId: 4242, DurationNs: 1500000,
		BytesSent: 1000, BytesReceived: 2000, Type: uint32(typ), Pid: 77, Tid: 78, TargetPid: 79,
		SrttUs: 250, Family: family, Sport: sport, Dport: dport, Flags: FlagInbound, Netns: 4026531840,
	}
	copy(e.Saddr[:], saddr)
	copy(e.Daddr[:], daddr)
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &e); err != nil {
		panic(err)
	}
	if buf.Len() != EventSize {
		panic(fmt.Sprintf("encoded %d bytes, EventSize is %d: struct event has implicit padding", buf.Len(), EventSize))
	}
	return buf.Bytes()
}

func TestEventDecode(t *testing.T) {
	v4src, v4dst := []byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}
	v6src := netip.MustParseAddr("fd00::1").As16()
	v6dst := netip.MustParseAddr("fd00::2").As16()
	mapped := netip.MustParseAddr("::ffff:192.168.1.9").As16()
	tests := []struct {
		name    string
		b       []byte
		wantErr bool
		src     string
		dst     string
	}{
		{"ipv4 connect", record(EventConnect, afInet, v4src, v4dst, 40000, 80), false, "10.0.0.1:40000", "10.0.0.2:80"},
		{"ipv6 close", record(EventClose, afInet6, v6src[:], v6dst[:], 40000, 443), false, "[fd00::1]:40000", "[fd00::2]:443"},
		{"v4-mapped unmapped", record(EventAccept, afInet6, mapped[:], mapped[:], 8080, 1), false, "192.168.1.9:8080", "192.168.1.9:1"},
		{"oom without addresses", record(EventOOMKill, 0, nil, nil, 0, 0), false, "invalid AddrPort", "invalid AddrPort"},
		{"short", record(EventConnect, afInet, v4src, v4dst, 1, 2)[:EventSize-1], true, "", ""},
		{"type zero", record(0, afInet, v4src, v4dst, 1, 2), true, "", ""},
		{"type too big", record(maxEventType+1, afInet, v4src, v4dst, 1, 2), true, "", ""},
		{"bad family", record(EventConnect, 1, v4src, v4dst, 1, 2), true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev Event
			err := ev.Decode(tt.b)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Decode err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got := ev.Source.String(); got != tt.src {
				t.Errorf("Source = %s, want %s", got, tt.src)
			}
			if got := ev.Destination.String(); got != tt.dst {
				t.Errorf("Destination = %s, want %s", got, tt.dst)
			}
			if ev.Timestamp != 123456789 || ev.Sock != 0xffff888012345678 || ev.CgroupID != 4242 ||
				ev.Duration != 1500*time.Microsecond || ev.BytesSent != 1000 || ev.BytesReceived != 2000 ||
				ev.PID != 77 || ev.TID != 78 || ev.TargetPID != 79 || ev.SRTT != 250*time.Microsecond || !ev.Inbound() ||
				ev.NetNS != 4026531840 {
				t.Errorf("decoded %+v", ev)
			}
		})
	}
}

func TestEventTypeString(t *testing.T) {
	if s := EventOOMKill.String(); s != "oom_kill" {
		t.Errorf("got %q", s)
	}
	if s := EventType(99).String(); s != "EventType(99)" {
		t.Errorf("got %q", s)
	}
}

func FuzzEventDecode(f *testing.F) {
	f.Add(record(EventConnect, afInet, []byte{127, 0, 0, 1}, []byte{127, 0, 0, 1}, 1, 2))
	f.Add(record(EventRetransmit, afInet6, make([]byte, 16), make([]byte, 16), 1, 2))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev Event
		if err := ev.Decode(b); err != nil {
			return
		}
		if ev.Type == 0 || ev.Type > maxEventType {
			t.Fatalf("accepted type %d", ev.Type)
		}
		if ev.Source.IsValid() != ev.Destination.IsValid() {
			t.Fatalf("half-decoded addresses %s %s", ev.Source, ev.Destination)
		}
	})
}

func BenchmarkEventDecode(b *testing.B) {
	v6 := netip.MustParseAddr("fd00::1").As16()
	rec := record(EventClose, afInet6, v6[:], v6[:], 1, 2)
	var ev Event
	b.ReportAllocs()
	b.SetBytes(int64(EventSize))
	for b.Loop() {
		if err := ev.Decode(rec); err != nil {
			b.Fatal(err)
		}
	}
}
