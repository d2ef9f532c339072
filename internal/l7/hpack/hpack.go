// Package hpack decodes HTTP/2 header blocks (RFC 7541) without allocating in steady state:
// one Decoder per connection and direction keeps the dynamic table, and every decoded field
// is handed to a callback as byte slices that are valid only during the call. It owns HPACK
// decoding only; it must not know about frames, streams or metrics (internal/l7 does).
//
// A decoder must see every header block its peer's encoder produced, in order: each block
// may insert into the dynamic table, and a block that was missed shifts every later index.
// Decode applies the table updates of a block whatever the callback does with its fields.
package hpack

import (
	"errors"
)

// Errors returned by Decode. After any of them the decoder's table no longer matches the
// encoder's: the caller must Reset it and treat later dynamic references as unknown.
var (
	ErrTruncated    = errors.New("hpack: truncated header block")
	ErrIndex        = errors.New("hpack: invalid table index")
	ErrHuffman      = errors.New("hpack: invalid Huffman code")
	ErrIntOverflow  = errors.New("hpack: integer overflow")
	ErrSizeUpdate   = errors.New("hpack: invalid dynamic table size update")
	ErrStringLength = errors.New("hpack: string longer than the limit")
)

// DefaultTableSize is SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113, section 6.5.2).
const DefaultTableSize = 4096

// MaxTableSizeLimit bounds the dynamic table any decoder accepts, whatever the peer asks for:
// memory per connection stays bounded.
const MaxTableSizeLimit = 1 << 16

// maxStringLength bounds one literal name or value.
const maxStringLength = 1 << 16

type entry struct {
	off, nameLen, valueLen uint32
}

// Decoder holds the HPACK decoding state of one direction of one connection.
type Decoder struct {
	limit uint32 // largest size a table size update may set
	max   uint32 // current maximum size
	size  uint32 // RFC 7541 size of the entries: sum of name+value+32

	// Entries are stored oldest first in buf[start:end]; ents is a ring of their positions.
	buf        []byte
	start, end uint32
	ents       []entry
	head, n    int

	nameBuf, valueBuf []byte // Huffman-decoded or copied strings of the current field
}

// NewDecoder returns a decoder whose table starts at size (normally DefaultTableSize) and
// that accepts size updates up to limit (at most MaxTableSizeLimit).
func NewDecoder(size, limit uint32) *Decoder {
	d := &Decoder{}
	d.Init(size, limit)
	return d
}

// Init (re)initialises d in place, keeping its buffers.
func (d *Decoder) Init(size, limit uint32) {
	if limit > MaxTableSizeLimit {
		limit = MaxTableSizeLimit
	}
	if size > limit {
		size = limit
	}
	d.limit, d.max = limit, size
	d.Reset()
}

// Reset empties the dynamic table (after lost input); the size limits stay.
func (d *Decoder) Reset() {
	d.size, d.start, d.end, d.head, d.n = 0, 0, 0, 0, 0
}

// Len returns the number of entries in the dynamic table.
func (d *Decoder) Len() int { return d.n }

// TableSize returns the RFC 7541 size of the dynamic table and its current maximum.
func (d *Decoder) TableSize() (size, limit uint32) { return d.size, d.max }

// Decode decodes one complete header block (the concatenated fragments of a HEADERS or
// PUSH_PROMISE frame and its CONTINUATION frames), calling emit for each field. The slices
// are valid only during the call. On error the fields decoded before it were emitted and the
// table may be partly updated.
func (d *Decoder) Decode(block []byte, emit func(name, value []byte)) error {
	for len(block) > 0 {
		b := block[0]
		switch {
		case b&0x80 != 0: // indexed field
			idx, rest, err := readInt(block, 7)
			if err != nil {
				return err
			}
			block = rest
			name, value, ok := d.at(idx)
			if !ok {
				return ErrIndex
			}
			emit(name, value)
		case b&0xc0 == 0x40: // literal with incremental indexing
			rest, err := d.literal(block, 6, true, emit)
			if err != nil {
				return err
			}
			block = rest
		case b&0xe0 == 0x20: // dynamic table size update
			// RFC 7541 section 4.2 allows it only at the beginning of a block; peers' decoders
			// (golang.org/x/net among them) accept it anywhere, so an observer must too.
			v, rest, err := readInt(block, 5)
			if err != nil {
				return err
			}
			if v > uint64(d.limit) {
				return ErrSizeUpdate
			}
			block = rest
			d.max = uint32(v)
			d.evict(0)
		default: // literal without indexing (0000) or never indexed (0001)
			rest, err := d.literal(block, 4, false, emit)
			if err != nil {
				return err
			}
			block = rest
		}
	}
	return nil
}

func (d *Decoder) literal(block []byte, prefix uint8, index bool, emit func(name, value []byte)) ([]byte, error) {
	idx, rest, err := readInt(block, prefix)
	if err != nil {
		return nil, err
	}
	var name []byte
	if idx == 0 {
		name, rest, err = d.readString(rest, &d.nameBuf)
		if err != nil {
			return nil, err
		}
	} else {
		n, _, ok := d.at(idx)
		if !ok {
			return nil, ErrIndex
		}
		if idx > uint64(len(staticTable)) {
			// A dynamic name may be evicted or moved while this field is inserted.
			d.nameBuf = append(d.nameBuf[:0], n...)
			n = d.nameBuf
		}
		name = n
	}
	value, rest, err := d.readString(rest, &d.valueBuf)
	if err != nil {
		return nil, err
	}
	emit(name, value)
	if index {
		d.insert(name, value)
	}
	return rest, nil
}

