package binlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
)

// postHeaders10_11 is the post-header length table of MariaDB 10.11's format description (event types 1…171),
// as read from a server's binary log.
const postHeaders10_11 = "380d0008" +
	"00120004040404120000e400041a0800" +
	"0000080808020000000a0a0a00000000" +
	"00000a0a0a0000000000000000000000" +
	"00000000000000000000000000000000" +
	"00000000000000000000000000000000" +
	"00000000000000000000000000000000" +
	"00000000000000000000000000000000" +
	"00000000000000000000000000000000" +
	"00000000000000000000000000000000" +
	"00000000000000000000000004130400" +
	"0d0808080a0a0a"

// synth builds a binary log file in memory, laid out as MariaDB 10.11 writes one.
type synth struct {
	b        []byte
	checksum bool
}

func newSynth(tb testing.TB, checksum bool) *synth {
	tb.Helper()
	types, err := hex.DecodeString(postHeaders10_11)
	if err != nil || len(types) != 171 {
		tb.Fatalf("post-header table: %d bytes, %v", len(types), err)
	}
	body := binary.LittleEndian.AppendUint16(nil, 4)
	body = append(body, make([]byte, 50)...)
	copy(body[2:], "10.11.19-MariaDB-log")
	body = binary.LittleEndian.AppendUint32(body, 1700000000)
	body = append(body, headerLen)
	body = append(body, types...)
	alg := byte(0)
	if checksum {
		alg = 1
	}
	body = append(body, alg)
	s := &synth{b: append([]byte(nil), magic[:]...), checksum: checksum}
	s.event(eventFormatDescription, 1, body, true)
	return s
}

// add appends an event of type typ with flags and body (everything after the common header, without the
// checksum).
func (s *synth) add(typ byte, flags uint16, body []byte) *synth {
	return s.event(typ, flags, body, s.checksum)
}

func (s *synth) event(typ byte, flags uint16, body []byte, crc bool) *synth {
	n := headerLen + len(body)
	if crc {
		n += checksumLen
	}
	off := len(s.b)
	s.b = binary.LittleEndian.AppendUint32(s.b, 1700000000)
	s.b = append(s.b, typ)
	s.b = binary.LittleEndian.AppendUint32(s.b, 1)
	s.b = binary.LittleEndian.AppendUint32(s.b, uint32(n))
	s.b = binary.LittleEndian.AppendUint32(s.b, uint32(off+n))
	s.b = binary.LittleEndian.AppendUint16(s.b, flags)
	s.b = append(s.b, body...)
	if crc {
		s.b = binary.LittleEndian.AppendUint32(s.b, crc32.ChecksumIEEE(s.b[off:]))
	}
	return s
}

func (s *synth) query(flags uint16, db, query string) *synth {
	return s.add(eventQuery, flags, queryBody(13, db, query))
}

func (s *synth) tableMap(schema, table string) *synth {
	return s.add(eventTableMap, 0, tableMapBody(schema, table))
}

// gtid appends a GTID event (skipped by length, like every event that names no schema).
func (s *synth) gtid() *synth { return s.add(162, 8, make([]byte, 19)) }

// queryBody is a Query event's body with a post-header of postHeader bytes and a few status variables.
func queryBody(postHeader int, db, query string) []byte {
	status := []byte{0, 0, 0, 0, 0, 1, 0, 0, 0x20, 0x54, 0, 0, 0, 0, 6, 3, 's', 't', 'd'} // flags2, sql_mode, catalog
	b := make([]byte, postHeader)
	binary.LittleEndian.PutUint32(b, 42) // thread id
	b[8] = byte(len(db))
	binary.LittleEndian.PutUint16(b[11:], uint16(len(status)))
	b = append(b, status...)
	b = append(b, db...)
	b = append(b, 0)
	return append(b, query...)
}

