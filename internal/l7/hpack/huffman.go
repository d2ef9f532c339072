package hpack

//go:generate go run gen_huffman.go

// The HPACK code is canonical: the codes of one length are consecutive integers, ordered by
// symbol. Decoding looks the top 8 bits up in a table for the short codes and walks the
// lengths for the others.

type huffmanLength struct {
	first, count uint32
	syms         []uint8 // symbols with this length, in code order
}

var (
	huffmanShort   [256]uint16 // top 8 bits → symbol<<4 | length, for codes of ≤ 8 bits; 0 = none
	huffmanLengths [31]huffmanLength
)

func init() {
	for l := 5; l <= 30; l++ {
		hl := &huffmanLengths[l]
		for s := 0; s < 256; s++ {
			if int(huffmanBits[s]) != l {
				continue
			}
			if len(hl.syms) == 0 {
				hl.first = huffmanCode[s]
			} else if huffmanCode[s] != hl.first+uint32(len(hl.syms)) {
				panic("hpack: Huffman code is not canonical")
			}
			hl.syms = append(hl.syms, uint8(s))
		}
		hl.count = uint32(len(hl.syms))
	}
	for s := 0; s < 256; s++ {
		l := huffmanBits[s]
		if l > 8 {
			continue
		}
		base := huffmanCode[s] << (8 - l)
		for suffix := uint32(0); suffix < 1<<(8-l); suffix++ {
			huffmanShort[base|suffix] = uint16(s)<<4 | uint16(l)
		}
	}
}

// appendHuffman decodes a Huffman-coded string (RFC 7541, section 5.2) onto dst.
func appendHuffman(dst, src []byte) ([]byte, error) {
	var acc uint64 // pending bits, the oldest in the highest position of the low nbits
	var nbits uint
	for _, b := range src {
		acc = acc<<8 | uint64(b)
		nbits += 8
		for nbits >= 8 {
			top := (acc >> (nbits - 8)) & 0xff
			if e := huffmanShort[top]; e != 0 {
				dst = append(dst, byte(e>>4))
				nbits -= uint(e & 0xf)
				continue
			}
			sym, l, ok := huffmanLong(acc, nbits)
			if !ok {
				if nbits >= 30 {
					return dst, ErrHuffman // no code matches 30 bits: EOS or garbage
				}
				break // wait for more bits
			}
			dst = append(dst, sym)
			nbits -= l
		}
		acc &= 1<<nbits - 1
	}
	// The last bits: short codes that need fewer than 8 bits, then the padding.
	for nbits >= 5 {
		sym, l, ok := huffmanLong(acc, nbits)
		if !ok {
			break
		}
		dst = append(dst, sym)
		nbits -= l
		acc &= 1<<nbits - 1
	}
	if nbits > 7 || acc != 1<<nbits-1 {
		return dst, ErrHuffman // padding must be fewer than 8 one bits
	}
	return dst, nil
}

// huffmanLong finds the code at the top of the nbits pending bits by walking the lengths.
func huffmanLong(acc uint64, nbits uint) (uint8, uint, bool) {
	for l := uint(5); l <= 30 && l <= nbits; l++ {
		hl := &huffmanLengths[l]
		if hl.count == 0 {
			continue
		}
		code := uint32((acc >> (nbits - l)) & (1<<l - 1))
		if code >= hl.first && code < hl.first+hl.count {
			return hl.syms[code-hl.first], l, true
		}
	}
	return 0, 0, false
}
