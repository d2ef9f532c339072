package l7

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// conv scripts one connection as the kernel side would report it: each write or read call
// is one syscall, captured up to the protocol's capture size, at a stream offset per flow.
type conv struct {
	t       testing.TB
	proto   Protocol
	role    Role
	sock    uint64
	udp     bool
	capture int
	now     uint64
	off     [2]uint64
	segs    []Segment
	newSent bool
}

func newConv(t testing.TB, p Protocol, role Role) *conv {
	t.Helper()
	return &conv{t: t, proto: p, role: role, sock: 0xffff888000001000, capture: CaptureSize(p), now: 1e9}
}

// at sets the time of the next syscall (ms after the start).
func (c *conv) at(ms float64) *conv {
	c.now = 1e9 + uint64(ms*1e6)
	return c
}

func (c *conv) syscall(f Flow, data []byte) *conv {
	s := Segment{
		Timestamp: c.now, Sock: c.sock, CgroupID: 42, Offset: c.off[f], PID: 7, FD: 3,
		Length: uint32(len(data)), Protocol: c.proto,
	}
	if f == Received {
		s.Flags |= FlagReceived
	}
	if c.role == RoleServer {
		s.Flags |= FlagServer
	}
	if c.udp {
		s.Flags |= FlagUDP
	}
	if !c.newSent {
		s.Flags |= FlagNew
		c.newSent = true
	}
	n := min(len(data), c.capture)
	s.Payload = append([]byte(nil), data[:n]...)
	c.off[f] += uint64(len(data))
	c.segs = append(c.segs, s)
	c.now += 1e6
	return c
}

// write is a syscall of the write family by the traced process; read of the read family.
func (c *conv) write(data ...string) *conv { return c.syscall(Sent, []byte(strings.Join(data, ""))) }

func (c *conv) read(data ...string) *conv { return c.syscall(Received, []byte(strings.Join(data, ""))) }
func (c *conv) writeB(b []byte) *conv     { return c.syscall(Sent, b) }
func (c *conv) readB(b []byte) *conv      { return c.syscall(Received, b) }

// lose drops n bytes of flow f: a syscall the kernel counted but did not forward.
func (c *conv) lose(f Flow, n int) *conv {
	c.off[f] += uint64(n)
	c.now += 1e6
	return c
}

// got is a request as the tests compare it.
type got struct {
	Status string
	Method string
	Server bool
	Ms     float64 // duration
	DNS    string  // "TypeA example.com 1.2.3.4,..." for DNS
}

func (g got) String() string {
	s := fmt.Sprintf("{%s %.0fms", g.Status, g.Ms)
	if g.Method != "" {
		s += " " + g.Method
	}
	if g.Server {
		s += " server"
	}
	if g.DNS != "" {
		s += " " + g.DNS
	}
	return s + "}"
}

// run feeds the script to a fresh Tracker.
func (c *conv) run() ([]got, Stats) {
	var out []got
	tr := NewTracker(TrackerOptions{}, func(r *Request) {
		g := got{
			Status: r.Status.Label(), Method: r.Method.String(), Server: r.Role == RoleServer,
			Ms: float64(r.Duration()) / float64(time.Millisecond),
		}
		if r.Protocol != c.proto {
			c.t.Errorf("request of protocol %s on a %s connection", r.Protocol, c.proto)
		}
		if r.DNS != nil {
			var ips []string
			for _, a := range r.DNS.Addrs() {
				ips = append(ips, a.String())
			}
			g.DNS = r.DNS.TypeLabel() + " " + string(r.DNS.Domain) + " " + strings.Join(ips, ",")
		}
		out = append(out, g)
	})
	for i := range c.segs {
		// through the record layout, as the ring buffer delivers it
		var s Segment
		if err := s.Decode(c.segs[i].Encode(nil)); err != nil {
			c.t.Fatal(err)
		}
		tr.Feed(&s)
	}
	return out, tr.Stats()
}

// expect runs the script and compares the requests.
func (c *conv) expect(want ...got) Stats {
	c.t.Helper()
	gotReqs, st := c.run()
	if fmt.Sprint(gotReqs) != fmt.Sprint(want) {
		c.t.Errorf("requests\n got %v\nwant %v\nstats %+v", gotReqs, want, st)
	}
	return st
}

// r builds an expected request: status label and duration in ms.
func r(status string, ms float64) got { return got{Status: status, Ms: ms} }

func rs(status string, ms float64) got { return got{Status: status, Ms: ms, Server: true} }

// splitAt cuts s into syscalls at the given positions.
func splitAt(s string, at ...int) []string {
	var out []string
	prev := 0
	for _, a := range at {
		out = append(out, s[prev:a])
		prev = a
	}
	return append(out, s[prev:])
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// fuzzFeed feeds arbitrary bytes to a Tracker as segments of protocol p, cut into syscalls
// and flows by the first bytes; it checks nothing but that nothing panics and requests make
// sense.
func fuzzFeed(t *testing.T, p Protocol, data []byte) {
	t.Helper()
	if len(data) < 2 {
		return
	}
	ctl := data[0]
	data = data[1:]
	role := RoleClient
	if ctl&1 != 0 {
		role = RoleServer
	}
	c := newConv(t, p, role)
	c.udp = p == ProtocolDNS && ctl&2 != 0
	c.capture = 16 + int(ctl>>2)*16
	for len(data) > 0 {
		n := int(data[0])%64 + 1
		f := Flow(data[0] >> 7)
		data = data[1:]
		n = min(n*int(1+ctl%5), len(data))
		c.syscall(f, data[:n])
		data = data[n:]
	}
	tr := NewTracker(TrackerOptions{}, func(r *Request) {
		if r.End < r.Start {
			t.Fatalf("request ends before it starts: %+v", r)
		}
		if r.Protocol != p {
			t.Fatalf("protocol %s", r.Protocol)
		}
		_ = r.Status.Label()
	})
	for i := range c.segs {
		tr.Feed(&c.segs[i])
	}
	tr.Expire(^uint64(0))
}

// convCase is one scripted connection and the requests it must give.
type convCase struct {
	name  string
	conv  func() *conv
	want  []got
	check func(s Stats) string // optional: what is wrong with the stats, or ""
}

func runConvCases(t *testing.T, cases []convCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.conv()
			c.t = t
			st := c.expect(tt.want...)
			if tt.check != nil {
				if msg := tt.check(st); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}
