package taskstats

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Generic-netlink TASKSTATS constants (include/uapi/linux/taskstats.h).
const (
	familyName = "TASKSTATS"

	cmdGet = 1 // TASKSTATS_CMD_GET: user → kernel request and its reply
	cmdNew = 2 // TASKSTATS_CMD_NEW: kernel → user exit notification

	typePID      = 1 // TASKSTATS_TYPE_PID
	typeTGID     = 2 // TASKSTATS_TYPE_TGID
	typeStats    = 3 // TASKSTATS_TYPE_STATS
	typeAggrPID  = 4 // TASKSTATS_TYPE_AGGR_PID: PID + STATS
	typeAggrTGID = 5 // TASKSTATS_TYPE_AGGR_TGID: TGID + STATS

	cmdAttrPID              = 1 // TASKSTATS_CMD_ATTR_PID
	cmdAttrTGID             = 2 // TASKSTATS_CMD_ATTR_TGID
	cmdAttrRegisterCPUMask  = 3 // TASKSTATS_CMD_ATTR_REGISTER_CPUMASK
	cmdAttrDeregisterCPUMsk = 4 // TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK

	nlaTypeMask = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
	nlaHdrLen   = 4
)

// Reply is one decoded TASKSTATS message: the answer to a PID or TGID query, or an exit
// notification. An exit notification always has the exiting task's own record (HasTask); when
// the last thread of a multi-threaded process exits it also carries the thread group's
// accumulated record (HasGroup).
type Reply struct {
	PID     uint32 // TASKSTATS_TYPE_AGGR_PID's PID: the task (thread) id
	Task    Stats
	HasTask bool

	TGID     uint32 // TASKSTATS_TYPE_AGGR_TGID's TGID
	Group    Stats
	HasGroup bool
}

// ErrMalformed wraps every decoding failure of a netlink payload.
var ErrMalformed = errors.New("taskstats: malformed message")

// ParseReply decodes the attributes of a TASKSTATS generic-netlink message (the bytes after
// the genetlink header) into r, which it resets first. Unknown attributes are skipped.
func ParseReply(b []byte, r *Reply) error {
	*r = Reply{}
	var groupStats []byte
	for len(b) > 0 {
		typ, payload, rest, err := nextAttr(b)
		if err != nil {
			return err
		}
		b = rest
		switch typ {
		case typeAggrPID, typeAggrTGID:
			id, stats, err := parseAggr(payload, typ)
			if err != nil {
				return err
			}
			if typ == typeAggrPID {
				r.PID = id
				if err := decodeStatsInto(&r.Task, stats, 0); err != nil {
					return fmt.Errorf("%w: pid %d stats: %w", ErrMalformed, id, err)
				}
				r.HasTask = true
			} else {
				r.TGID = id
				groupStats = stats
				r.HasGroup = true
			}
		}
	}
	if r.HasGroup {
		// The group record of an exit notification has version 0: borrow the task's.
		if err := decodeStatsInto(&r.Group, groupStats, r.Task.Version); err != nil {
			return fmt.Errorf("%w: tgid %d stats: %w", ErrMalformed, r.TGID, err)
		}
	}
	if !r.HasTask && !r.HasGroup {
		return fmt.Errorf("%w: no TASKSTATS_TYPE_AGGR_PID or AGGR_TGID attribute", ErrMalformed)
	}
	return nil
}

// parseAggr decodes the nested PID/TGID + STATS of an AGGR_* attribute.
func parseAggr(b []byte, aggr uint16) (id uint32, stats []byte, err error) {
	wantID := uint16(typePID)
	if aggr == typeAggrTGID {
		wantID = typeTGID
	}
	var haveID bool
	for len(b) > 0 {
		typ, payload, rest, err := nextAttr(b)
		if err != nil {
			return 0, nil, err
		}
		b = rest
		switch typ {
		case wantID:
			if len(payload) < 4 {
				return 0, nil, fmt.Errorf("%w: id attribute of %d bytes", ErrMalformed, len(payload))
			}
			id = binary.NativeEndian.Uint32(payload)
			haveID = true
		case typeStats:
			stats = payload
		}
	}
	if !haveID || stats == nil {
		return 0, nil, fmt.Errorf("%w: aggregate attribute %d without id or stats", ErrMalformed, aggr)
	}
	return id, stats, nil
}

// nextAttr splits the first netlink attribute off b.
func nextAttr(b []byte) (typ uint16, payload, rest []byte, err error) {
	if len(b) < nlaHdrLen {
		return 0, nil, nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b))
	}
	l := int(binary.NativeEndian.Uint16(b))
	if l < nlaHdrLen || l > len(b) {
		return 0, nil, nil, fmt.Errorf("%w: attribute length %d of %d bytes", ErrMalformed, l, len(b))
	}
	typ = binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
	payload = b[nlaHdrLen:l]
	aligned := (l + 3) &^ 3
	if aligned > len(b) {
		aligned = len(b)
	}
	return typ, payload, b[aligned:], nil
}

// appendAttr appends one netlink attribute to b.
func appendAttr(b []byte, typ uint16, payload []byte) []byte {
	l := nlaHdrLen + len(payload)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, payload...)
	for i := l; i%4 != 0; i++ {
		b = append(b, 0)
	}
	return b
}
