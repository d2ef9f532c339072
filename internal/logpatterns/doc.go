// Package logpatterns turns a stream of log messages into patterns: header detection,
// tokenization, level detection, multi-line joining and online clustering with bounded
// memory. Pure Go: it does no I/O and starts no goroutines. Reading logs is internal/logs'
// job; exporting patterns is the receiver's. It must not import other packages of the
// project (its tests use its own score subpackage).
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
// A Message's Text lives in its Joiner's buffer until the next call; Extractor.Add keeps
// no reference to the message it is given.
//
// # Headers (header.go)
//
// An Extractor takes the header off the first line of every message before clustering:
// timestamps in the usual formats, syslog and klog prefixes, host, pid and thread columns,
// the level and the logger ("2015-10-18 18:01:47,978 INFO [main] o.a.h.MRAppMaster:"). It
// learns the header layout of its stream from the stream's first lines (the layout at least
// four in five of the lines with a header share, when at least half the lines have one) and
// cuts every line that fits it at the same field; a line that does not fit is read on its
// own. Most lines of a window that no longer fit start the learning again. Nothing is
// configured per format. The level a header states is the message's level; without one,
// DetectLevel reads it from the text. Templates and hashes are made of the message after
// the header; a pattern's Sample is the whole first message.
//
// # Tokens and templates
//
// Messages are split on whitespace. Each word is classified (wordclass.go): numbers, hex,
// UUIDs, IPv4/IPv6 with optional port or prefix, paths, URLs, durations, timestamps and
// month or weekday names, quoted strings, key=value with a variable value, and any other
// word holding a digit are variables; their variable part becomes "<*>" while surrounding
// punctuation and keys stay ("(uid=<*>)", "[<*>]"). A quoted string that starts with an
// upper-case verb keeps it (`"GET <*>"`). A pattern's template is its masked words joined
// by one space. Tokens carry hashes of their masked form (shape.go), so clustering compares
// integers.
//
// # Clustering
//
// A message joins the pattern of the same word count whose masked words are equal at the
// most positions, if at least Tuning.Similarity of the positions are equal. Joining turns
// the differing positions into "<*>", with two exceptions that keep events apart:
//   - a constant word of the pattern that differs in the message (a state, a verb, a
//     request method: "VM Started" and "VM Paused") starts a sibling pattern, unless the
//     word reads as a variable (an identifier with an inner '.', '/' or ':', a unit after a
//     number, a name after "user" or "for"); a short message one word off a pattern is its
//     sibling too. A family whose siblings reach Tuning.Variants words at one position takes
//     that position for a variable: its first pattern turns it into "<*>" and the siblings
//     that differ from it only there merge into it;
//   - a key:value word whose key differs but whose shape agrees counts as equal ("libgc1:amd64"
//     and "dbus:amd64" in dpkg.log make "<*>:<*>"), except as the first word.
//
// A message no pattern of its length takes may join a pattern of another length (or a
// shifted one of its own) with the same first word when the two differ only by runs of
// variables: an optional group ("3548 bytes (3.46 KB) sent" and "0 bytes sent"), a list of
// any length, a value holding spaces ("lifetime <1 sec"). The pattern's template shows
// "<*>" where they differ. Exact repeats of a masked sequence are found through a bounded
// cache without comparing. DefaultTuning is the one tuning of the agent; cmd/loghub-score
// chooses it, and reports how it does on systems it was not chosen on (leave-one-out).
//
// # Hashes: one series per event
//
// Pattern.Hash is the TemplateHash (64-bit FNV-1a, 16 hex digits) of the template a pattern
// was created with, and it never changes for the life of the Extractor:
//   - generalising ("user alice" then "user bob": "user <*>") keeps the hash;
//   - a split keeps it: a differing state word never enters the pattern, it starts a sibling
//     with a hash of its own, so the first pattern's series goes on counting its own event;
//   - a merge keeps the first pattern's hash: the merged siblings keep the counts they have
//     (their series stop growing) and their messages count under the first pattern's hash
//     from then on. Merged patterns stay in Patterns().
//
// Two patterns of one Extractor never share a hash. The hashes depend on the messages and
// their order only: the same stream gives the same hashes on every machine; two streams
// whose first message of an event differs in a word that later turns out variable give
// that event different hashes.
//
// # Bounded memory
//
// Config.MaxPatterns caps the patterns of an Extractor; a message that would start one more
// is counted in the overflow pattern (template OverflowTemplate "<overflow>", hash
// OverflowHash "119baa322f621315"). Config.MaxMessageLength cuts long messages (counted by
// Extractor.Truncated), Config.SampleLength cuts samples, and JoinerConfig caps the lines and
// bytes of a joined message (dropped lines counted by Joiner.Dropped). The header learner
// keeps a fixed number of counters.
package logpatterns
