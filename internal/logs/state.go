package logs

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/logpatterns"
)

// StreamState is one (container, source) stream of Patterns as a restarted agent continues
// it: its counts under their start time, its patterns' identities, what the last pattern
// records reported, and the multi-line messages still waiting for continuation lines.
type StreamState struct {
	Container containers.ID `json:"container"`
	Source    string        `json:"source"`
	Start     time.Time     `json:"start"`
	LastSeen  time.Time     `json:"last_seen"`
	File      string        `json:"file,omitempty"` // the log file of its last message
	Counts    []SavedCount  `json:"counts,omitempty"`
	// PatternCounts and Flushed hold, per pattern in the extractor's order, the messages it
	// matched and how many of them pattern records reported (FlushPatterns).
	PatternCounts   []uint64                           `json:"pattern_counts,omitempty"`
	Flushed         []uint64                           `json:"flushed,omitempty"`
	Overflow        uint64                             `json:"overflow,omitempty"`
	OverflowFlushed uint64                             `json:"overflow_flushed,omitempty"`
	Joiners         map[string]logpatterns.JoinerState `json:"joiners,omitempty"`
	// Revision is the extractor's (logpatterns.Extractor.Revision) in this process; Patterns is
	// filled only when Snapshot's caller asked for it at this revision.
	Revision uint64          `json:"-"`
	Patterns *ExtractorState `json:"-"`
}

// ExtractorState is the identities of a stream's patterns (logpatterns.ExtractorState).
type ExtractorState = logpatterns.ExtractorState

// SavedCount is one series of container_log_messages_total of a stream.
type SavedCount struct {
	Level Level  `json:"l,omitempty"`
	Hash  string `json:"h"`
	Count uint64 `json:"n"`
	// Sample is the series' sample label: a restarted agent keeps it, so the series goes on.
	Sample string `json:"s,omitempty"`
}

// Snapshot returns the state of every stream. wantPatterns tells, per stream and extractor
// revision, whether to copy the patterns' identities too (they change far less often than the
// counts, and are the larger part). Each stream is read at one moment; to match the readers'
// positions, call it from Reader.Checkpoint's snapshot.
func (p *Patterns) Snapshot(wantPatterns func(container containers.ID, source string, revision uint64) bool) []StreamState {
	p.mu.RLock()
	keys := make([]streamKey, 0, len(p.streams))
	ss := make([]*stream, 0, len(p.streams))
	for k, s := range p.streams {
		keys = append(keys, k)
		ss = append(ss, s)
	}
	p.mu.RUnlock()
	out := make([]StreamState, 0, len(ss))
	for i, s := range ss {
		s.mu.Lock()
		if s.expired {
			s.mu.Unlock()
			continue
		}
		st := StreamState{
			Container: keys[i].container, Source: keys[i].source, Start: s.start,
			LastSeen: time.Unix(0, s.lastSeen.Load()), File: s.file,
			Counts:   make([]SavedCount, 0, len(s.counts)),
			Revision: s.extractor.Revision(),
		}
		for k, n := range s.counts {
			st.Counts = append(st.Counts, SavedCount{Level: k.level, Hash: k.hash, Count: n, Sample: s.samples[k]})
		}
		// In a fixed order: a stream whose counts did not change saves the same bytes.
		slices.SortFunc(st.Counts, func(a, b SavedCount) int {
			if a.Level != b.Level {
				return cmp.Compare(a.Level, b.Level)
			}
			return strings.Compare(a.Hash, b.Hash)
		})
		st.PatternCounts = s.extractor.Counts(nil)
		pats := s.extractor.Patterns()
		st.Flushed = make([]uint64, len(st.PatternCounts))
		for j := range st.Flushed {
			st.Flushed[j] = s.flushed[pats[j]]
		}
		overflow := s.extractor.Overflow()
		st.Overflow, st.OverflowFlushed = overflow.Count, s.flushed[overflow]
		for name, j := range s.joiners {
			if pending := j.Pending(); pending.Lines > 0 {
				if st.Joiners == nil {
					st.Joiners = map[string]logpatterns.JoinerState{}
				}
				st.Joiners[name] = pending
			}
		}
		if wantPatterns == nil || wantPatterns(st.Container, st.Source, st.Revision) {
			ps := s.extractor.State()
			st.Patterns = &ps
		}
		s.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// Restore makes Patterns continue the streams of a previous run; call it before any message.
// A stream without Patterns keeps its counts, and its events start new patterns. Streams idle
// for longer than stream_expiry expire at the next Expire as if the agent had not restarted.
func (p *Patterns) Restore(states []StreamState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range states {
		st := &states[i]
		key := streamKey{st.Container, st.Source}
		if _, ok := p.streams[key]; ok {
			continue
		}
		s := &stream{
			extractor: logpatterns.NewExtractor(p.cfg),
			counts:    make(map[countKey]uint64, len(st.Counts)),
			samples:   make(map[countKey]string, len(st.Counts)),
			flushed:   map[*logpatterns.Pattern]uint64{},
			start:     st.Start,
			file:      st.File,
		}
		s.lastSeen.Store(st.LastSeen.UnixNano())
		for _, c := range st.Counts {
			k := countKey{c.Level, c.Hash}
			s.counts[k] += c.Count
			if _, ok := s.samples[k]; !ok {
				s.samples[k] = SampleLabel(c.Sample) // bounded again: the record is the storage's
			}
		}
		if st.Patterns != nil {
			s.extractor.Restore(*st.Patterns, st.PatternCounts, st.Overflow)
		}
		pats := s.extractor.Patterns()
		for j, n := range st.Flushed {
			if j < len(pats) && pats[j] != s.extractor.Overflow() {
				s.flushed[pats[j]] = n
			}
		}
		if st.OverflowFlushed > 0 {
			s.flushed[s.extractor.Overflow()] = st.OverflowFlushed
		}
		for name, js := range st.Joiners {
			if !p.multiline.Enabled {
				// Joining was switched off since: the waiting message is complete.
				p.add(s, js.Text, LevelUnknown)
				continue
			}
			j := logpatterns.NewJoiner(p.multiline.JoinerConfig)
			j.Restore(js)
			if s.joiners == nil {
				s.joiners = map[string]*logpatterns.Joiner{}
			}
			s.joiners[name] = j
		}
		p.streams[key] = s
	}
}
