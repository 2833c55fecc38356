// Package synclog is the sync log: one line per event in a file and on stderr
// (the journal under systemd), as text or JSON, with a level that can change
// and a file that can be reopened after logrotate moved it.
package synclog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Options say where the sync log goes.
type Options struct {
	// File is the log file, created 0640 with its directory when missing;
	// "" or "-" for none.
	File string
	// Level is debug, info, warn or error.
	Level string
	// Format is "text" or "json".
	Format string
}

// Log is the sync log: one line per event in Options.File, and the same lines
// on stderr, which systemd sends to the journal. Its level can change and its
// file can be reopened (after logrotate moved it) while the daemon runs.
type Log struct {
	*slog.Logger
	level   *slog.LevelVar
	file    *reopenFile   // nil when logging to stderr only
	writers []*lineWriter // one per destination
}

// Open opens the sync log as opts say: opts.File plus stderr when not nil, as
// text or JSON lines. Errors name the log.file or log.level setting.
func Open(opts Options, stderr io.Writer) (*Log, error) {
	cfg := opts
	level, err := parseLevel(cfg.Level)
	if err != nil {
		return nil, err
	}
	l := &Log{level: new(slog.LevelVar)}
	l.level.Set(level)
	hopts := &slog.HandlerOptions{Level: l.level}
	newHandler := func(dst io.Writer) slog.Handler {
		w := newLineWriter(dst)
		l.writers = append(l.writers, w)
		if cfg.Format == "json" {
			return slog.NewJSONHandler(w, hopts)
		}
		return slog.NewTextHandler(w, hopts)
	}
	var handlers fanout
	if cfg.File != "" && cfg.File != "-" {
		if err := os.MkdirAll(filepath.Dir(cfg.File), 0o750); err != nil {
			return nil, fmt.Errorf("log.file = %q: create its directory: %w", cfg.File, err)
		}
		f := &reopenFile{path: cfg.File}
		if err := f.Reopen(); err != nil {
			return nil, fmt.Errorf("log.file = %q: %w: make the directory writable for the erpsync user or choose another path", cfg.File, err)
		}
		l.file = f
		handlers = append(handlers, newHandler(f))
	}
	if stderr != nil {
		handlers = append(handlers, newHandler(stderr))
	}
	if len(handlers) == 0 {
		l.Logger = slog.New(slog.DiscardHandler)
	} else {
		l.Logger = slog.New(handlers)
	}
	return l, nil
}

// Close writes what is left and closes the log file. Lines logged after it
// are written at once.
func (l *Log) Close() error {
	for _, w := range l.writers {
		w.Close()
	}
	if l.file == nil {
		return nil
	}
	return l.file.Close()
}

// Reopen opens log.file again, for logrotate's postrotate (SIGHUP).
func (l *Log) Reopen() error {
	if l.file == nil {
		return nil
	}
	return l.file.Reopen()
}

// SetLevel changes the level of every line from now on.
func (l *Log) SetLevel(s string) error {
	level, err := parseLevel(s)
	if err != nil {
		return err
	}
	l.level.Set(level)
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log.level = %q is not a level: use debug, info, warn or error", s)
	}
	return l, nil
}

// lineWriter writes log lines to dst on a goroutine of its own, all the lines
// that came in while it wrote the last ones in one write. A line is written as
// soon as that goroutine runs, a few microseconds after it was logged, so
// `tail -f` follows the log as before; but a burst of lines (a bulk change
// logs a line per item and two per request) costs a write per burst instead of
// one per line. A logger never waits for the disk unless maxPendingLog bytes
// are waiting: then it writes them itself.
type lineWriter struct {
	dst  io.Writer
	kick chan struct{} // a line is waiting
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the goroutine is gone

	mu      sync.Mutex
	pending []byte
	spare   []byte // the buffer written last, to fill next
	closed  bool

	writing sync.Mutex // held while writing to dst: lines keep their order
}

// maxPendingLog is how many bytes of lines may wait for the writer.
const maxPendingLog = 256 << 10

func newLineWriter(dst io.Writer) *lineWriter {
	w := &lineWriter{dst: dst, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// Write takes a copy of p (one line, as slog handlers write them).
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.writing.Lock()
		defer w.writing.Unlock()
		return w.dst.Write(p)
	}
	w.pending = append(w.pending, p...)
	full := len(w.pending) >= maxPendingLog
	w.mu.Unlock()
	if full {
		w.flush()
		return len(p), nil
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *lineWriter) run() {
	defer close(w.done)
	for {
		select {
		case <-w.kick:
			w.flush()
		case <-w.stop:
			return
		}
	}
}

// flush writes the lines waiting. A failed write loses them, as a failed
// write of one line did.
func (w *lineWriter) flush() {
	w.writing.Lock()
	defer w.writing.Unlock()
	w.mu.Lock()
	b := w.pending
	if len(b) == 0 {
		w.mu.Unlock()
		return
	}
	w.pending, w.spare = w.spare[:0], nil // never two names for one buffer
	w.mu.Unlock()
	_, _ = w.dst.Write(b)
	if cap(b) > maxPendingLog {
		b = nil // after a burst, let a large buffer go
	}
	w.mu.Lock()
	w.spare = b[:0]
	w.mu.Unlock()
}

// Close writes what is waiting and stops the goroutine; later lines are
// written at once.
func (w *lineWriter) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	w.flush()
}

// reopenFile is an append-only file that can be reopened by path.
type reopenFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	return r.f.Write(p)
}

// Reopen opens the path again (creating it 0640) and closes the old file.
func (r *reopenFile) Reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

func (r *reopenFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// fanout sends every record to each handler.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (f fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
