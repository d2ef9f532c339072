package logs

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/logpatterns"
)

// Patterns is the Sink that turns messages into what the receiver emits: per container,
// cumulative message counts by (source, level, pattern hash) — container_log_messages_total —
// and per pattern the messages seen since the last flush, for the codexray.log.pattern record.
// Each (container, source) stream has its own extractor, so logpatterns.Config.MaxPatterns
// bounds the patterns of one stream. Safe for concurrent use.
type Patterns struct {
	cfg       logpatterns.Config
	multiline MultilineConfig

	mu      sync.RWMutex
	streams map[streamKey]*stream

	// Running totals of what the limits dropped, over every stream this aggregator ever had:
	// they back cumulative sums (codexray_limits_dropped), so forgetting a stream (Expire)
	// must not take its drops back, as a sum over the live streams would.
	overflowed       atomic.Uint64
	multilineDropped atomic.Uint64
}

type streamKey struct {
	container containers.ID
	source    string
}

type countKey struct {
	level Level
	hash  string
}

type stream struct {
	mu        sync.Mutex
	extractor *logpatterns.Extractor
	// joiners join multi-line messages per runtime stream (stdout and stderr interleave).
	joiners map[string]*logpatterns.Joiner
	counts  map[countKey]uint64
	// samples holds each count's sample label, fixed by its first message (SampleLabel).
	samples map[countKey]string
	// flushed is each pattern's Count at the last flush.
	flushed map[*logpatterns.Pattern]uint64
	// start is when the stream was created: its counts began at zero then. A stream Expire
	// forgot starts again from zero with a later start.
	start    time.Time
	lastSeen atomic.Int64 // unix nanoseconds
	// file is the log file of the stream's last message ("" for journald).
	file string
	// expired: Expire removed the stream (set under mu); a Message that looked it up just
	// before looks again rather than count into a stream nobody reads any more.
	expired bool
}

// NewPatterns returns an empty aggregator whose extractors use cfg; multi-line messages of
// file-based sources are joined per multiline (journald entries are whole messages already).
func NewPatterns(cfg logpatterns.Config, multiline MultilineConfig) *Patterns {
	return &Patterns{cfg: cfg, multiline: multiline, streams: map[streamKey]*stream{}}
}

// Message counts one message under the pattern its extractor puts it in. The level is the
// source's (journald PRIORITY) when it has one, else the one the message's header states or
// its text shows; the count is keyed by the pattern's hash, which stays when a later message
// generalises or splits the pattern (see logpatterns, "Hashes").
func (p *Patterns) Message(m *Message) {
	key := streamKey{m.Container, m.Source}
	for {
		s := p.stream(key)
		now := time.Now()
		s.mu.Lock()
		if s.expired {
			s.mu.Unlock()
			continue
		}
		if j := p.joiner(s, m); j != nil {
			dropped := j.Dropped()
			if msg, ok := j.Add(m.Text, now); ok {
				p.add(s, msg.Text, LevelUnknown)
			}
			p.multilineDropped.Add(j.Dropped() - dropped)
		} else {
			p.add(s, m.Text, m.Level)
		}
		s.lastSeen.Store(now.UnixNano())
		if m.File != "" && m.File != s.file {
			s.file = m.File
		}
		s.mu.Unlock()
		return
	}
}

