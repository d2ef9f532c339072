package l7tracer

import (
	"testing"

	"github.com/codexray/codexray-node-agent/internal/l7"
)

func TestProtocolMask(t *testing.T) {
	all := AllProtocols().Mask()
	for p := l7.ProtocolHTTP; p.Valid(); p++ {
		if all&(1<<p) == 0 {
			t.Errorf("protocol %s has no switch", p)
		}
	}
	if all&1 != 0 || all>>15 != 0 {
		t.Errorf("mask %#x has bits of no protocol", all)
	}
	off := AllProtocols()
	off.Redis, off.HTTP2 = false, false
	if m := off.Mask(); m&(1<<l7.ProtocolRedis) != 0 || m&(1<<l7.ProtocolHTTP2) != 0 || m&(1<<l7.ProtocolHTTP) == 0 {
		t.Errorf("mask %#x with redis and http2 off", m)
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.RingBufferSize, c.MaxSeriesPerContainer, c.MaxDomainsPerContainer, c.SeriesTTL = 1000, 0, -1, 0
	if err := c.Validate(); err == nil {
		t.Fatal("invalid settings accepted")
	}
}
