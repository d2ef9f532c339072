// Package logpatterns turns a stream of log messages into patterns: tokenization, level
// detection, multi-line joining and online clustering with bounded memory. Pure Go: it does
// no I/O and starts no goroutines. Reading logs is internal/logs' job; exporting patterns is
// the receiver's.
//
// # Use
//
// One Joiner and one Extractor per log stream (a container's stdout, a file, a journald
// unit). Neither is safe for concurrent use.
//
//	j := logpatterns.NewJoiner(logpatterns.DefaultJoinerConfig())
//	e := logpatterns.NewExtractor(cfg) // cfg logpatterns.Config from the receiver's config
//	for line, t := range lines {
//		if msg, ok := j.Add(line, t); ok {
//			p, level := e.Add(msg.Text) // count (p.Hash, level) yourself
//		}
//	}
//	// on the caller's ticker:
//	if msg, ok := j.Flush(now); ok { e.Add(msg.Text) }
//	for _, p := range e.Patterns() { /* p.Hash, p.Template, p.Level, p.Sample, p.Count */ }
//
// DetectLevel gives the level of a message on its own (also returned by Extractor.Add).
//
// # Tokens and templates
//
// Messages are split on whitespace. Each word is classified (Tokenize): numbers, hex, UUIDs,
// IPv4/IPv6 with optional port or prefix, paths, URLs, durations, timestamps and month or
// weekday names, quoted strings, key=value with a variable value, and any other word holding
// a digit are variables; their variable part becomes "<*>" while surrounding punctuation and
// keys stay ("(uid=<*>)", "[<*>]"). A pattern's template is its masked words joined by one
// space.
//
// # Clustering
//
// A message joins the pattern of the same word count whose masked words are equal at the
// most positions, if at least 80% of the positions are equal and the first word is equal
// when it is a constant; otherwise it starts a pattern. A key:value word (not key=value,
// whose key is a field name) whose key differs but whose shape with the key masked agrees
// counts as equal, except as the first word: dpkg's "libgc1:amd64" and "dbus:amd64" join
// one pattern "<*>:<*>". Joining turns the differing positions of the pattern into "<*>"
// ("<*>:<*>" for such keys), so a Pattern's Template and Hash can change while its pointer
// stays. Exact repeats of a masked sequence are found through a bounded cache
// without comparing. With the one default configuration this scores a grouping accuracy of
// 0.93 on average over the 12 Loghub-2k systems (go run ./cmd/loghub-score).
//
// # Hashes
//
// Pattern.Hash is the 64-bit FNV-1a hash of the template in 16 lower-case hex digits
// (TemplateHash): the same template has the same hash in every run on every machine.
//
// # Bounded memory
//
// Config.MaxPatterns caps the patterns of an Extractor; a message that would start one more
// is counted in the overflow pattern (template OverflowTemplate "<overflow>", hash
// OverflowHash "119baa322f621315"). Config.MaxMessageLength cuts long messages (counted by
// Extractor.Truncated), Config.SampleLength cuts samples, and JoinerConfig caps the lines and
// bytes of a joined message (dropped lines counted by Joiner.Dropped).
package logpatterns
