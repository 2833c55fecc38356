// Package binlog tells which schemas (databases) a MariaDB server has written to, by reading its binary log
// files from disk: erpsync runs on the database host and reads the directory of log_bin, so that one write wakes
// only the site whose schema changed.
//
// A Tail follows the files listed in the binary log's index (<base>.index) in order, across rotations, and reads
// only the events written since its last Read. It reports the schema of each table map (row-based logging) and
// the default database of each statement (statement-based logging, and DDL). What it cannot attribute to a
// schema, it reports as Unknown: a statement logged without a default database, a file purged before it was
// read, an encrypted binary log, an incident event.
//
// A statement logged as such (binlog_format STATEMENT, or MIXED when the statement is safe) carries only its
// session's default database: one that writes another schema by a qualified name (USE a; INSERT INTO b.t) is
// reported as a. Row-based logging (binlog_format ROW; MariaDB's default, MIXED, logs most statements as
// statements) names the schema of every row written.
//
// The server writes a transaction to the binary log just before the transaction becomes visible to other
// sessions; a query started the moment Read reports a schema may not see the change yet.
package binlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Changes is what a Read found.
type Changes struct {
	// Schemas are the distinct schemas named by the events read, sorted. A schema may be a system one
	// (mysql, for example); callers filter.
	Schemas []string
	// Unknown is set when something was written whose schema cannot be told (a statement logged without a
	// default database, or marked as not working in it, as CREATE DATABASE is; a binary log file purged or
	// replaced before it was read; an encrypted binary log; an incident event): the caller must treat every
	// schema as changed.
	Unknown bool
}

// Tail follows a MariaDB server's binary log on disk. It is not safe for concurrent use.
type Tail struct {
	dir   string // directory of the binary log files
	index string // path of the index file that lists them

	pos position // the next event to read

	r      reader
	idx    bytes.Buffer        // the index file's bytes, reused
	names  [][]byte            // file names listed in the index (slices of idx), reused
	seen   map[string]struct{} // schemas of the Read under way, reused
	events int64               // events read since Open (for the benchmark)
}

// position is where a Tail is: Read puts it back when it fails.
type position struct {
	file      string      // base name of the file being read
	id        os.FileInfo // that file when last opened (nil before), to notice another file under the same name
	off       int64       // offset of the next event in file; 0 until the magic number has been read
	fmt       format      // the file's format description, valid when haveFmt
	haveFmt   bool        // fmt has been read
	encrypted bool        // the rest of the file is encrypted
}

// Open finds the binary log index in dir (the directory of the server's log_bin files: <base>.000001…,
// <base>.index) and returns a Tail positioned at the end of the newest file the index lists, after its last
// complete event: nothing written before Open is reported. Open reads that file once from its start (its format
// description is there, and events have no back links), so its cost grows with the file's size, at most
// max_binlog_size (1 GiB by default).
func Open(ctx context.Context, dir string) (*Tail, error) {
	index, err := findIndex(dir)
	if err != nil {
		return nil, err
	}
	t := &Tail{
		dir:   filepath.Dir(index),
		index: index,
		r:     reader{buf: make([]byte, bufSize)},
		seen:  make(map[string]struct{}),
	}
	if err := t.readIndex(); err != nil {
		return nil, err
	}
	t.pos = position{file: string(t.names[len(t.names)-1])}
	if _, err := t.Read(ctx); err != nil {
		return nil, err
	}
	t.events = 0
	return t, nil
}

// findIndex returns the path of the one binary log index in dir. Relay log indexes (a replica keeps them in
// the data directory too) are ignored when there are others.
func findIndex(dir string) (string, error) {
	const fix = "erp.watch must name the directory of MariaDB's binary log files " +
		"(the directory part of SELECT @@log_bin_basename), and log_bin must be on"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("binlog: %w: %s", err, fix)
	}
	var all, binlogs []string
	for _, e := range entries {
		if name := e.Name(); !e.IsDir() && strings.HasSuffix(name, ".index") {
			all = append(all, name)
			if !strings.Contains(name, "relay") {
				binlogs = append(binlogs, name)
			}
		}
	}
	if len(binlogs) == 0 {
		binlogs = all
	}
	switch len(binlogs) {
	case 0:
		return "", fmt.Errorf("binlog: no binary log index (<base>.index) in %s: %s", dir, fix)
	case 1:
		return filepath.Join(dir, binlogs[0]), nil
	}
	return "", fmt.Errorf("binlog: %s holds several binary log indexes (%s): %s, and no other server's",
		dir, strings.Join(binlogs, ", "), fix)
}

