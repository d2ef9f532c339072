package logpatterns

import (
	"strconv"
	"time"
)

// State of an Extractor and a Joiner that a restarted agent restores: the patterns' identities
// (so the same event keeps its pattern hash across the restart instead of starting over from
// its first message's template) and a message still waiting for continuation lines.

// PositionState is one word position of a pattern.
type PositionState struct {
	Text  string `json:"t"`
	Hash  uint64 `json:"h"`
	Shape uint64 `json:"s"`
	Kind  Kind   `json:"k,omitempty"`
}

// PatternState is what identifies a pattern: its hash (kept as it is, see newHash), its word
// positions (the template is their texts joined by one space), its level and sample, and its
// place among its siblings. Counts are kept apart (Extractor.Counts): they change with every
// message, the identity rarely.
type PatternState struct {
	Hash      string          `json:"hash"`
	Positions []PositionState `json:"p"`
	Level     Level           `json:"l,omitempty"`
	Sample    string          `json:"sample,omitempty"`
	// Family is 1 + the index of the first pattern of its family, 0 for a first pattern;
	// Merged is 1 + the index of the pattern it was merged into, 0 when it was not.
	Family   int      `json:"family,omitempty"`
	Merged   int      `json:"merged,omitempty"`
	Variants []uint16 `json:"variants,omitempty"`
	// Anchor indexes the pattern for messages of other lengths (matchGapped); HasAnchor is
	// false for patterns too short to have one.
	Anchor    uint64 `json:"anchor,omitempty"`
	HasAnchor bool   `json:"has_anchor,omitempty"`
}

// HeaderState is the header layout a stream's extractor learnt from its first lines.
type HeaderState struct {
	Kinds   []uint8 `json:"kinds"`
	Closing uint16  `json:"closing"`
}

// ExtractorState is every pattern of an Extractor, in creation order, and the header layout
// it learnt (nil while it is still learning: a restarted one learns again).
type ExtractorState struct {
	Patterns []PatternState `json:"patterns"`
	Header   *HeaderState   `json:"header,omitempty"`
}

// Revision changes whenever a pattern is created or its template or level changes: a caller
// that saved the State at one revision need not save it again until the revision moves.
func (e *Extractor) Revision() uint64 { return e.revision }

// State returns a copy of the patterns' identities.
func (e *Extractor) State() ExtractorState {
	index := make(map[*cluster]int, len(e.clusters))
	for i, c := range e.clusters {
		index[c] = i
	}
	anchors := make(map[*cluster]uint64, len(e.clusters))
	for a, cs := range e.byFirst {
		for _, c := range cs {
			anchors[c] = a
		}
	}
	s := ExtractorState{Patterns: make([]PatternState, len(e.clusters))}
	for i, c := range e.clusters {
		ps := PatternState{
			Hash: c.pattern.Hash, Level: c.pattern.Level, Sample: c.pattern.Sample,
			Positions: make([]PositionState, len(c.texts)),
			Variants:  append([]uint16(nil), c.variants...),
		}
		for j := range c.texts {
			ps.Positions[j] = PositionState{Text: c.texts[j], Hash: c.hashes[j], Shape: c.shapes[j], Kind: c.kinds[j]}
		}
		if c.family != nil && c.family != c {
			ps.Family = index[c.family] + 1
		}
		if c.merged != nil {
			ps.Merged = index[c.merged] + 1
		}
		ps.Anchor, ps.HasAnchor = anchors[c]
		s.Patterns[i] = ps
	}
	if e.header.learnt {
		h := &HeaderState{Closing: e.header.layout.closing, Kinds: make([]uint8, e.header.layout.n)}
		for i := range h.Kinds {
			h.Kinds[i] = uint8(e.header.layout.kinds[i])
		}
		s.Header = h
	}
	return s
}

// Counts appends every pattern's Count, in the order of State and Patterns (the overflow
// pattern left out: see Overflow), to dst.
func (e *Extractor) Counts(dst []uint64) []uint64 {
	for _, c := range e.clusters {
		dst = append(dst, c.pattern.Count)
	}
	return dst
}

