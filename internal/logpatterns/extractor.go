package logpatterns

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Config bounds one Extractor.
type Config struct {
	// MaxPatterns is the number of patterns one extractor keeps; messages that would start a
	// new pattern beyond it are counted in the overflow pattern.
	MaxPatterns int `mapstructure:"max_patterns"`
	// MaxMessageLength is the number of bytes of a message that are analysed; the rest is cut
	// off and the cut is counted (Extractor.Truncated).
	MaxMessageLength int `mapstructure:"max_message_length"`
	// SampleLength is the number of bytes of the first message kept as a pattern's sample.
	SampleLength int `mapstructure:"sample_length"`
}

// DefaultConfig returns the configuration used when the user sets nothing.
func DefaultConfig() Config {
	return Config{MaxPatterns: 1000, MaxMessageLength: 8192, SampleLength: 1024}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.MaxPatterns < 1 {
		errs = append(errs, fmt.Errorf("max_patterns must be at least 1, got %d", c.MaxPatterns))
	}
	if c.MaxMessageLength < 1 {
		errs = append(errs, fmt.Errorf("max_message_length must be at least 1, got %d", c.MaxMessageLength))
	}
	if c.SampleLength < 0 {
		errs = append(errs, fmt.Errorf("sample_length must not be negative, got %d", c.SampleLength))
	}
	return errors.Join(errs...)
}

// Pattern is a group of messages that share a template. The Extractor owns it: Hash and
// Template change when a later message generalises the template (a constant becomes <*>);
// the pointer stays the same for the life of the Extractor.
type Pattern struct {
	// Hash identifies the pattern for its whole life: the 64-bit FNV-1a hash (16 hex digits,
	// TemplateHash) of the template the pattern was created with. It does not change when
	// the template is generalised or refined later (see the package documentation).
	Hash string
	// Template is the message with every variable part replaced by "<*>" and runs of
	// whitespace replaced by one space.
	Template string
	// Level is the level of the first message with a known level.
	Level Level
	// Sample is the first message, cut to Config.SampleLength bytes.
	Sample string
	// Count is the number of messages that joined the pattern.
	Count uint64
}

// OverflowTemplate and OverflowHash identify the pattern that counts messages arriving when
// an extractor already holds Config.MaxPatterns patterns. OverflowHash is TemplateHash(OverflowTemplate).
const (
	OverflowTemplate = "<overflow>"
	OverflowHash     = "119baa322f621315"
)

// TemplateHash returns the pattern hash of a template.
func TemplateHash(template string) string {
	return hex16(fnvString(fnvOffset, template))
}

func hex16(h uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[h&0xf]
		h >>= 4
	}
	return string(b[:])
}

// Tuning holds the few parameters of the clustering rules. The agent always runs
// DefaultTuning; cmd/loghub-score varies them to choose that default by leave-one-system-out
// (a value is only ever judged on systems it was not chosen on).
type Tuning struct {
	// Similarity is the share of positions whose masked tokens must be equal for a message to
	// join a pattern of the same length.
	Similarity float64
	// Variants is the number of distinct words at one position of a family of siblings at
	// which the position is taken for a variable after all: the family's first pattern turns
	// it into <*> and the siblings that differ from it only there are merged into it.
	Variants int
}

// DefaultTuning returns the one tuning every extractor of the agent uses.
func DefaultTuning() Tuning {
	return Tuning{Similarity: 0.8, Variants: 16}
}

type cluster struct {
	pattern Pattern
	hashes  []uint64 // masked-token hash per position; wildcardHash where the pattern has <*>
	shapes  []uint64 // Token.shape per position: the hash with a key masked too
	texts   []string // masked token per position
	kinds   []Kind   // Token.Kind per position of the first message
	// family is the first pattern of the family this one is a sibling in (itself for the
	// first); variants counts, on the first pattern only, the siblings started per position.
	family   *cluster
	variants []uint16
	// merged is the pattern this one was merged into: its messages go there from then on.
	merged *cluster
}