// tableMapBody is a TABLE_MAP_EVENT's body for a table of one INT column.
func tableMapBody(schema, table string) []byte {
	b := []byte{0x16, 0, 0, 0, 0, 0, 1, 0} // table id 22, flags
	b = append(b, byte(len(schema)))
	b = append(b, schema...)
	b = append(b, 0, byte(len(table)))
	b = append(b, table...)
	return append(b, 0, 1, 3, 0, 0) // 1 column: INT, no metadata, null bits
}

// scanBytes scans a file held in memory as the newest one, from t's position; t == nil starts a new Tail at
// the file's start.
func scanBytes(t *Tail, data []byte) (*Tail, Changes, error) {
	if t == nil {
		t = &Tail{r: reader{buf: make([]byte, bufSize)}, seen: map[string]struct{}{}, pos: position{file: "synthetic"}}
	}
	clear(t.seen)
	var ch Changes
	err := t.scan(context.Background(), "synthetic", bytes.NewReader(data), int64(len(data)), true, &ch)
	ch.Schemas = t.schemas()
	return t, ch, err
}

// TestDecode: what each kind of event names, with checksums on and off.
func TestDecode(t *testing.T) {
	compressed := func(db string) func(*synth) {
		return func(s *synth) {
			// The query text of a compressed Query event is compressed (zlib, behind a length header).
			s.add(eventQueryCompressed, 0, queryBody(13, db, "\x80\x1cx\x9c\x0b\xf1\xf4\x0b\x76\x0d"))
		}
	}
	tests := []struct {
		name   string
		events func(*synth)
		want   Changes
	}{
		{"nothing", func(*synth) {}, Changes{}},
		{"table maps of two schemas", func(s *synth) {
			s.gtid().tableMap("site_b", "tabItem").tableMap("site_a", "tabBin").tableMap("site_b", "tabBin")
		}, Changes{Schemas: []string{"site_a", "site_b"}}},
		{"query in a database", func(s *synth) { s.gtid().query(0, "site_a", "INSERT INTO t VALUES (1)") },
			Changes{Schemas: []string{"site_a"}}},
		{"query without a database", func(s *synth) { s.gtid().query(0, "", "INSERT INTO site_a.t VALUES (1)") },
			Changes{Unknown: true}},
		{"query whose database is not the one it works on", func(s *synth) {
			s.query(flagSuppressUse, "site_a", "CREATE DATABASE site_b")
		}, Changes{Unknown: true}},
		{"transaction control without a database", func(s *synth) {
			for _, q := range []string{"BEGIN", "COMMIT", "ROLLBACK", "commit", " ROLLBACK TO SAVEPOINT a", "SAVEPOINT a",
				"XA START X'31',X'',1", "XA END X'31',X'',1", "COMMIT;"} {
				s.query(0, "", q)
			}
		}, Changes{}},
		{"COMMIT with the database it was issued in", func(s *synth) { s.query(flagSuppressUse, "site_a", "COMMIT") }, Changes{}},
		{"a word that starts like BEGIN", func(s *synth) { s.query(0, "", "BEGINNING") }, Changes{Unknown: true}},
		{"compressed query in a database", compressed("site_a"), Changes{Schemas: []string{"site_a"}}},
		{"compressed query without a database", compressed(""), Changes{Unknown: true}},
		{"LOAD DATA (Execute_load_query)", func(s *synth) {
			s.add(eventExecuteLoadQuery, 0, queryBody(26, "site_c", "LOAD DATA INFILE 'x' INTO TABLE t"))
		}, Changes{Schemas: []string{"site_c"}}},
		{"incident", func(s *synth) { s.add(eventIncident, 0, []byte{1, 0, 0}) }, Changes{Unknown: true}},
		{"malformed table map", func(s *synth) { s.add(eventTableMap, 0, []byte{1, 0, 0, 0, 0, 0, 0, 0, 9, 'a'}) },
			Changes{Unknown: true}},
		{"malformed query", func(s *synth) { s.add(eventQuery, 0, []byte{0, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0, 0}) },
			Changes{Unknown: true}},
		{"events skipped by length", func(s *synth) {
			s.gtid().add(160, 0, []byte("INSERT INTO x.t VALUES (1)")).tableMap("site_a", "t").
				add(23, 0, make([]byte, 40)).add(16, 0, make([]byte, 8)).add(161, 0, make([]byte, 20))
		}, Changes{Schemas: []string{"site_a"}}},
	}
	for _, tt := range tests {
		for _, checksum := range []bool{true, false} {
			t.Run(tt.name+map[bool]string{true: "/crc32", false: "/no checksum"}[checksum], func(t *testing.T) {
				s := newSynth(t, checksum)
				tt.events(s)
				tail, got, err := scanBytes(nil, s.b)
				if err != nil {
					t.Fatal(err)
				}
				checkChanges(t, "scan", got, tt.want)
				if tail.pos.off != int64(len(s.b)) {
					t.Errorf("position %d after the scan, want the end (%d)", tail.pos.off, len(s.b))
				}
				if tail.pos.fmt.checksum != checksum {
					t.Errorf("format description read as checksum %v, want %v", tail.pos.fmt.checksum, checksum)
				}
			})
		}
	}
}

