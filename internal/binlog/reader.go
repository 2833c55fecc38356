package binlog

import (
	"io"
)

// bufSize is the read-ahead of reader: it holds any event prefix decodeEvent needs (prefixMax) and many small
// events at once.
const bufSize = 128 << 10

// reader reads a file through one buffer that it keeps across files and Reads. Skipping an event longer than
// the buffer costs nothing: only the bytes asked for, and what follows them up to the buffer's size, are read.
type reader struct {
	ra    io.ReaderAt
	limit int64  // nothing at or past limit is read
	buf   []byte // len(buf) is the buffer's size
	start int64  // file offset of buf[0]
	n     int    // bytes of buf that hold file data
}

// reset makes r read ra up to limit, forgetting what it buffered before.
func (r *reader) reset(ra io.ReaderAt, limit int64) {
	r.ra, r.limit, r.start, r.n = ra, limit, 0, 0
}

// at returns the n bytes at offset off (n ≤ len(r.buf), off+n ≤ r.limit). The slice is valid until the next
// call. A file that is shorter than limit returns io.ErrUnexpectedEOF.
func (r *reader) at(off int64, n int) ([]byte, error) {
	if off >= r.start && off+int64(n) <= r.start+int64(r.n) {
		i := int(off - r.start)
		return r.buf[i : i+n], nil
	}
	m := min(int64(len(r.buf)), r.limit-off)
	if m < int64(n) || off < 0 {
		return nil, io.ErrUnexpectedEOF
	}
	got, err := r.ra.ReadAt(r.buf[:m], off)
	r.start, r.n = off, got
	if got < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return r.buf[:n], nil
}