// live follows merges to the pattern that takes c's messages now.
func (c *cluster) live() *cluster {
	for c.merged != nil {
		c = c.merged
	}
	return c
}

// Extractor clusters the messages of one log stream into patterns. It is not safe for
// concurrent use: give each stream its own Extractor or serialise calls.
type Extractor struct {
	cfg        Config
	tuning     Tuning
	clusters   []*cluster
	byLength   map[int][]*cluster
	byFirst    map[uint64][]*cluster // patterns by their anchor, for matchGapped
	signatures map[uint64]*cluster   // exact masked-token sequence → cluster, a bounded cache
	ids        map[uint64]bool       // the Hash of every pattern
	sigCap     int
	overflow   Pattern
	tokens     []Token
	header     headerLearner
	truncated  uint64
	revision   uint64 // see Revision
}

// NewExtractor returns an Extractor. A Config that fails Validate is replaced field by field
// with the defaults.
func NewExtractor(cfg Config) *Extractor {
	return NewTunedExtractor(cfg, DefaultTuning())
}

// NewTunedExtractor returns an Extractor with other clustering parameters than the default:
// for cmd/loghub-score, which chooses DefaultTuning.
func NewTunedExtractor(cfg Config, tuning Tuning) *Extractor {
	def := DefaultConfig()
	if cfg.MaxPatterns < 1 {
		cfg.MaxPatterns = def.MaxPatterns
	}
	if cfg.MaxMessageLength < 1 {
		cfg.MaxMessageLength = def.MaxMessageLength
	}
	if cfg.SampleLength < 0 {
		cfg.SampleLength = def.SampleLength
	}
	sigCap := 16 * cfg.MaxPatterns
	if sigCap < 4096 {
		sigCap = 4096
	}
	return &Extractor{
		cfg:        cfg,
		tuning:     tuning,
		byLength:   make(map[int][]*cluster),
		byFirst:    make(map[uint64][]*cluster),
		signatures: make(map[uint64]*cluster),
		ids:        make(map[uint64]bool),
		sigCap:     sigCap,
		overflow:   Pattern{Hash: OverflowHash, Template: OverflowTemplate},
	}
}

// Truncated returns how many messages were longer than Config.MaxMessageLength.
func (e *Extractor) Truncated() uint64 { return e.truncated }

// Overflow returns the overflow pattern (its Count is the number of messages that found no
// room).
func (e *Extractor) Overflow() *Pattern { return &e.overflow }

// Patterns returns the patterns in creation order, then the overflow pattern if it counted
// anything. The pointers stay valid; their fields change on later calls to Add.
func (e *Extractor) Patterns() []*Pattern {
	out := make([]*Pattern, 0, len(e.clusters)+1)
	for _, c := range e.clusters {
		out = append(out, &c.pattern)
	}
	if e.overflow.Count > 0 {
		out = append(out, &e.overflow)
	}
	return out
}

// Add puts one message (a whole, already joined message) into its pattern and returns the
// pattern and the message's level.
func (e *Extractor) Add(message string) (*Pattern, Level) {
	if len(message) > e.cfg.MaxMessageLength {
		e.truncated++
		message = truncateUTF8(message, e.cfg.MaxMessageLength)
	}
	first := message
	if nl := strings.IndexByte(message, '\n'); nl >= 0 {
		first = message[:nl]
	}
	cut, level := e.header.cut(first)
	if level == LevelUnknown {
		level = DetectLevel(message)
	}
	full := message
	message = message[cut:]
	e.tokens = Tokenize(message, e.tokens[:0])
	toks := e.tokens
	sig := uint64(len(toks)) * fnvPrime
	for i := range toks {
		sig = (sig ^ toks[i].hash) * fnvPrime
	}
	c := e.signatures[sig]
	if c != nil {
		c = c.live()
	} else {
		c = e.place(message, full, toks)
		if len(e.signatures) >= e.sigCap {
			clear(e.signatures)
		}
		e.signatures[sig] = c
	}
	if c == nil {
		e.overflow.Count++
		return &e.overflow, level
	}
	c.pattern.Count++
	if c.pattern.Level == LevelUnknown && level != LevelUnknown {
		c.pattern.Level = level
		e.revision++
	}
	return &c.pattern, level
}