// TestScanErrors: a file whose event headers cannot be right is an error naming the file and the offset.
func TestScanErrors(t *testing.T) {
	good := newSynth(t, true).gtid().tableMap("site_a", "t").b
	second := int(binary.LittleEndian.Uint32(good[4+9:])) + 4 // offset of the event after the format description
	set32 := func(off int, v uint32) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
	}
	tests := []struct {
		name  string
		spoil func([]byte)
		want  string
	}{
		{"not a binary log", func(b []byte) { b[1] = 'x' }, "not a binary log"},
		{"length shorter than a header", set32(second+9, 5), "offset 256: impossible event length 5"},
		{"length over 1 GiB", set32(second+9, 1<<30+1), "offset 256: impossible event length 1073741825"},
		{"length that disagrees with the next position", set32(second+9, 20), "offset 256: event of length 20 says the next one is at"},
		{"first event is not a format description", func(b []byte) { b[4+4] = 2 }, "offset 4: event of type 2 before the format description"},
		{"format description of another version", func(b []byte) { b[4+headerLen] = 3 }, "offset 4: binary log version 3"},
		{"unknown checksum algorithm", func(b []byte) { b[second-5] = 7 }, "unknown checksum algorithm 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := slices.Clone(good)
			tt.spoil(b)
			_, _, err := scanBytes(nil, b)
			if err == nil || !strings.Contains(err.Error(), "synthetic") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("scan = %v, want an error naming the file and %q", err, tt.want)
			}
		})
	}
}

// TestScanPartial: an event cut short is left for the next scan, which reports it once, whole; wherever the
// cut is.
func TestScanPartial(t *testing.T) {
	s := newSynth(t, true).gtid().tableMap("site_a", "t").add(23, 0, make([]byte, 30)).gtid().tableMap("site_b", "t")
	full := s.b
	fdeEnd := int(binary.LittleEndian.Uint32(full[4+13:]))
	for cut := 0; cut <= len(full); cut++ {
		tail, first, err := scanBytes(nil, full[:cut])
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		at := tail.pos.off
		_, second, err := scanBytes(tail, full)
		if err != nil {
			t.Fatalf("cut at %d, then whole: %v", cut, err)
		}
		both := append(slices.Clone(first.Schemas), second.Schemas...)
		slices.Sort(both)
		if !slices.Equal(both, []string{"site_a", "site_b"}) || first.Unknown || second.Unknown {
			t.Errorf("cut at %d: first scan %+v (stopped at %d), second %+v; want site_a and site_b once each", cut, first, at, second)
		}
		if cut >= fdeEnd && at > int64(cut) || cut >= 4 && cut < fdeEnd && at != 4 {
			t.Errorf("cut at %d: first scan stopped at %d", cut, at)
		}
	}
}