// readString reads a string literal. Huffman strings are decoded into *scratch; raw ones
// are returned in place.
func (d *Decoder) readString(b []byte, scratch *[]byte) ([]byte, []byte, error) {
	if len(b) == 0 {
		return nil, nil, ErrTruncated
	}
	huff := b[0]&0x80 != 0
	n, rest, err := readInt(b, 7)
	if err != nil {
		return nil, nil, err
	}
	if n > maxStringLength {
		return nil, nil, ErrStringLength
	}
	if uint64(len(rest)) < n {
		return nil, nil, ErrTruncated
	}
	s := rest[:n]
	rest = rest[n:]
	if !huff {
		return s, rest, nil
	}
	out, err := appendHuffman((*scratch)[:0], s)
	*scratch = out
	if err != nil {
		return nil, nil, err
	}
	return out, rest, nil
}

// readInt decodes an integer with an n-bit prefix (RFC 7541, section 5.1).
func readInt(b []byte, n uint8) (uint64, []byte, error) {
	if len(b) == 0 {
		return 0, nil, ErrTruncated
	}
	mask := uint64(1)<<n - 1
	v := uint64(b[0]) & mask
	b = b[1:]
	if v < mask {
		return v, b, nil
	}
	var shift uint
	for i, c := range b {
		v += uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, b[i+1:], nil
		}
		shift += 7
		if shift > 28 {
			return 0, nil, ErrIntOverflow
		}
	}
	return 0, nil, ErrTruncated
}

// at returns the field at a 1-based HPACK index: static entries first, then the dynamic
// table newest first.
func (d *Decoder) at(idx uint64) (name, value []byte, ok bool) {
	if idx == 0 {
		return nil, nil, false
	}
	if idx <= uint64(len(staticTable)) {
		e := &staticTable[idx-1]
		return e.name, e.value, true
	}
	i := idx - uint64(len(staticTable)) - 1 // 0 = newest
	if i >= uint64(d.n) {
		return nil, nil, false
	}
	e := d.ents[(d.head+d.n-1-int(i))%len(d.ents)]
	name = d.buf[e.off : e.off+e.nameLen]
	value = d.buf[e.off+e.nameLen : e.off+e.nameLen+e.valueLen]
	return name, value, true
}

// insert adds a field to the dynamic table, evicting the oldest entries as needed.
// name and value must not alias d.buf.
func (d *Decoder) insert(name, value []byte) {
	sz := uint32(len(name)+len(value)) + 32
	if sz > d.max {
		// RFC 7541 section 4.4: an entry larger than the table empties it.
		d.evict(d.max + 1)
		return
	}
	d.evict(sz)
	need := uint32(len(name) + len(value))
	if int(d.end)+int(need) > len(d.buf) {
		d.compact(need)
	}
	off := d.end
	copy(d.buf[off:], name)
	copy(d.buf[off+uint32(len(name)):], value)
	d.end += need
	if d.n == len(d.ents) {
		d.growEntries()
	}
	d.ents[(d.head+d.n)%len(d.ents)] = entry{off: off, nameLen: uint32(len(name)), valueLen: uint32(len(value))}
	d.n++
	d.size += sz
}

// evict removes the oldest entries until an entry of sz more fits under max.
func (d *Decoder) evict(sz uint32) {
	for d.n > 0 && d.size+sz > d.max {
		e := d.ents[d.head]
		d.size -= e.nameLen + e.valueLen + 32
		d.head = (d.head + 1) % len(d.ents)
		d.n--
		if d.n == 0 {
			d.start, d.end = 0, 0
		} else {
			d.start = d.ents[d.head].off
		}
	}
	if d.n == 0 {
		d.head = 0
	}
}

// compact moves the live entries to the front of buf, growing it when the table's maximum
// needs more room than it has (only when the maximum grew: steady state does not allocate).
func (d *Decoder) compact(need uint32) {
	live := d.end - d.start
	want := int(d.max) + int(d.max)/2
	if want < int(live+need) {
		want = int(live + need)
	}
	if len(d.buf) < want {
		nb := make([]byte, want)
		copy(nb, d.buf[d.start:d.end])
		d.buf = nb
	} else {
		copy(d.buf, d.buf[d.start:d.end])
	}
	for i := 0; i < d.n; i++ {
		k := (d.head + i) % len(d.ents)
		d.ents[k].off -= d.start
	}
	d.start, d.end = 0, live
}

func (d *Decoder) growEntries() {
	n := len(d.ents) * 2
	if n == 0 {
		n = 32
	}
	ne := make([]entry, n)
	for i := 0; i < d.n; i++ {
		ne[i] = d.ents[(d.head+i)%len(d.ents)]
	}
	d.ents, d.head = ne, 0
}