// place finds or makes the pattern of a message no cached sequence led to; nil when there
// is no room for a new one.
func (e *Extractor) place(message, full string, toks []Token) *cluster {
	c, oneWord := e.match(toks)
	if c == nil {
		if gapped := e.matchGapped(message, toks); gapped != nil {
			return gapped
		}
		if len(e.clusters) >= e.cfg.MaxPatterns {
			return nil
		}
		return e.newCluster(message, full, toks)
	}
	// A constant word of the pattern that differs in the message makes a sibling, unless the
	// word reads as a variable (variableWord): states, verbs and methods are words from a
	// small closed set that tell events apart ("VM Started" and "VM Paused"). Once the family
	// has seen Variants words at one position, the position is a variable after all: the
	// first pattern takes it as <*>, and the siblings that only differ there merge into it.
	settled := false
	for i := range toks {
		if e.wordDiffers(c, toks, i) && (oneWord || !variableWord(message, toks, i)) {
			settled = true
			break
		}
	}
	if !settled {
		e.generalise(c, message, toks)
		return c
	}
	root := c.family
	if root.variants == nil {
		root.variants = make([]uint16, len(root.hashes))
	}
	variable := false
	for i := range toks {
		if e.wordDiffers(c, toks, i) && root.variants[i] < 0xffff {
			root.variants[i]++
			if int(root.variants[i]) >= e.tuning.Variants {
				variable = true
			}
		}
	}
	if variable {
		e.generalise(root, message, toks)
		e.mergeFamily(root)
		return root
	}
	if len(e.clusters) >= e.cfg.MaxPatterns {
		return nil
	}
	s := e.newCluster(message, full, toks)
	s.family = root
	return s
}

// wordDiffers reports whether position i holds a constant word in c and another word in
// the message.
func (e *Extractor) wordDiffers(c *cluster, toks []Token, i int) bool {
	t := &toks[i]
	h := c.hashes[i]
	if t.Kind != c.kinds[i] || (t.Kind != KindWord && t.Kind != KindQuoted) {
		return false
	}
	return h != t.hash && h != wildcardHash && h != t.shape && c.shapes[i] != t.shape
}

// variableWord reports whether a word that differs from a pattern's word at position i reads
// as a variable anyway: an identifier with an inner '.', '/' or ':' (a host, a class, a
// package), a unit after a number ("12 KB", "3 B"), or a name after "user" or "for" (user
// names are the words that vary most in system logs).
func variableWord(message string, toks []Token, i int) bool {
	w := message[toks[i].Start:toks[i].End]
	if toks[i].Kind == KindQuoted { // the verb, or the whole quoted text
		w = message[toks[i].Start+1 : toks[i].VarStart]
	}
	core := trimPunct(w)
	for k := 1; k < len(core)-1; k++ {
		if c := core[k]; c == '.' || c == '/' || c == ':' {
			return true
		}
	}
	if eq := strings.IndexByte(core, '='); eq > 0 && identityKey(core[:eq]) {
		return true
	}
	if i == 0 {
		return false
	}
	prev := &toks[i-1]
	if prev.Kind == KindNumber && len(core) <= 3 {
		return true
	}
	if prev.Kind == KindWord {
		p := message[prev.Start:prev.End]
		for p != "" && isTrailingPunct(p[len(p)-1]) {
			p = p[:len(p)-1]
		}
		return identityKey(p) || equalFold(p, "for")
	}
	return false
}

