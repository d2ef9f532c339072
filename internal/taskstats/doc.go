// Package taskstats is a generic-netlink TASKSTATS client: per-TGID delay-accounting queries,
// the per-exit stats subscription and the decoding of struct taskstats by version.
package taskstats