// Position returns the file (its base name, as SHOW MASTER STATUS names it) and the offset in it of the
// next event Read will read.
func (t *Tail) Position() (file string, offset int64) {
	return t.pos.file, t.pos.off
}

// Read reads every complete event written since the last Read (or Open), across rotations to the files the
// index lists after the current one, and returns the schemas they name. An event the server is still writing
// is left for the next Read. Its cost is proportional to the bytes written since the last Read (and the
// index's size). Rotations are told by the index alone: the server lists a new file only after it has finished
// the one before (with a ROTATE_EVENT, or not at all when it crashed).
//
// On error (a file that is not a binary log or whose event headers are impossible, an I/O error, ctx ending)
// Read returns no Changes and the Tail stays where it was, so the next Read tries the same events again; the
// error names the file and offset. The caller should then treat every schema as changed.
func (t *Tail) Read(ctx context.Context) (Changes, error) {
	saved := t.pos
	ch, err := t.read(ctx)
	if err != nil {
		t.pos = saved
		return Changes{}, err
	}
	return ch, nil
}

func (t *Tail) read(ctx context.Context) (Changes, error) {
	var ch Changes
	clear(t.seen)
	if err := t.readIndex(); err != nil {
		return ch, err
	}
	i := slices.IndexFunc(t.names, func(n []byte) bool { return string(n) == t.pos.file })
	if i < 0 {
		// Purged (or RESET MASTER) before it was read to its end: what it held after our offset, and in the
		// files between it and the next one listed, is lost.
		ch.Unknown = true
		i = t.successor()
		t.pos = position{file: string(t.names[i])}
	}
	for {
		last := i == len(t.names)-1
		if err := t.readFile(ctx, last, &ch); err != nil {
			return ch, err
		}
		if last {
			break
		}
		// The index lists a successor only after the server has finished this file.
		i++
		t.pos = position{file: string(t.names[i])}
	}
	ch.Schemas = t.schemas()
	return ch, nil
}

// schemas returns the schemas seen by the Read under way, sorted; nil when there are none.
func (t *Tail) schemas() []string {
	if len(t.seen) == 0 {
		return nil
	}
	s := make([]string, 0, len(t.seen))
	for name := range t.seen {
		s = append(s, name)
	}
	slices.Sort(s)
	return s
}

// readIndex reads the index file into t.names: the base names of the files it lists, oldest first.
func (t *Tail) readIndex() error {
	f, err := os.Open(t.index)
	if err != nil {
		return fmt.Errorf("binlog: reading the index: %w", err)
	}
	defer f.Close()
	t.idx.Reset()
	if _, err := t.idx.ReadFrom(f); err != nil {
		return fmt.Errorf("binlog: reading the index: %w", err)
	}
	t.names = t.names[:0]
	for line := range bytes.Lines(t.idx.Bytes()) {
		if line[len(line)-1] != '\n' {
			break // the server is appending this name
		}
		line = bytes.TrimSpace(line)
		if i := bytes.LastIndexByte(line, '/'); i >= 0 {
			line = line[i+1:] // the index holds paths; the files are beside it
		}
		if len(line) > 0 {
			t.names = append(t.names, line)
		}
	}
	if len(t.names) == 0 {
		return fmt.Errorf("binlog: the index %s lists no binary log files", t.index)
	}
	return nil
}

// successor returns the index in t.names of the first file numbered after t.pos.file (the oldest still listed
// when the current file was purged), or 0 when there is none (the numbering restarted: RESET MASTER).
func (t *Tail) successor() int {
	cur, ok := fileNumber(t.pos.file)
	if ok {
		for i, n := range t.names {
			if num, ok := fileNumber(string(n)); ok && num > cur {
				return i
			}
		}
	}
	return 0
}

// fileNumber returns the number after the last dot of a binary log file's name.
func fileNumber(name string) (uint64, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	return n, err == nil
}

