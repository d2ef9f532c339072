package taskstats

import "testing"

func TestBlkioTrack(t *testing.T) {
	const s = uint64(1e9)
	type reading struct {
		raw, elapsed uint64
		want         uint64
		bogus        bool
	}
	tests := []struct {
		name       string
		startTicks uint64 // process start, clock ticks since boot
		readings   []reading
	}{
		{"real waits pass", 150000, []reading{ // started 25 min after boot
			{raw: 1 * s, elapsed: 10 * s, want: 1 * s},
			{raw: 5 * s, elapsed: 25 * s, want: 5 * s},
		}},
		{"first reading beyond the lifetime", 150000, []reading{
			{raw: 1558 * s, elapsed: 2 * s, want: 0, bogus: true},
			{raw: 1559 * s, elapsed: 4 * s, want: 1 * s},
		}},
		{"young process jumps by the uptime", 150000, []reading{ // starttime 1500 s
			{raw: 1 * s, elapsed: 10 * s, want: 1 * s},
			{raw: 1 + 1560*s, elapsed: 25 * s, want: 1 * s, bogus: true},
			{raw: 3 + 1560*s, elapsed: 40 * s, want: 1*s + 2}, // offset 1559 s + 1 ns stays removed
		}},
		{"daemon from boot: a jump beyond its threads' gain", 200, []reading{ // started 2 s after boot, 8 threads
			{raw: 100 * s, elapsed: 8 * 86400 * s, want: 100 * s},
			{raw: 100*s + 86415*s, elapsed: 8*86400*s + 8*15*s, want: 100 * s, bogus: true},
			{raw: 102*s + 86415*s, elapsed: 8*86400*s + 16*15*s, want: 102 * s},
		}},
		{"daemon from boot: waits within its threads' gain", 200, []reading{
			{raw: 100 * s, elapsed: 8 * 86400 * s, want: 100 * s},
			{raw: 160 * s, elapsed: 8*86400*s + 8*15*s, want: 160 * s},
		}},
		{"elapsed unknown: nothing filtered", 150000, []reading{
			{raw: 1 * s, want: 1 * s},
			{raw: 5000 * s, want: 5000 * s},
		}},
		{"raw going back is clamped", 150000, []reading{
			{raw: 5 * s, elapsed: 10 * s, want: 5 * s},
			{raw: 4 * s, elapsed: 20 * s, want: 5 * s},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b blkioTrack
			for i, r := range tt.readings {
				var got uint64
				var bogus bool
				if i == 0 {
					got, bogus = b.first(r.raw, r.elapsed)
				} else {
					got, bogus = b.next(r.raw, r.elapsed, tt.startTicks)
				}
				if got != r.want || bogus != r.bogus {
					t.Fatalf("reading %d: %d (bogus %v), want %d (bogus %v)", i, got, bogus, r.want, r.bogus)
				}
			}
		})
	}
}
