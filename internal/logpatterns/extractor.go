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
}

// DefaultTuning returns the one tuning every extractor of the agent uses.
func DefaultTuning() Tuning {
	return Tuning{Similarity: 0.8}
}

type cluster struct {
	pattern Pattern
	hashes  []uint64 // masked-token hash per position; wildcardHash where the pattern has <*>
	shapes  []uint64 // Token.shape per position: the hash with a key masked too
	texts   []string // masked token per position
}

// Extractor clusters the messages of one log stream into patterns. It is not safe for
// concurrent use: give each stream its own Extractor or serialise calls.
type Extractor struct {
	cfg        Config
	tuning     Tuning
	clusters   []*cluster
	byLength   map[int][]*cluster
	signatures map[uint64]*cluster // exact masked-token sequence → cluster, a bounded cache
	ids        map[uint64]bool     // the Hash of every pattern
	sigCap     int
	overflow   Pattern
	tokens     []Token
	header     headerLearner
	truncated  uint64
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
	if c == nil {
		c = e.match(toks)
		if c != nil {
			e.generalise(c, message, toks)
		} else if len(e.clusters) < e.cfg.MaxPatterns {
			c = e.newCluster(message, full, toks)
		}
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
	if c.pattern.Level == LevelUnknown {
		c.pattern.Level = level
	}
	return &c.pattern, level
}

// match returns the most similar cluster of the same length, or nil when none reaches the
// threshold.
func (e *Extractor) match(toks []Token) *cluster {
	n := len(toks)
	if n == 0 {
		if cs := e.byLength[0]; len(cs) > 0 {
			return cs[0]
		}
		return nil
	}
	// Like Drain, a position the pattern already holds as <*> does not count as a match: an
	// all-<*> pattern must not swallow every message of its length.
	need := int(e.tuning.Similarity*float64(n) + 0.999999)
	// A key=value or key:value token whose key differs from the pattern's but whose shape
	// (key and value masked) is the same counts as equal, as it would were the key a
	// variable: "libgc1:amd64" and "dbus:amd64" in dpkg.log. Among clusters with as many
	// equal positions, the one with fewer such key-only matches wins.
	var best *cluster
	bestHit, bestKeyed := need-1, 0
	for _, c := range e.byLength[n] {
		// A leading constant word is the message's verb or subject ("Accepted ..." vs
		// "Failed ..."): messages that differ there are different events.
		if toks[0].Kind == KindWord && c.hashes[0] != toks[0].hash {
			continue
		}
		hit, keyed := 0, 0
		for i := range toks {
			if c.hashes[i] == toks[i].hash {
				hit++
			} else if c.shapes[i] == toks[i].shape {
				hit++
				keyed++
			}
		}
		if hit > bestHit || (hit == bestHit && best != nil && keyed < bestKeyed) {
			best, bestHit, bestKeyed = c, hit, keyed
		}
	}
	return best
}

func (e *Extractor) newCluster(message, full string, toks []Token) *cluster {
	c := &cluster{hashes: make([]uint64, len(toks)), shapes: make([]uint64, len(toks)), texts: make([]string, len(toks))}
	for i, t := range toks {
		c.hashes[i] = t.hash
		c.shapes[i] = t.shape
		c.texts[i] = t.Masked(message)
	}
	// The first word names the event even when it is a key-value word ("onExtend:<*>" vs
	// "onStandStepChanged:<*>" in HealthApp): its key never matches by shape.
	if len(toks) > 0 {
		c.shapes[0] = c.hashes[0]
	}
	c.pattern.Sample = strings.Clone(truncateUTF8(full, e.cfg.SampleLength))
	c.setTemplate()
	c.pattern.Hash = e.newHash(c.pattern.Template)
	e.clusters = append(e.clusters, c)
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