// readFile reads t.pos.file from t.pos.off to its current end. last says whether it is the newest file listed
// (the server may still write to it); an older one is finished.
func (t *Tail) readFile(ctx context.Context, last bool, ch *Changes) error {
	path := filepath.Join(t.dir, t.pos.file)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		ch.Unknown = true // listed but gone: purged since the index was read, or removed by hand
		return nil
	}
	if err != nil {
		return fmt.Errorf("binlog: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("binlog: %w", err)
	}
	if t.pos.id != nil && !os.SameFile(t.pos.id, fi) || fi.Size() < t.pos.off {
		// Another file under the same name (RESET MASTER), or this one shrank: read it from its start.
		ch.Unknown = true
		t.pos = position{file: t.pos.file}
	}
	t.pos.id = fi
	return t.scan(ctx, path, f, fi.Size(), last, ch)
}

// scan reads the events of a file from t.pos.off up to size, adding what they name to ch and t.seen and moving
// t.pos past each complete event. name is the file's name for errors.
func (t *Tail) scan(ctx context.Context, name string, ra io.ReaderAt, size int64, last bool, ch *Changes) error {
	if t.pos.encrypted {
		if size > t.pos.off {
			ch.Unknown = true
			t.pos.off = size
		}
		return nil
	}
	t.r.reset(ra, size)
	if t.pos.off == 0 {
		if size < int64(len(magic)) {
			ch.Unknown = ch.Unknown || !last
			return nil
		}
		b, err := t.r.at(0, len(magic))
		if err != nil {
			return fmt.Errorf("binlog: reading %s: %w", name, err)
		}
		if !bytes.Equal(b, magic[:]) {
			return fmt.Errorf("binlog: %s is not a binary log file (it does not start with 0xfe 'bin')", name)
		}
		t.pos.off = int64(len(magic))
	}
	for n := 0; size-t.pos.off >= headerLen; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("binlog: reading %s: %w", name, err)
			}
		}
		off := t.pos.off
		b, err := t.r.at(off, headerLen)
		if err != nil {
			return fmt.Errorf("binlog: reading %s at offset %d: %w", name, off, err)
		}
		h := parseHeader(b)
		if h.length < headerLen || h.length > maxEventLen {
			return fmt.Errorf("binlog: %s at offset %d: impossible event length %d (the file is corrupt)", name, off, h.length)
		}
		end := off + int64(h.length)
		if h.nextPos != 0 && h.nextPos != uint32(end) {
			return fmt.Errorf("binlog: %s at offset %d: event of length %d says the next one is at %d (the file is corrupt)",
				name, off, h.length, h.nextPos)
		}
		if end > size {
			break // the server is writing it
		}
		if !t.pos.haveFmt && h.typ != eventFormatDescription {
			return fmt.Errorf("binlog: %s at offset %d: event of type %d before the format description (the file is corrupt)",
				name, off, h.typ)
		}
		switch h.typ {
		case eventFormatDescription:
			if h.length > prefixMax {
				return fmt.Errorf("binlog: %s at offset %d: format description of %d bytes (the file is corrupt)", name, off, h.length)
			}
			ev, err := t.r.at(off, int(h.length))
			if err != nil {
				return fmt.Errorf("binlog: reading %s at offset %d: %w", name, off, err)
			}
			if t.pos.fmt, err = parseFormat(ev); err != nil {
				return fmt.Errorf("binlog: %s at offset %d: %w", name, off, err)
			}
			t.pos.haveFmt = true
		case eventStartEncryption:
			// The events after this one are encrypted: their schemas cannot be told.
			t.pos.encrypted = true
			t.pos.off = end
			if size > end {
				ch.Unknown = true
				t.pos.off = size
			}
			t.events++
			return nil
		case eventQuery, eventQueryCompressed, eventExecuteLoadQuery, eventTableMap, eventIncident:
			ev, err := t.r.at(off, min(int(h.length), prefixMax))
			if err != nil {
				return fmt.Errorf("binlog: reading %s at offset %d: %w", name, off, err)
			}
			schema, unknown, err := decodeEvent(&t.pos.fmt, h, ev)
			if err != nil || unknown {
				ch.Unknown = true // a body that does not fit its lengths: a format this package does not know
			}
			if len(schema) > 0 {
				if _, ok := t.seen[string(schema)]; !ok {
					t.seen[string(schema)] = struct{}{}
				}
			}
		}
		t.pos.off = end
		t.events++
	}
	if !last && t.pos.off < size {
		ch.Unknown = true // a finished file that ends inside an event: the server stopped while writing it
	}
	return nil
}
