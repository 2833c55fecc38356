package binlog

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRead: what a real server writes, in each binlog_format, is reported as the schemas written, once.
func TestRead(t *testing.T) {
	srv, db := server(t)
	createSchemas(t, db, "ra", "rb")
	long := strings.Repeat("z", 500)
	tests := []struct {
		name   string
		format string // session binlog_format
		stmts  []string
		want   Changes
	}{
		{"nothing written", "ROW", nil, Changes{}},
		{"a read", "ROW", []string{"SELECT * FROM ra.t"}, Changes{}},
		{"row: two schemas", "ROW", []string{
			"INSERT INTO ra.t (v) VALUES ('x')", "USE rb", "INSERT INTO t (v) VALUES ('y')",
		}, Changes{Schemas: []string{"ra", "rb"}}},
		{"statement: two schemas", "STATEMENT", []string{
			"USE ra", "INSERT INTO t (v) VALUES ('x')", "USE rb", "UPDATE t SET v = 'z' WHERE id = 1",
		}, Changes{Schemas: []string{"ra", "rb"}}},
		{"mixed: two schemas", "MIXED", []string{
			"USE ra", "INSERT INTO t (v) VALUES (UUID())", "USE rb", "DELETE FROM t WHERE id = 0",
		}, Changes{Schemas: []string{"ra", "rb"}}},
		{"row: one transaction in two schemas", "ROW", []string{
			"BEGIN", "INSERT INTO ra.t (v) VALUES ('x')", "INSERT INTO rb.t (v) VALUES ('y')", "COMMIT",
		}, Changes{Schemas: []string{"ra", "rb"}}},
		{"statement: one transaction in two schemas", "STATEMENT", []string{
			"USE ra", "BEGIN", "INSERT INTO t (v) VALUES ('x')", "USE rb", "INSERT INTO t (v) VALUES ('y')", "COMMIT",
		}, Changes{Schemas: []string{"ra", "rb"}}},
		{"row: rolled back", "ROW", []string{
			"BEGIN", "INSERT INTO ra.t (v) VALUES ('x')", "ROLLBACK",
		}, Changes{}},
		{"statement: rolled back", "STATEMENT", []string{
			"USE ra", "BEGIN", "INSERT INTO t (v) VALUES ('x')", "UPDATE t SET v = 'w'", "ROLLBACK",
		}, Changes{}},
		{"row: non-transactional table, no default database", "ROW", []string{
			"INSERT INTO rb.m (v) VALUES ('x')", // logged between BEGIN and COMMIT Query events
		}, Changes{Schemas: []string{"rb"}}},
		{"statement: non-transactional table", "STATEMENT", []string{
			"USE rb", "INSERT INTO m (v) VALUES ('" + long + "')",
		}, Changes{Schemas: []string{"rb"}}},
		{"statement: no default database", "STATEMENT", []string{
			"INSERT INTO ra.t (v) VALUES ('x')",
		}, Changes{Unknown: true}},
		{"DDL in a schema", "ROW", []string{
			"USE ra", "CREATE OR REPLACE TABLE t2 (id INT PRIMARY KEY)",
		}, Changes{Schemas: []string{"ra"}}},
		{"CREATE DATABASE", "ROW", []string{
			"USE ra", "CREATE OR REPLACE DATABASE rnew",
		}, Changes{Unknown: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tail := openTail(t, binlogDir(srv))
			exec(t, db, append([]string{"SET SESSION binlog_format = " + tt.format}, tt.stmts...)...)
			checkChanges(t, "after the writes", read(t, tail), tt.want)
			checkAtEnd(t, tail, db)
			checkChanges(t, "again", read(t, tail), Changes{})
		})
	}
}

// TestReadRotation: a Read follows the server across one or more new files, as FLUSH BINARY LOGS makes them.
func TestReadRotation(t *testing.T) {
	srv, db := server(t)
	createSchemas(t, db, "rot0", "rot1", "rot2", "rot3")
	for _, rotations := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d rotations", rotations), func(t *testing.T) {
			tail := openTail(t, binlogDir(srv))
			startFile, _ := tail.Position()
			var want []string
			for i := range rotations + 1 {
				if i > 0 {
					exec(t, db, "FLUSH BINARY LOGS")
				}
				exec(t, db, fmt.Sprintf("INSERT INTO rot%d.t (v) VALUES ('x')", i))
				want = append(want, fmt.Sprintf("rot%d", i))
			}
			checkChanges(t, "after the writes", read(t, tail), Changes{Schemas: want})
			checkAtEnd(t, tail, db)
			if file, _ := tail.Position(); number(t, file) != number(t, startFile)+uint64(rotations) {
				t.Errorf("Position() in %s, %d files after %s; want %d", file, number(t, file)-number(t, startFile), startFile, rotations)
			}
			// A rotation with nothing written after it.
			exec(t, db, "FLUSH BINARY LOGS")
			checkChanges(t, "after a rotation alone", read(t, tail), Changes{})
			checkAtEnd(t, tail, db)
		})
	}
}