// identityKey reports whether k names a user or a host.
func identityKey(k string) bool {
	for _, n := range [...]string{"user", "ruser", "username", "login", "account", "host", "rhost", "hostname"} {
		if equalFold(k, n) {
			return true
		}
	}
	return false
}

// mergeFamily merges into root the siblings whose every position root now matches.
func (e *Extractor) mergeFamily(root *cluster) {
	n := len(root.hashes)
	list := e.byLength[n]
	kept := list[:0]
	for _, s := range list {
		if s != root && s.family == root && root.covers(s) {
			s.merged = root
			continue
		}
		kept = append(kept, s)
	}
	clear(list[len(kept):])
	e.byLength[n] = kept
}

// covers reports whether every position of s is equal in c or a wildcard there.
func (c *cluster) covers(s *cluster) bool {
	for i, h := range c.hashes {
		if h != wildcardHash && h != s.hashes[i] && h != s.shapes[i] {
			return false
		}
	}
	return true
}

// match returns the most similar cluster of the same length, or nil when none reaches the
// threshold.
//
// Below the threshold, it returns a pattern the message differs from in one word only, with
// oneWord true: the message is of that pattern's family, a sibling of it.
func (e *Extractor) match(toks []Token) (c *cluster, oneWord bool) {
	n := len(toks)
	if n == 0 {
		if cs := e.byLength[0]; len(cs) > 0 {
			return cs[0], false
		}
		return nil, false
	}
	// Like Drain, a position the pattern already holds as <*> does not count as a match: an
	// all-<*> pattern must not swallow every message of its length.
	need := int(e.tuning.Similarity*float64(n) + 0.999999)
	// A key=value or key:value token whose key differs from the pattern's but whose shape
	// (key and value masked) is the same counts as equal, as it would were the key a
	// variable: "libgc1:amd64" and "dbus:amd64" in dpkg.log. Among clusters with as many
	// equal positions, the one with fewer such key-only matches wins.
	var best, family *cluster
	bestHit, bestKeyed := need-1, 0
	for _, c := range e.byLength[n] {
		hit, keyed, miss := 0, 0, -1
		for i := range toks {
			switch {
			case c.hashes[i] == toks[i].hash:
				hit++
			case c.shapes[i] == toks[i].shape:
				hit++
				keyed++
			default:
				miss = i
			}
		}
		if hit > bestHit || (hit == bestHit && best != nil && keyed < bestKeyed) {
			best, bestHit, bestKeyed = c, hit, keyed
		}
		// A short message that differs in one word only is of the pattern's family, even
		// below the threshold ("job alpha finished" and "job beta finished").
		if family == nil && hit == n-1 && n >= 3 && e.wordDiffers(c, toks, miss) {
			family = c
		}
	}
	if best == nil {
		return family, family != nil
	}
	return best, false
}

func (e *Extractor) newCluster(message, full string, toks []Token) *cluster {
	c := &cluster{hashes: make([]uint64, len(toks)), shapes: make([]uint64, len(toks)), texts: make([]string, len(toks)), kinds: make([]Kind, len(toks))}
	c.family = c
	for i, t := range toks {
		c.hashes[i] = t.hash
		c.shapes[i] = t.shape
		c.texts[i] = strings.Clone(t.Masked(message)) // never a view of the caller's message
		c.kinds[i] = t.Kind
	}
	// The first word names the event even when it is a key-value word ("onExtend:<*>" vs
	// "onStandStepChanged:<*>" in HealthApp): its key never matches by shape.
	if len(toks) > 0 {
		c.shapes[0] = c.hashes[0]
	}
	c.pattern.Sample = strings.Clone(truncateUTF8(full, e.cfg.SampleLength))
	c.setTemplate()
	c.pattern.Hash = e.newHash(c.pattern.Template)
	e.revision++
	e.clusters = append(e.clusters, c)
	if len(toks) >= minGapped {
		a := anchor(toks)
		e.byFirst[a] = append(e.byFirst[a], c)
	}
	e.byLength[len(toks)] = append(e.byLength[len(toks)], c)
	return c
}

