package binlog

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Event types this package looks into (MariaDB's Log_event_type). Every other type is skipped by its length.
const (
	eventQuery             = 2
	eventFormatDescription = 15
	eventExecuteLoadQuery  = 18 // LOAD DATA in statement format: a Query event with a longer post-header
	eventTableMap          = 19
	eventIncident          = 26  // the server could not log something (LOST_EVENTS)
	eventStartEncryption   = 164 // the rest of the file is encrypted
	eventQueryCompressed   = 165 // a Query event whose query text is compressed; the db is not
)

const (
	headerLen   = 19      // common event header of binlog v4: timestamp, type, server id, length, next position, flags
	maxEventLen = 1 << 30 // longer than any event MariaDB writes (max_allowed_packet is at most 1 GiB)
	checksumLen = 4       // CRC32 at the end of each event when the format description says so

	// fdeFixedLen is what a FORMAT_DESCRIPTION_EVENT holds before its post-header lengths: binlog version (2),
	// server version (50), create timestamp (4), common header length (1).
	fdeFixedLen = 2 + 50 + 4 + 1

	queryPostHeaderMin = 13 // thread id 4, exec time 4, db length 1, error code 2, status vars length 2

	// flagSuppressUse marks a Query event whose db is not the database the statement works on (CREATE or
	// DROP DATABASE, for example).
	flagSuppressUse = 0x8

	// prefixMax is the most of an event decode needs: a longer common header and post-header than any
	// server writes, every status variable, the longest db name, and the start of the query text.
	prefixMax = 255 + 255 + 65535 + 256 + 64
)

// magic starts every binary log file.
var magic = [4]byte{0xfe, 'b', 'i', 'n'}

// header is an event's common header (the fields this package uses).
type header struct {
	typ     byte
	length  uint32 // the whole event: header, body and checksum
	nextPos uint32 // offset of the next event in the file (modulo 2^32), 0 when unknown
	flags   uint16
}

// parseHeader decodes the first headerLen bytes of b.
func parseHeader(b []byte) header {
	_ = b[headerLen-1]
	return header{
		typ:     b[4],
		length:  binary.LittleEndian.Uint32(b[9:13]),
		nextPos: binary.LittleEndian.Uint32(b[13:17]),
		flags:   binary.LittleEndian.Uint16(b[17:19]),
	}
}

// format is what a file's FORMAT_DESCRIPTION_EVENT says about the events that follow it.
type format struct {
	headerLen  int       // common header length of the following events (19)
	checksum   bool      // events end with a CRC32
	nTypes     int       // entries in postHeader
	postHeader [255]byte // post-header length of event type i+1
}

// postHeaderLen is the post-header length of events of type typ: the format description's, or binlog v4's
// when the format description does not list typ.
func (f *format) postHeaderLen(typ byte) int {
	if typ >= 1 && int(typ) <= f.nTypes {
		return int(f.postHeader[typ-1])
	}
	switch typ {
	case eventQuery, eventQueryCompressed:
		return queryPostHeaderMin
	case eventExecuteLoadQuery:
		return queryPostHeaderMin + 13
	case eventTableMap:
		return 8
	}
	return 0
}

// parseFormat decodes a whole FORMAT_DESCRIPTION_EVENT (header included). Its last five bytes are the checksum
// algorithm and a CRC32 field, which a MariaDB format description carries whether or not checksums are on.
func parseFormat(ev []byte) (format, error) {
	var f format
	if len(ev) < headerLen+fdeFixedLen+1+checksumLen {
		return f, fmt.Errorf("format description event of %d bytes is too short", len(ev))
	}
	body := ev[headerLen:]
	if v := binary.LittleEndian.Uint16(body); v != 4 {
		return f, fmt.Errorf("binary log version %d: only version 4 (MariaDB 10 and later) is read", v)
	}
	f.headerLen = int(body[fdeFixedLen-1])
	if f.headerLen < headerLen {
		return f, fmt.Errorf("format description gives an event header length of %d, less than %d", f.headerLen, headerLen)
	}
	switch alg := ev[len(ev)-checksumLen-1]; alg {
	case 0:
	case 1:
		f.checksum = true
	default:
		return f, fmt.Errorf("unknown checksum algorithm %d in the format description", alg)
	}
	types := body[fdeFixedLen : len(body)-checksumLen-1]
	f.nTypes = copy(f.postHeader[:], types)
	return f, nil
}

// errMalformed: an event whose body does not fit its own lengths.
var errMalformed = errors.New("malformed event")

// decodeEvent returns the schema an event names, or unknown when it writes something whose schema cannot be
// told. ev is the event from its header on, cut to at most prefixMax bytes; h is its header. Events of types
// that name no schema return neither. A body that contradicts its own lengths returns errMalformed.
func decodeEvent(f *format, h header, ev []byte) (schema []byte, unknown bool, err error) {
	// end: where the event's data ends within ev (before the checksum).
	end := int(h.length)
	if f.checksum {
		end -= checksumLen
	}
	end = min(end, len(ev))
	switch h.typ {
	case eventQuery, eventQueryCompressed, eventExecuteLoadQuery:
		return decodeQuery(f, h, ev[:max(end, 0)])
	case eventTableMap:
		return decodeTableMap(f, ev[:max(end, 0)])
	case eventIncident:
		return nil, true, nil
	}
	return nil, false, nil
}

// decodeQuery decodes a Query event (or a compressed one, or LOAD DATA's Execute_load_query): its db, the
// session's default database, is the schema unless the event says the statement works elsewhere. A statement
// without one is unknown, unless it is transaction control (BEGIN, COMMIT, XA …), which writes nothing.
//
// Layout after the common header: post-header (thread id 4, exec time 4, db length 1, error code 2, status
// vars length 2, and more for derived events), status vars, db, NUL, query.
func decodeQuery(f *format, h header, ev []byte) ([]byte, bool, error) {
	p, ph := f.headerLen, f.postHeaderLen(h.typ)
	if ph < queryPostHeaderMin || p+ph > len(ev) {
		return nil, false, errMalformed
	}
	dbLen := int(ev[p+8])
	status := int(binary.LittleEndian.Uint16(ev[p+11:]))
	db := p + ph + status
	if db+dbLen+1 > len(ev) || ev[db+dbLen] != 0 {
		return nil, false, errMalformed
	}
	query := ev[db+dbLen+1:]
	if h.typ != eventQueryCompressed && isTransactionControl(query) {
		return nil, false, nil
	}
	if dbLen == 0 || h.flags&flagSuppressUse != 0 {
		return nil, true, nil
	}
	return ev[db : db+dbLen], false, nil
}

// decodeTableMap decodes a TABLE_MAP_EVENT. Layout after the common header: post-header (table id 6 bytes, or
// 4 in old formats, flags 2), schema length 1, schema, NUL, table length 1, table, NUL, columns…
func decodeTableMap(f *format, ev []byte) ([]byte, bool, error) {
	p := f.headerLen + f.postHeaderLen(eventTableMap)
	if p+1 > len(ev) {
		return nil, false, errMalformed
	}
	n := int(ev[p])
	if n == 0 || p+1+n+1 > len(ev) || ev[p+1+n] != 0 {
		return nil, false, errMalformed
	}
	return ev[p+1 : p+1+n], false, nil
}

// isTransactionControl reports whether query is one of the statements MariaDB logs around transactions, which
// change no rows: BEGIN, COMMIT, ROLLBACK (TO SAVEPOINT), SAVEPOINT, XA ….
func isTransactionControl(query []byte) bool {
	i := 0
	for i < len(query) && (query[i] == ' ' || query[i] == '\t' || query[i] == '\n' || query[i] == '\r') {
		i++
	}
	q := query[i:]
	for _, w := range [...]string{"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "XA"} {
		if len(q) < len(w) || !equalFoldASCII(q[:len(w)], w) {
			continue
		}
		if len(q) == len(w) {
			return true
		}
		switch q[len(w)] {
		case ' ', '\t', '\n', '\r', ';', 0:
			return true
		}
	}
	return false
}

// equalFoldASCII reports whether b equals the upper-case ASCII word w, ignoring case.
func equalFoldASCII(b []byte, w string) bool {
	for i := range len(w) {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}
