// Package logpatterns turns a stream of log messages into patterns: tokenization, level
// detection, multi-line joining and online clustering with bounded memory. Pure Go: no I/O.
package logpatterns