func number(tb testing.TB, file string) uint64 {
	n, ok := fileNumber(file)
	if !ok {
		tb.Fatalf("%s has no number", file)
	}
	return n
}

// TestReadPurged: a file purged before the Tail finished it is Unknown; reading goes on at the oldest file
// still listed.
func TestReadPurged(t *testing.T) {
	srv, db := server(t)
	createSchemas(t, db, "pa", "pb", "pc")
	tail := openTail(t, binlogDir(srv))
	exec(t, db, "INSERT INTO pa.t (v) VALUES ('lost')", "FLUSH BINARY LOGS")
	oldest, _ := masterStatus(t, db)
	exec(t, db, "INSERT INTO pb.t (v) VALUES ('x')", "FLUSH BINARY LOGS", "INSERT INTO pc.t (v) VALUES ('y')")
	purgeTo(t, db, oldest)

	checkChanges(t, "after the purge", read(t, tail), Changes{Schemas: []string{"pb", "pc"}, Unknown: true})
	checkAtEnd(t, tail, db)
	exec(t, db, "INSERT INTO pa.t (v) VALUES ('z')")
	checkChanges(t, "next", read(t, tail), Changes{Schemas: []string{"pa"}})
}

// purgeTo purges the files before file. The server keeps a file while its transactions are not yet checkpointed
// (binlog checkpoint, in the background): try until they are gone.
func purgeTo(tb testing.TB, db *sql.DB, file string) {
	tb.Helper()
	ctx := testCtx(tb)
	for {
		if _, err := db.ExecContext(ctx, "PURGE BINARY LOGS TO '"+file+"'"); err != nil {
			tb.Fatal(err)
		}
		var first string
		var size int64
		if err := db.QueryRowContext(ctx, "SHOW BINARY LOGS").Scan(&first, &size); err != nil {
			tb.Fatal(err)
		}
		if first == file {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("PURGE BINARY LOGS TO '%s' left %s", file, first)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestReadChecksum: files written with and without event checksums read alike; the format description says
// which. (A checksum taken for query text would make a COMMIT unknown.)
func TestReadChecksum(t *testing.T) {
	srv, db := server(t)
	createSchemas(t, db, "ca", "cb")
	for _, checksum := range []string{"NONE", "CRC32"} {
		t.Run(checksum, func(t *testing.T) {
			setGlobal(t, db, "binlog_checksum", "'"+checksum+"'") // starts a new file
			tail := openTail(t, binlogDir(srv))
			if tail.pos.fmt.checksum != (checksum == "CRC32") {
				t.Errorf("format description read as checksum %v", tail.pos.fmt.checksum)
			}
			exec(t, db, "INSERT INTO ca.t (v) VALUES ('x')", "INSERT INTO cb.m (v) VALUES ('y')",
				"SET SESSION binlog_format = STATEMENT", "USE cb", "INSERT INTO m (v) VALUES ('z')")
			checkChanges(t, "after the writes", read(t, tail), Changes{Schemas: []string{"ca", "cb"}})
			checkAtEnd(t, tail, db)
		})
	}
}

// TestReadCompressed: with log_bin_compress, Query events (QUERY_COMPRESSED_EVENT) and rows events are
// compressed; the schemas are still told.
func TestReadCompressed(t *testing.T) {
	srv, db := server(t)
	createSchemas(t, db, "za", "zb")
	setGlobal(t, db, "log_bin_compress", "ON")
	setGlobal(t, db, "log_bin_compress_min_len", "10")
	tail := openTail(t, binlogDir(srv))
	file, from := tail.Position()
	long := strings.Repeat("compressible ", 40)
	exec(t, db, "INSERT INTO za.t (v) VALUES ('"+long+"')",
		"SET SESSION binlog_format = STATEMENT", "USE zb", "INSERT INTO t (v) VALUES ('"+long+"')")
	checkChanges(t, "compressed events", read(t, tail), Changes{Schemas: []string{"za", "zb"}})
	checkAtEnd(t, tail, db)
	types := eventTypes(t, filepath.Join(binlogDir(srv), file), from)
	// 166 and 169: WRITE_ROWS_COMPRESSED_EVENT_V1 and WRITE_ROWS_COMPRESSED_EVENT.
	if !slices.Contains(types, eventQueryCompressed) || !slices.Contains(types, 166) && !slices.Contains(types, 169) {
		t.Errorf("event types written: %v; want a compressed query (165) and compressed rows (166 or 169)", types)
	}

	exec(t, db, "SET SESSION binlog_format = STATEMENT", "INSERT INTO zb.t (v) VALUES ('"+long+"')")
	checkChanges(t, "a compressed query without a default database", read(t, tail), Changes{Unknown: true})
}

// eventTypes lists the types of the events in a file from offset from.
func eventTypes(tb testing.TB, path string, from int64) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var types []byte
	for off := from; off+headerLen <= int64(len(b)); {
		h := parseHeader(b[off:])
		types = append(types, h.typ)
		off += int64(h.length)
	}
	return types
}

// copyBinlog makes a directory holding the server's current binary log file, cut at offset n, and an index
// listing it; it returns the directory and the whole file's bytes.
func copyBinlog(t *testing.T, srv string, db *sql.DB, n int64) (dir string, whole []byte) {
	t.Helper()
	file, _ := masterStatus(t, db)
	whole, err := os.ReadFile(filepath.Join(srv, file))
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, file), whole[:n], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mariadb-bin.index"), []byte("./"+file+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, whole
}

// appendFile appends b to the one binary log file in dir.
func appendFile(t *testing.T, dir, file string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestReadPartialEvent: an event the server has only begun to write is not consumed; once whole, it is reported,
// once. The server's file is copied and cut inside the second transaction's events.
func TestReadPartialEvent(t *testing.T) {
	srv, db := server(t)
	createSchemas(t, db, "xa", "xb")
	exec(t, db, "FLUSH BINARY LOGS")
	file, start := masterStatus(t, db)
	exec(t, db, "INSERT INTO xa.t (v) VALUES ('x')")
	_, mid := masterStatus(t, db)
	exec(t, db, "INSERT INTO xb.t (v) VALUES ('y')")
	_, end := masterStatus(t, db)

	// The second transaction's table map: where it starts and ends.
	types := eventTypes(t, filepath.Join(binlogDir(srv), file), mid)
	var mapStart, mapEnd int64
	b, err := os.ReadFile(filepath.Join(binlogDir(srv), file))
	if err != nil {
		t.Fatal(err)
	}
	for off, i := mid, 0; i < len(types); i++ {
		h := parseHeader(b[off:])
		if h.typ == eventTableMap {
			mapStart, mapEnd = off, off+int64(h.length)
			break
		}
		off += int64(h.length)
	}
	if mapStart == 0 {
		t.Fatalf("no table map after %d: %v", mid, types)
	}

	for _, cut := range []struct {
		name          string
		at            int64
		stop          int64    // where the Read after the cut stops: the start of the event cut
		first, second []string // schemas reported by the Read after the cut and the Read after the rest
	}{
		{"inside an event header", mapStart + 7, mapStart, []string{"xa"}, []string{"xb"}},
		{"inside the table map's body", mapStart + 25, mapStart, []string{"xa"}, []string{"xb"}},
		{"inside the checksum", mapEnd - 2, mapStart, []string{"xa"}, []string{"xb"}},
		{"inside the rows event after the table map", mapEnd + 3, mapEnd, []string{"xa", "xb"}, nil},
	} {
		t.Run(cut.name, func(t *testing.T) {
			dir, whole := copyBinlog(t, binlogDir(srv), db, start)
			tail := openTail(t, dir)
			if f, off := tail.Position(); f != file || off != start {
				t.Fatalf("Open at %s:%d, want %s:%d", f, off, file, start)
			}
			appendFile(t, dir, file, whole[start:cut.at])
			checkChanges(t, "cut", read(t, tail), Changes{Schemas: cut.first})
			if _, off := tail.Position(); off != cut.stop {
				t.Errorf("after the cut at %d, Position() = %d; want %d, the start of the event cut", cut.at, off, cut.stop)
			}
			appendFile(t, dir, file, whole[cut.at:end])
			checkChanges(t, "the rest", read(t, tail), Changes{Schemas: cut.second})
			if _, off := tail.Position(); off != end {
				t.Errorf("Position() = %d, want the end %d", off, end)
			}
			checkChanges(t, "again", read(t, tail), Changes{})
		})
	}
}

// TestReadCorrupt: an impossible event length is an error naming the file and offset, and the Tail stays where
// it was before the Read, though the Read got past a good transaction first.
func TestReadCorrupt(t *testing.T) {
	srv, db := server(t)
	createSchemas(t, db, "ka")
	exec(t, db, "FLUSH BINARY LOGS")
	file, start := masterStatus(t, db)
	exec(t, db, "INSERT INTO ka.t (v) VALUES ('x')")
	_, mid := masterStatus(t, db)
	exec(t, db, "INSERT INTO ka.t (v) VALUES ('y')")
	_, end := masterStatus(t, db)
	for _, length := range []uint32{0, 18, 1<<30 + 1, 0xffffffff, 100} {
		t.Run(fmt.Sprint(length), func(t *testing.T) {
			dir, whole := copyBinlog(t, binlogDir(srv), db, start)
			tail := openTail(t, dir)
			events := slices.Clone(whole[start:end])
			binary.LittleEndian.PutUint32(events[mid-start+9:], length)
			appendFile(t, dir, file, events)
			_, err := tail.Read(testCtx(t))
			want := fmt.Sprintf("%s at offset %d", filepath.Join(dir, file), mid)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Read = %v; want an error naming %q", err, want)
			}
			if f, off := tail.Position(); f != file || off != start {
				t.Errorf("Position() = %s:%d after the error, want %s:%d", f, off, file, start)
			}
		})
	}
}

// TestOpenErrors: a directory without a binary log index is an error that says what erp.watch should name.
func TestOpenErrors(t *testing.T) {
	twoIndexes := t.TempDir()
	for _, name := range []string{"a-bin.index", "b-bin.index"} {
		if err := os.WriteFile(filepath.Join(twoIndexes, name), []byte("./x.000001\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	emptyIndex := t.TempDir()
	if err := os.WriteFile(filepath.Join(emptyIndex, "mariadb-bin.index"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	for _, tt := range []struct {
		name string
		dir  string
		want []string
	}{
		{"no index", empty, []string{empty, "no binary log index", "erp.watch", "@@log_bin_basename"}},
		{"no directory", filepath.Join(empty, "missing"), []string{filepath.Join(empty, "missing"), "erp.watch"}},
		{"two indexes", twoIndexes, []string{twoIndexes, "a-bin.index, b-bin.index", "erp.watch"}},
		{"an empty index", emptyIndex, []string{"mariadb-bin.index lists no binary log files"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), tt.dir)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Open = %v; want an error with %q", err, w)
				}
			}
		})
	}
}

// TestReadCanceled: a Read whose context has ended fails and leaves the Tail where it was.
func TestReadCanceled(t *testing.T) {
	srv, db := server(t)
	createSchemas(t, db, "cx")
	tail := openTail(t, binlogDir(srv))
	exec(t, db, "INSERT INTO cx.t (v) VALUES ('x')")
	file, off := tail.Position()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tail.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Read with a canceled context = %v, want context.Canceled", err)
	}
	if f, o := tail.Position(); f != file || o != off {
		t.Errorf("Position() = %s:%d after the failed Read, want %s:%d", f, o, file, off)
	}
	checkChanges(t, "next Read", read(t, tail), Changes{Schemas: []string{"cx"}})
}

// TestReadEncrypted: once a file says its events are encrypted, whatever is written to it is Unknown, and
// reading goes on in the next file.
func TestReadEncrypted(t *testing.T) {
	dir := t.TempDir()
	enc := newSynth(t, true).add(eventStartEncryption, 0, make([]byte, 17))
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("bin.000001", enc.b)
	write("bin.index", []byte("./bin.000001\n"))
	tail := openTail(t, dir)
	checkChanges(t, "nothing written", read(t, tail), Changes{})
	appendFile(t, dir, "bin.000001", []byte(strings.Repeat("\x5a", 100)))
	checkChanges(t, "encrypted events", read(t, tail), Changes{Unknown: true})
	write("bin.000002", newSynth(t, true).gtid().tableMap("site_a", "t").b)
	write("bin.index", []byte("./bin.000001\n./bin.000002\n"))
	checkChanges(t, "the next file", read(t, tail), Changes{Schemas: []string{"site_a"}})
}

// TestReadReset: after RESET MASTER the file the Tail was in is gone and the numbering starts again: Unknown,
// and reading goes on from the new first file.
func TestReadReset(t *testing.T) {
	srv, db := server(t)
	createSchemas(t, db, "reset_a")
	exec(t, db, "FLUSH BINARY LOGS", "FLUSH BINARY LOGS") // so that the Tail is not in file 1 (RESET MASTER makes a new file 1)
	tail := openTail(t, binlogDir(srv))
	exec(t, db, "RESET MASTER", "INSERT INTO reset_a.t (v) VALUES ('x')")
	checkChanges(t, "after RESET MASTER", read(t, tail), Changes{Schemas: []string{"reset_a"}, Unknown: true})
	checkAtEnd(t, tail, db)
}

// TestReadIndexBeingWritten: a name the server is still appending to the index (no newline yet) is not read.
func TestReadIndexBeingWritten(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("bin.000001", newSynth(t, true).b)
	write("bin.index", []byte("./bin.000001\n"))
	tail := openTail(t, dir)
	write("bin.000002", newSynth(t, true).gtid().tableMap("site_a", "t").b)
	write("bin.index", []byte("./bin.000001\n./bin.0000"))
	checkChanges(t, "half a name", read(t, tail), Changes{})
	write("bin.index", []byte("./bin.000001\n./bin.000002\n"))
	checkChanges(t, "the whole name", read(t, tail), Changes{Schemas: []string{"site_a"}})
}
