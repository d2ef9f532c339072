// Package logs finds and reads the node's logs — docker json-file, containerd CRI, journald and
// plain files — and hands each message, attributed to its container or unit, to a Sink. It owns
// tailing (rotation, truncation, offsets, checkpoints) and message counting by pattern; pattern
// logic itself (tokens, levels, clustering, multi-line joining) is internal/logpatterns'. It
// never touches the container registry's state: it only looks containers up.
//
// # Use
//
//	patterns := logs.NewPatterns(cfg.Patterns, cfg.Multiline) // the Sink that counts
//	patterns.Restore(saved)                                   // the streams of the last checkpoint, if any
//	reader := logs.NewReader(cfg, registry, patterns, logger) // registry: *containers.Registry or nil
//	err := reader.Start(ctx, store) // store: a CheckpointStore, or nil; err names sources that
//	                                // cannot run (the others do run)
//	...
//	reader.Checkpoint(func() { saved = patterns.Snapshot(nil) }) // positions to store, counts to saved
//	patterns.Tick(now)                       // every second: the multi-line joiners' clock
//	patterns.Counts(id, func(c MessageCount)) // per collection: container_log_messages_total
//	patterns.FlushPatterns(hold, func(r PatternRecord)) // per patterns_flush_interval: pattern records
//	patterns.Forget(ids)                      // containers gone for good
//	patterns.Expire(now.Add(-cfg.StreamExpiry))
//	reader.Shutdown() // saves checkpoints
//
// # Sources and attribution
//
//   - docker: <docker.containers_dir>/<id>/<id>-json.log, plus the LogPath of the registry's
//     docker containers; the registry's ID for the runtime id, else "/docker/<id>". dockerd's
//     16 KiB chunks (no trailing "\n") are joined per stream.
//   - cri: <cri.pods_dir>/<ns>_<pod>_<uid>/<container>/<n>.log, plus the registry's CRI
//     LogPaths; "/k8s/<ns>/<pod>/<container>". P chunks are joined up to their F line.
//   - journald (cgo builds; otherwise Start reports "journald source not built in"):
//     CONTAINER_ID_FULL/CONTAINER_ID (docker's journald driver) → that docker container; else
//     _SYSTEMD_CGROUP → the ID the registry gives that cgroup's container (cgroups.Identify:
//     "/system.slice/system-getty.slice/getty@tty1.service", a runtime's scope → the registry's
//     container of its runtime id, a user session → the node); else the registry's container
//     of _PID; else _SYSTEMD_UNIT placed where systemd puts it by default (system.slice, a
//     template's "system-<template>.slice", init.scope and sessions → the node); else the
//     node. PRIORITY gives the level.
//   - files: files.include globs minus files.exclude; attributed to the container of a process
//     holding the file open for writing (/proc/*/fd scan), else to the node (NodeID, "").
//
// Source labels follow coroot-node-agent: "stdout/stderr" for container output, "journald",
// and a plain file's path.
//
// # Tailing
//
// A file is identified by (device, inode), a hash of its first 512 bytes and the last bytes
// read before the offset. A path that names another file (rename rotation, re-creation) or
// vanishes: the old file is drained and read for rotation_grace more, the new one read from its
// first line. A file that shrinks or no longer holds what was read where it was read
// (copytruncate, by a writer with or without O_APPEND): what had not been read is finished from
// the rotated copy beside it (app.log.1, app.log-20240101, …) that holds it, then the file is
// read from 0. When a path rotated more than once between two polls, the rotated files that
// appeared beside it since (named with a number or a date) are read whole, oldest first.
// Lines longer than max_line_length are cut (counted in Stats.Truncated); invalid UTF-8 becomes
// U+FFFD and control characters spaces; a line of binary data is no message (counted in
// Stats.BinaryLines). Without checkpoints, files present at start are read from their end and
// files appearing later from their first line. With a CheckpointStore the offset after the last
// whole message and the journald cursor are saved when Reader.Checkpoint asks (it pauses the
// sources, so Patterns.Snapshot then describes the same lines) and at Shutdown, and a restart
// resumes there — also through a rotation that happened while the agent was down; with
// Patterns.Restore, the counts continue where they stopped.
package logs