// generalise turns every position where the message differs from the cluster into a
// wildcard position. The position matches anything from then on; its text keeps what both
// sides share around the difference ("rhost=<*>" from "rhost=<*>" and "rhost=example.org").
// A key-value position whose keys differ but whose shapes agree becomes a key-wildcard
// position instead ("<*>:<*>" from "libgc1:<*>" and "dbus:<*>"): it then matches every
// token of that shape, whatever its key.
func (e *Extractor) generalise(c *cluster, message string, toks []Token) {
	changed := false
	for i, t := range toks {
		h := c.hashes[i]
		if h == wildcardHash || h == t.hash || h == t.shape {
			continue
		}
		if c.shapes[i] == t.shape {
			c.hashes[i] = t.shape
		} else {
			c.hashes[i], c.shapes[i] = wildcardHash, wildcardHash
		}
		c.texts[i] = mergeTokens(c.texts[i], t.Masked(message))
		changed = true
	}
	if changed {
		c.setTemplate()
		e.revision++
	}
}

func (c *cluster) setTemplate() {
	c.pattern.Template = strings.Join(c.texts, " ")
}

// newHash returns the identity of a pattern created with template: its TemplateHash, or, in
// the rare case another pattern of this extractor already has that hash (a pattern split off
// with the template another one started with), the hash of the template followed by "#n"
// for the smallest n that is free.
func (e *Extractor) newHash(template string) string {
	h := fnvString(fnvOffset, template)
	for n := 1; e.ids[h]; n++ {
		h = fnvString(fnvString(fnvOffset, template), "#"+strconv.Itoa(n))
	}
	e.ids[h] = true
	return hex16(h)
}

// truncateUTF8 cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// mergeTokens returns the text of a position where a and b differ: their common prefix up to
// a punctuation boundary, <*>, and their common suffix from a punctuation boundary.
func mergeTokens(a, b string) string {
	p := 0
	for p < len(a) && p < len(b) && a[p] == b[p] {
		p++
	}
	for p > 0 && !isBoundary(a[p-1]) {
		p--
	}
	for p > 0 && strings.HasSuffix(a[:p], "<") { // never keep half of a "<*>"
		p--
	}
	sfx := 0
	for sfx < len(a)-p && sfx < len(b)-p && a[len(a)-1-sfx] == b[len(b)-1-sfx] {
		sfx++
	}
	for sfx > 0 && !isBoundary(a[len(a)-sfx]) {
		sfx--
	}
	for sfx > 0 && strings.HasPrefix(a[len(a)-sfx:], ">") {
		sfx--
	}
	return a[:p] + Wildcard + a[len(a)-sfx:]
}

// isBoundary is punctuation that separates a key or bracket from a value.
func isBoundary(c byte) bool {
	switch c {
	case '=', ':', '(', ')', '[', ']', '{', '}', '"', '\'', ',', ';', '<', '>':
		return true
	}
	return false
}

// minGapped and maxGapped bound the token counts of messages matchGapped compares, and
// maxGappedTries the patterns it compares one message with (a stream whose patterns all
// start with one word must not make every new message cost a thousand alignments).
const (
	minGapped      = 3
	maxGapped      = 256
	maxGappedTries = 64
)

// matchGapped finds, for a message no pattern of its length took, a pattern of another
// length with the same anchor that it equals but for runs of variables: an optional
// group ("3548 bytes (3.46 KB) sent" and "0 bytes sent"), a list of any length ("delete
// blk_1 blk_2 blk_3"), a value holding spaces ("lifetime <1 sec" and "lifetime 00:01").
// The message joins it; the pattern's template shows <*> where the lengths differ.
func (e *Extractor) matchGapped(message string, toks []Token) *cluster {
	if len(toks) < minGapped || len(toks) > maxGapped {
		return nil
	}
	tried := 0
	for _, c := range e.byFirst[anchor(toks)] {
		if c.merged != nil || len(c.hashes) > maxGapped {
			continue
		}
		tried++
		if tried > maxGappedTries {
			break
		}
		if e.alignGapped(c, message, toks, false) {
			e.alignGapped(c, message, toks, true)
			return c
		}
	}
	return nil
}

