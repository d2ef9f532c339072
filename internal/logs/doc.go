// Package logs finds and reads the node's logs — docker json-file, containerd CRI, journald and
// plain files — and hands each message, attributed to its container or unit, to the pattern
// extractor. It owns tailing (rotation, truncation, offsets, checkpoints), not pattern logic.
package logs