// stream returns the stream of key, created (from zero, starting now) if there is none.
func (p *Patterns) stream(key streamKey) *stream {
	p.mu.RLock()
	s := p.streams[key]
	p.mu.RUnlock()
	if s != nil {
		return s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s = p.streams[key]; s == nil {
		now := time.Now()
		s = &stream{
			extractor: logpatterns.NewExtractor(p.cfg),
			counts:    map[countKey]uint64{},
			samples:   map[countKey]string{},
			flushed:   map[*logpatterns.Pattern]uint64{},
			start:     now,
		}
		s.lastSeen.Store(now.UnixNano())
		p.streams[key] = s
	}
	return s
}

// joiner returns the stream's multi-line joiner for m, nil when m is a whole message.
func (p *Patterns) joiner(s *stream, m *Message) *logpatterns.Joiner {
	if !p.multiline.Enabled || m.Source == SourceJournald {
		return nil
	}
	j := s.joiners[m.Stream]
	if j == nil {
		if s.joiners == nil {
			s.joiners = map[string]*logpatterns.Joiner{}
		}
		j = logpatterns.NewJoiner(p.multiline.JoinerConfig)
		s.joiners[m.Stream] = j
	}
	return j
}

// add counts one whole message of s; the caller holds s.mu.
func (p *Patterns) add(s *stream, text string, hint Level) {
	pattern, level := s.extractor.Add(text)
	if hint != LevelUnknown {
		level = hint
	}
	k := countKey{level, pattern.Hash}
	if _, seen := s.counts[k]; !seen {
		s.samples[k] = SampleLabel(pattern.Sample)
	}
	s.counts[k]++
	if pattern == s.extractor.Overflow() {
		p.overflowed.Add(1)
	}
}

// Tick hands out multi-line messages that waited longer than the joiner timeout for a
// continuation line. The receiver calls it every second; FlushPatterns calls it too.
func (p *Patterns) Tick(now time.Time) {
	for _, s := range p.allStreams() {
		s.mu.Lock()
		for _, j := range s.joiners {
			if msg, ok := j.Flush(now); ok {
				p.add(s, msg.Text, LevelUnknown)
			}
		}
		s.mu.Unlock()
	}
}

// FlushJoiners counts every message still waiting for a continuation line, timeout or not:
// at shutdown, after the readers stopped.
func (p *Patterns) FlushJoiners() {
	for _, s := range p.allStreams() {
		s.mu.Lock()
		for _, j := range s.joiners {
			if msg, ok := j.FlushAll(); ok {
				p.add(s, msg.Text, LevelUnknown)
			}
		}
		s.mu.Unlock()
	}
}

func (p *Patterns) allStreams() []*stream {
	p.mu.RLock()
	defer p.mu.RUnlock()
	ss := make([]*stream, 0, len(p.streams))
	for _, s := range p.streams {
		ss = append(ss, s)
	}
	return ss
}

// MultilineDropped returns how many continuation lines the joiners dropped at their caps,
// since the aggregator was created (streams Expire forgot included): it never decreases.
func (p *Patterns) MultilineDropped() uint64 { return p.multilineDropped.Load() }

// MessageCount is one series of container_log_messages_total.
type MessageCount struct {
	Source      string
	Level       Level
	PatternHash string
	// Sample is the series' sample label: the first message of its pattern when the series
	// began (SampleLabel). It never changes while the series lives, so it adds no series.
	Sample string
	Count  uint64
	// Start is when the stream (container, source) was created, counting from zero: the start
	// timestamp of the sum. After Expire forgot a stream, its new counts carry a later Start.
	Start time.Time
}

// Containers returns the containers with log state, including NodeID for node-level logs,
// sorted, each with the log file its output was last read from ("" when none: journald).
func (p *Patterns) Containers() []StreamContainer {
	p.mu.RLock()
	files := map[containers.ID]string{}
	for k, s := range p.streams {
		s.mu.Lock()
		if f := s.file; f != "" || files[k.container] == "" {
			files[k.container] = f
		}
		s.mu.Unlock()
	}
	p.mu.RUnlock()
	out := make([]StreamContainer, 0, len(files))
	for id, f := range files {
		out = append(out, StreamContainer{ID: id, File: f})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// StreamContainer is a container with log state, and the log file its output was last read
// from.
type StreamContainer struct {
	ID   containers.ID
	File string
}

// Forget drops every stream of these containers, gone for good (the receiver calls it once the
// registry's retention of a container is over): their counts, patterns, waiting multi-line
// messages and unflushed pattern records. A container that logs again later counts from zero,
// with a later MessageCount.Start; the limit totals keep what its streams dropped.
func (p *Patterns) Forget(ids []containers.ID) {
	if len(ids) == 0 {
		return
	}
	drop := make(map[containers.ID]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, s := range p.streams {
		if !drop[k.container] {
			continue
		}
		s.mu.Lock()
		s.expired = true
		s.mu.Unlock()
		delete(p.streams, k)
	}
}

// Counts calls fn for every message count of a container, ordered by source, level and hash.
// Multi-line messages still waiting in a joiner are not counted yet (see Tick).
func (p *Patterns) Counts(id containers.ID, fn func(MessageCount)) {
	p.mu.RLock()
	var mine []streamKey
	for k := range p.streams {
		if k.container == id {
			mine = append(mine, k)
		}
	}
	ss := make([]*stream, len(mine))
	sort.Slice(mine, func(i, j int) bool { return mine[i].source < mine[j].source })
	for i, k := range mine {
		ss[i] = p.streams[k]
	}
	p.mu.RUnlock()
	for i, s := range ss {
		s.mu.Lock()
		out := make([]MessageCount, 0, len(s.counts))
		for k, n := range s.counts {
			out = append(out, MessageCount{Source: mine[i].source, Level: k.level, PatternHash: k.hash, Sample: s.samples[k], Count: n, Start: s.start})
		}
		s.mu.Unlock()
		sort.Slice(out, func(a, b int) bool {
			if out[a].Level != out[b].Level {
				return out[a].Level < out[b].Level
			}
			return out[a].PatternHash < out[b].PatternHash
		})
		for _, c := range out {
			fn(c)
		}
	}
}

// PatternRecord is one codexray.log.pattern log record: a pattern that matched messages since
// the previous flush.
type PatternRecord struct {
	Container containers.ID
	Source    string
	Hash      string
	Template  string
	Level     Level
	Sample    string // the pattern's first message, cut to logpatterns.Config.SampleLength bytes
	Count     uint64 // messages since the previous record of this pattern
}

// FlushPatterns calls fn for every pattern that matched messages since the last flush, with
// the number of those messages, and marks them flushed. Streams of containers hold says to hold
// (nil: none) are left for a later flush.
func (p *Patterns) FlushPatterns(hold func(containers.ID) bool, fn func(PatternRecord)) {
	p.Tick(time.Now())
	p.mu.RLock()
	keys := make([]streamKey, 0, len(p.streams))
	for k := range p.streams {
		if hold == nil || !hold(k.container) {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].container != keys[j].container {
			return keys[i].container < keys[j].container
		}
		return keys[i].source < keys[j].source
	})
	ss := make([]*stream, len(keys))
	for i, k := range keys {
		ss[i] = p.streams[k]
	}
	p.mu.RUnlock()
	var records []PatternRecord
	for i, s := range ss {
		records = records[:0]
		s.mu.Lock()
		for _, pat := range s.extractor.Patterns() {
			if delta := pat.Count - s.flushed[pat]; delta > 0 {
				records = append(records, PatternRecord{
					Container: keys[i].container, Source: keys[i].source, Hash: pat.Hash,
					Template: pat.Template, Level: pat.Level, Sample: pat.Sample, Count: delta,
				})
				s.flushed[pat] = pat.Count
			}
		}
		s.mu.Unlock()
		for _, r := range records {
			fn(r)
		}
	}
}

// Expire forgets streams without a message since before, bounding memory as containers come
// and go. It returns how many streams it dropped. A forgotten stream that gets messages again
// counts from zero, with a new MessageCount.Start; the limit totals (Overflowed,
// MultilineDropped) keep what it dropped.
func (p *Patterns) Expire(before time.Time) int {
	cutoff := before.UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for k, s := range p.streams {
		if s.lastSeen.Load() >= cutoff {
			continue
		}
		s.mu.Lock()
		if s.lastSeen.Load() < cutoff { // not revived by a Message since the first look
			s.expired = true
			delete(p.streams, k)
			n++
		}
		s.mu.Unlock()
	}
	return n
}

// Overflowed returns how many messages found no room under logpatterns.Config.MaxPatterns and
// were counted under the overflow pattern (logpatterns.OverflowHash) instead, since the
// aggregator was created (streams Expire forgot included): it never decreases.
func (p *Patterns) Overflowed() uint64 { return p.overflowed.Load() }

// SampleLabelLength bounds a sample label in bytes: long enough to recognise a message, short
// enough for a Prometheus label on every series of container_log_messages_total.
const SampleLabelLength = 256

// SampleLabel makes a pattern's sample message a label value: invalid UTF-8 replaced (a label
// must be UTF-8), cut to SampleLabelLength bytes at a character boundary.
func SampleLabel(sample string) string {
	sample = strings.ToValidUTF8(sample, "\uFFFD")
	if len(sample) <= SampleLabelLength {
		return sample
	}
	cut := SampleLabelLength
	for cut > 0 && !utf8.RuneStart(sample[cut]) {
		cut--
	}
	return sample[:cut]
}
