package codepkg

import "encoding/binary"

// Zip record signatures and fixed lengths (APPNOTE.TXT).
const (
	sigCentral     = 0x02014b50
	sigEnd         = 0x06054b50
	sigEnd64       = 0x06064b50
	sigEnd64Loc    = 0x07064b50
	centralLen     = 46
	endLen         = 22
	end64Len       = 56
	end64LocLen    = 20
	zip64ExtraID   = 0x0001
	maxInt64       = 1<<63 - 1
	maxUint32Field = 0xffffffff
)

// countEntries counts the central directory headers that archive/zip's
// NewReader would read from b, stopping once it passes max. It finds the
// central directory the way archive/zip does, so that a zip claiming few
// entries but holding a million tiny headers is refused before archive/zip
// allocates them all. It returns 0 when it cannot tell; the count of the
// parsed zip is checked again afterwards, so this is only a guard of memory.
func countEntries(b []byte, max int) int {
	size := int64(len(b))
	end := int64(-1)
	for _, n := range [2]int64{1024, 65 * 1024} {
		n = min(n, size)
		if p := findEnd(b[size-n:]); p >= 0 {
			end = size - n + int64(p)
			break
		}
		if n == size {
			break
		}
	}
	if end < 0 {
		return 0
	}
	e := b[end:]
	records := binary.LittleEndian.Uint16(e[10:])
	dirSize := uint64(binary.LittleEndian.Uint32(e[12:]))
	dirOff := uint64(binary.LittleEndian.Uint32(e[16:]))
	if records == 0xffff || dirSize == 0xffff || dirOff == maxUint32Field {
		if loc := end - end64LocLen; loc >= 0 {
			l := b[loc:]
			if binary.LittleEndian.Uint32(l) == sigEnd64Loc &&
				binary.LittleEndian.Uint32(l[4:]) == 0 && binary.LittleEndian.Uint32(l[16:]) == 1 {
				p := binary.LittleEndian.Uint64(l[8:])
				if p > uint64(size) || uint64(size)-p < end64Len {
					return 0
				}
				r := b[p:]
				if binary.LittleEndian.Uint32(r) != sigEnd64 {
					return 0
				}
				end = int64(p)
				dirSize = binary.LittleEndian.Uint64(r[40:])
				dirOff = binary.LittleEndian.Uint64(r[48:])
			}
		}
	}
	if dirSize > maxInt64 || dirOff > maxInt64 {
		return 0
	}
	base := end - int64(dirSize) - int64(dirOff)
	if o := base + int64(dirOff); o < 0 || o >= size {
		return 0
	}
	if base > 0 {
		if _, ok := centralHeader(b, int64(dirOff)); ok {
			base = 0
		}
	}
	pos, n := base+int64(dirOff), 0
	for n <= max {
		next, ok := centralHeader(b, pos)
		if !ok {
			break
		}
		pos, n = next, n+1
	}
	return n
}

// findEnd finds the end of central directory record in block as
// archive/zip does: the last signature, whose comment must fit.
func findEnd(block []byte) int {
	for i := len(block) - endLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(block[i:]) == sigEnd {
			n := int(binary.LittleEndian.Uint16(block[i+endLen-2:]))
			if n+endLen+i > len(block) {
				return -1
			}
			return i
		}
	}
	return -1
}

// centralHeader reports whether archive/zip would read a central directory
// header at off, and where the next one starts.
func centralHeader(b []byte, off int64) (int64, bool) {
	if off < 0 || off > int64(len(b)) || int64(len(b))-off < centralLen {
		return 0, false
	}
	h := b[off:]
	if binary.LittleEndian.Uint32(h) != sigCentral {
		return 0, false
	}
	nameLen := int64(binary.LittleEndian.Uint16(h[28:]))
	extraLen := int64(binary.LittleEndian.Uint16(h[30:]))
	commentLen := int64(binary.LittleEndian.Uint16(h[32:]))
	next := off + centralLen + nameLen + extraLen + commentLen
	if next > int64(len(b)) {
		return 0, false
	}
	// archive/zip refuses a header whose maxed-out sizes or offset have
	// no zip64 extra field to replace them.
	needU := binary.LittleEndian.Uint32(h[24:]) == maxUint32Field
	needC := binary.LittleEndian.Uint32(h[20:]) == maxUint32Field
	needOff := binary.LittleEndian.Uint32(h[42:]) == maxUint32Field
	extra := h[centralLen+nameLen : centralLen+nameLen+extraLen]
	for len(extra) >= 4 {
		tag := binary.LittleEndian.Uint16(extra)
		size := int(binary.LittleEndian.Uint16(extra[2:]))
		extra = extra[4:]
		if len(extra) < size {
			break
		}
		field := extra[:size]
		extra = extra[size:]
		if tag != zip64ExtraID {
			continue
		}
		for _, need := range []*bool{&needU, &needC, &needOff} {
			if *need {
				*need = false
				if len(field) < 8 {
					return 0, false
				}
				field = field[8:]
			}
		}
	}
	if needC || needOff {
		return 0, false
	}
	return next, true
}