// Restore makes an empty Extractor continue the patterns of s with the given counts (one per
// pattern, missing ones zero) and overflow count. Patterns beyond Config.MaxPatterns, and a
// state that does not add up (written by another version), are left out: those events start
// new patterns.
func (e *Extractor) Restore(s ExtractorState, counts []uint64, overflow uint64) {
	if len(e.clusters) > 0 || !restorable(s, e.cfg.MaxPatterns) {
		e.overflow.Count = overflow
		return
	}
	n := min(len(s.Patterns), e.cfg.MaxPatterns)
	clusters := make([]*cluster, n)
	for i, ps := range s.Patterns[:n] {
		c := &cluster{
			hashes: make([]uint64, len(ps.Positions)), shapes: make([]uint64, len(ps.Positions)),
			texts: make([]string, len(ps.Positions)), kinds: make([]Kind, len(ps.Positions)),
		}
		for j, p := range ps.Positions {
			c.hashes[j], c.shapes[j], c.texts[j], c.kinds[j] = p.Hash, p.Shape, p.Text, p.Kind
		}
		c.pattern.Hash, c.pattern.Level = ps.Hash, ps.Level
		c.pattern.Sample = truncateUTF8(ps.Sample, e.cfg.SampleLength)
		if len(ps.Variants) == len(c.hashes) {
			c.variants = append([]uint16(nil), ps.Variants...)
		}
		if i < len(counts) {
			c.pattern.Count = counts[i]
		}
		c.setTemplate()
		clusters[i] = c
	}
	for i, ps := range s.Patterns[:n] {
		c := clusters[i]
		c.family = c
		if ps.Family > 0 && ps.Family-1 < n {
			c.family = clusters[ps.Family-1]
		}
		if ps.Merged > 0 && ps.Merged-1 < n {
			c.merged = clusters[ps.Merged-1]
		}
		if id, err := strconv.ParseUint(ps.Hash, 16, 64); err == nil {
			e.ids[id] = true
		}
		if ps.HasAnchor {
			e.byFirst[ps.Anchor] = append(e.byFirst[ps.Anchor], c)
		}
		if c.merged == nil {
			e.byLength[len(c.hashes)] = append(e.byLength[len(c.hashes)], c)
		}
	}
	e.clusters = clusters
	if h := s.Header; h != nil && len(h.Kinds) <= maxHeaderFields {
		e.header.learnt = true
		e.header.layout = layout{closing: h.Closing, n: len(h.Kinds)}
		for i, k := range h.Kinds {
			e.header.layout.kinds[i] = fieldKind(k)
		}
	}
	e.overflow.Count = overflow
	e.revision++
}

// restorable reports whether a state's patterns are whole: hashes of 16 hex digits, one
// position per text, family and merge links within the patterns restored.
func restorable(s ExtractorState, maxPatterns int) bool {
	n := min(len(s.Patterns), maxPatterns)
	for _, ps := range s.Patterns[:n] {
		if len(ps.Hash) != 16 || ps.Family > n || ps.Merged > n || ps.Family < 0 || ps.Merged < 0 {
			return false
		}
		if _, err := strconv.ParseUint(ps.Hash, 16, 64); err != nil {
			return false
		}
	}
	return true
}

// JoinerState is the message a Joiner holds while it waits for continuation lines.
type JoinerState struct {
	Text  string    `json:"text,omitempty"` // the lines joined with "\n"
	Lines int       `json:"lines,omitempty"`
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// Trace is where the message is in a stack trace (Python, Go), which decides what continues it.
	Trace uint8 `json:"trace,omitempty"`
}

// Pending returns a copy of the waiting message; Lines is 0 when there is none.
func (j *Joiner) Pending() JoinerState {
	if j.lines == 0 {
		return JoinerState{}
	}
	return JoinerState{Text: string(j.text), Lines: j.lines, First: j.first, Last: j.last, Trace: uint8(j.state)}
}

// Restore makes the Joiner wait for continuations of s, as the Joiner that returned it from
// Pending did (within this Joiner's caps). A message it already held is replaced.
func (j *Joiner) Restore(s JoinerState) {
	j.lines = 0
	if s.Lines < 1 {
		return
	}
	j.text = append(j.text[:0], truncateUTF8(s.Text, j.cfg.MaxBytes)...)
	j.lines = min(s.Lines, j.cfg.MaxLines)
	j.first, j.last, j.state = s.First, s.Last, traceState(s.Trace)
}