// alignGapped walks a pattern and a message side by side: equal tokens advance both, a
// variable-like token of either side that the other lacks is skipped (the message's first
// when its next token lines up with the pattern's). With apply, it turns the pattern's
// skipped positions into <*> and marks a gap after the pattern position before each run
// the message adds.
func (e *Extractor) alignGapped(c *cluster, message string, toks []Token, apply bool) bool {
	nc, nm := len(c.hashes), len(toks)
	same := func(i, j int) bool {
		t := &toks[j]
		// A <*> of the pattern takes a variable or a short word, not a word the pattern
		// has further on ("received,"): that one is where the two line up again.
		return c.hashes[i] == t.hash || c.shapes[i] == t.shape ||
			(c.hashes[i] == wildcardHash && extraToken(t.Kind, message[t.Start:t.End], true))
	}
	msgExtra := func(j int) bool {
		t := &toks[j]
		return extraToken(t.Kind, message[t.Start:t.End], j > 0 && toks[j-1].Kind != KindWord)
	}
	patExtra := func(i int) bool {
		return c.hashes[i] == wildcardHash || extraToken(c.kinds[i], c.texts[i], i > 0 && (c.kinds[i-1] != KindWord || c.hashes[i-1] == wildcardHash))
	}
	skipsMsg, skipsPat := 0, 0
	skipMsg := func(i, j int) {
		skipsMsg++
		if apply && i > 0 && !strings.HasSuffix(c.texts[i-1], Wildcard) {
			c.texts[i-1] += Wildcard
		}
	}
	skipPat := func(i int) {
		skipsPat++
		if apply {
			c.hashes[i], c.shapes[i], c.texts[i] = wildcardHash, wildcardHash, Wildcard
		}
	}
	i, j, matched := 0, 0, 0
	for i < nc && j < nm {
		switch {
		case same(i, j):
			i, j, matched = i+1, j+1, matched+1
		case msgExtra(j) && (j+1 < nm && same(i, j+1) || !patExtra(i)):
			skipMsg(i, j)
			j++
		case patExtra(i):
			skipPat(i)
			i++
		default:
			return false
		}
	}
	if matched < minGapped {
		return false
	}
	for ; j < nm; j++ {
		if !msgExtra(j) {
			return false
		}
		skipMsg(nc, j)
	}
	for ; i < nc; i++ {
		if !patExtra(i) {
			return false
		}
		skipPat(i)
	}
	// Between messages of one length only a shift counts (a run one side adds where the
	// other adds another) that leaves as many equal tokens as the similarity threshold asks.
	if nc == nm && (skipsMsg == 0 || skipsPat == 0 || float64(matched) < e.tuning.Similarity*float64(nm)) {
		return false
	}
	if apply {
		c.setTemplate()
	}
	return true
}

// extraToken reports whether a token may be one a variable-length part adds: a variable, or
// a word of at most three letters after a variable (a unit after a number, "KB)", "sec", a
// list's "<ok>").
func extraToken(k Kind, w string, afterVariable bool) bool {
	if k != KindWord {
		return true
	}
	return afterVariable && len(trimPunct(w)) <= 3
}

// anchor is the hash of the first constant word among a message's first three tokens (the
// first token's when there is none): variable-length matching only compares messages that
// share it, so a host or an address before the first word does not keep them apart.
func anchor(toks []Token) uint64 {
	for i := 0; i < len(toks) && i < 3; i++ {
		if toks[i].Kind == KindWord {
			return toks[i].hash
		}
	}
	return toks[0].hash
}