// TestScanEncrypted: after START_ENCRYPTION_EVENT the file cannot be read; whatever is written to it is Unknown.
func TestScanEncrypted(t *testing.T) {
	s := newSynth(t, true).add(eventStartEncryption, 0, make([]byte, 17))
	start := len(s.b)
	tail, ch, err := scanBytes(nil, s.b)
	if err != nil || ch.Unknown || tail.pos.off != int64(start) {
		t.Fatalf("scan of a file with only its header events = %+v, %v (at %d); want nothing, at %d", ch, err, tail.pos.off, start)
	}
	garbage := append(s.b, bytes.Repeat([]byte{0xa5}, 300)...) // encrypted events: their lengths are garbled
	tail, ch, err = scanBytes(tail, garbage)
	if err != nil || !ch.Unknown || tail.pos.off != int64(len(garbage)) {
		t.Errorf("scan of encrypted events = %+v, %v (at %d); want Unknown, at the end (%d)", ch, err, tail.pos.off, len(garbage))
	}
	if _, ch, err = scanBytes(tail, garbage); err != nil || ch.Unknown {
		t.Errorf("scan with nothing new = %+v, %v; want nothing", ch, err)
	}
}

// FuzzScan: any bytes, read whole or in two steps (a writer caught mid-event), give the same result and never
// panic; the position never passes the data's end.
func FuzzScan(f *testing.F) {
	for _, checksum := range []bool{true, false} {
		s := newSynth(f, checksum).gtid().tableMap("site_a", "t").add(23, 0, make([]byte, 30)).add(16, 0, make([]byte, 8))
		s.query(0, "site_b", "INSERT INTO t VALUES (1)").query(0, "", "COMMIT").query(0, "", "DELETE FROM x.t")
		s.add(eventQueryCompressed, 0, queryBody(13, "site_c", "\x80\x10abc"))
		s.add(eventExecuteLoadQuery, 0, queryBody(26, "site_d", "LOAD DATA"))
		f.Add(s.b, uint16(300))
		f.Add(newSynth(f, checksum).add(eventStartEncryption, 0, make([]byte, 17)).add(2, 0, make([]byte, 50)).b, uint16(260))
	}
	f.Add([]byte("\xfebin"), uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		k := int(cut) % (len(data) + 1)
		whole, chWhole, errWhole := scanBytes(nil, data)
		split, ch1, err1 := scanBytes(nil, data[:k])
		var ch2 Changes
		var err2 error
		if err1 == nil {
			split, ch2, err2 = scanBytes(split, data)
		}
		for _, tail := range []*Tail{whole, split} {
			if tail.pos.off < 0 || tail.pos.off > int64(len(data)) {
				t.Fatalf("position %d outside the data (%d bytes)", tail.pos.off, len(data))
			}
		}
		if (errWhole != nil) != (err1 != nil || err2 != nil) {
			t.Fatalf("whole: %v; in two steps (cut at %d): %v, %v", errWhole, k, err1, err2)
		}
		if errWhole != nil {
			return
		}
		both := append(slices.Clone(ch1.Schemas), ch2.Schemas...)
		slices.Sort(both)
		both = slices.Compact(both)
		if whole.pos.off != split.pos.off || !slices.Equal(both, chWhole.Schemas) || chWhole.Unknown != (ch1.Unknown || ch2.Unknown) {
			t.Fatalf("whole: %+v at %d; in two steps (cut at %d): %+v then %+v at %d",
				chWhole, whole.pos.off, k, ch1, ch2, split.pos.off)
		}
		// Nothing complete is left behind.
		if off := whole.pos.off; !whole.pos.encrypted && off >= 4 && int64(len(data))-off >= headerLen {
			if h := parseHeader(data[off:]); int64(h.length) <= int64(len(data))-off {
				t.Fatalf("stopped at %d before a complete event of %d bytes", off, h.length)
			}
		}
	})
}
