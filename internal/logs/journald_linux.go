//go:build cgo && linux

package logs

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/sdjournal"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

const journaldCursorKey = "logs/journald:cursor"

// journaldWait bounds how long the reader blocks in sd_journal_wait, and so how long shutdown
// waits for it.
const journaldWait = 200 * time.Millisecond

// journaldSource reads the systemd journal: entries of systemd units (attributed to the unit,
// or to the registry's container of the sender), and of docker's journald log driver
// (CONTAINER_ID_FULL → the docker container). PRIORITY gives the level.
type journaldSource struct {
	sourceLoop
	cfg    *Config
	lookup ContainerLookup
	filter nameFilter
	sink   Sink
	stats  *Stats
	store  CheckpointStore
	logger *zap.Logger
	// fromHead reads the whole journal when there is no cursor (tests on fixture journals).
	fromHead bool
	// files, when set, reads these journal files instead of a directory (tests).
	files []string

	j *sdjournal.Journal
}

// open opens the journal and positions the reader; errors here mean the source cannot run.
func (s *journaldSource) open(ctx context.Context) error {
	var err error
	switch {
	case len(s.files) > 0:
		s.j, err = sdjournal.NewJournalFromFiles(s.files...)
	case s.cfg.Journald.Directory != "":
		s.j, err = sdjournal.NewJournalFromDir(s.cfg.Journald.Directory)
	default:
		s.j, err = sdjournal.NewJournal()
	}
	if err != nil {
		return fmt.Errorf("opening the systemd journal: %w", err)
	}
	if s.store != nil {
		if b, err := s.store.Get(ctx, journaldCursorKey); err == nil && len(b) > 0 {
			if err := s.j.SeekCursor(string(b)); err == nil {
				// SeekCursor lands on the entry already read; step past it when it still exists.
				if n, err := s.j.Next(); err == nil && n > 0 && s.j.TestCursor(string(b)) != nil {
					_, _ = s.j.Previous()
				}
				return nil
			}
			s.logger.Warn("journald checkpoint cursor not found; reading from the end", zap.String("cursor", string(b)))
		}
	}
	if s.fromHead {
		return s.j.SeekHead()
	}
	if err := s.j.SeekTail(); err != nil {
		return fmt.Errorf("seeking to the journal's end: %w", err)
	}
	// After SeekTail the reader sits past the last entry; Previous puts it on that entry so
	// that Next returns exactly the entries written from now on.
	_, _ = s.j.Previous()
	return nil
}

// run reads entries until ctx is done, saving the cursor then and when Reader.Checkpoint asks.
func (s *journaldSource) run(ctx context.Context) {
	defer close(s.done)
	defer func() { _ = s.j.Close() }()
	var cursor, saved string
	save := func() {
		if s.store != nil && cursor != saved {
			if err := s.store.Set(context.Background(), journaldCursorKey, []byte(cursor)); err == nil {
				saved = cursor
			}
		}
	}
	defer save()
	var msg Message
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-s.pause:
			save()
			req.wait()
		default:
		}
		n, err := s.j.Next()
		if err != nil {
			s.stats.ReadErrors.Add(1)
			s.j.Wait(journaldWait)
			continue
		}
		if n == 0 {
			s.j.Wait(journaldWait)
			continue
		}
		s.stats.JournalEntries.Add(1)
		if s.entry(&msg) {
			s.stats.Messages.Add(1)
			s.sink.Message(&msg)
		}
		if c, err := s.j.GetCursor(); err == nil {
			cursor = c
		}
	}
}

func (s *journaldSource) field(name string) string {
	v, err := s.j.GetDataValue(name)
	if err != nil {
		return ""
	}
	return v
}

// entry fills msg from the current journal entry and reports whether it should be counted.
func (s *journaldSource) entry(msg *Message) bool {
	text := s.field("MESSAGE")
	*msg = Message{Source: SourceJournald}
	if usec, err := s.j.GetRealtimeUsec(); err == nil {
		msg.Time = time.UnixMicro(int64(usec))
	}
	id, names, dockerDriver := s.attribute()
	if !s.filter.allows(names...) {
		return false
	}
	msg.Level = journaldLevel(s.field("PRIORITY"), s.field("_TRANSPORT"), dockerDriver)
	msg.Container = id
	if len(text) > s.cfg.MaxLineLength {
		text = text[:s.cfg.MaxLineLength]
		s.stats.Truncated.Add(1)
	}
	var binary bool
	if msg.Text, binary = messageText([]byte(text)); binary {
		s.stats.BinaryLines.Add(1)
		return false
	}
	return true
}

// attribute decides whose entry this is, to the same ID the registry gives the sender's
// container: a docker container logging through the journald driver; else the container of
// the sender's cgroup (_SYSTEMD_CGROUP, recorded by journald when it received the entry, so
// neither a pid reused since nor a unit's sub-slice misleads it); else the registry's
// container of _PID; else the approximate cgroup of _SYSTEMD_UNIT (unitCgroupPath); else the
// node.
func (s *journaldSource) attribute() (id containers.ID, names []string, dockerDriver bool) {
	runtimeID := s.field("CONTAINER_ID_FULL")
	if runtimeID == "" {
		runtimeID = s.field("CONTAINER_ID")
	}
	if runtimeID != "" {
		name := s.field("CONTAINER_NAME")
		if c, ok := s.lookup.ContainerByRuntimeID(runtimeID); ok {
			return c.ID, []string{c.Name, string(c.ID), name}, true
		}
		id := dockerContainerID(runtimeID)
		return id, []string{name, string(id), runtimeID}, true
	}
	unit := s.field("_SYSTEMD_UNIT")
	if cgroup := s.field("_SYSTEMD_CGROUP"); cgroup != "" {
		id, names := s.containerOfCgroup(cgroup, unit)
		return id, names, false
	}
	if pid, err := strconv.ParseUint(s.field("_PID"), 10, 32); err == nil {
		if c, ok := s.lookup.ContainerByPID(uint32(pid)); ok {
			return c.ID, []string{c.Name, string(c.ID), unit}, false
		}
	}
	if unit != "" {
		id, names := s.containerOfCgroup(unitCgroupPath(unit), unit)
		return id, names, false
	}
	return NodeID, nil, false
}

// containerOfCgroup attributes an entry of a cgroup, returning the names the include/exclude
// globs see.
func (s *journaldSource) containerOfCgroup(cgroup, unit string) (containers.ID, []string) {
	id, c, ok := containerOfCgroup(s.lookup, cgroup, s.cfg.OtherCgroups)
	switch {
	case c != nil:
		return id, []string{c.Name, string(id), unit}
	case ok:
		return id, []string{unit, string(id)}
	case unit != "":
		return NodeID, []string{unit}
	}
	return NodeID, nil
}
