package main

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

// syncLog is the sync log: one line per event in log.file, and the same lines
// on stderr, which systemd sends to the journal. Its level can change and its
// file can be reopened (after logrotate moved it) while the daemon runs.
type syncLog struct {
	*slog.Logger
	level *slog.LevelVar
	file  *reopenFile // nil when logging to stderr only
}

// openSyncLog opens the sync log as cfg says: cfg.File (created 0640 with
// its directory when missing; "" or "-" for none) plus stderr when not nil,
// as text or JSON lines.
func openSyncLog(cfg LogConfig, stderr io.Writer) (*syncLog, error) {
	level, err := parseLevel(cfg.Level)
	if err != nil {
		return nil, err
	}
	l := &syncLog{level: new(slog.LevelVar)}
	l.level.Set(level)
	opts := &slog.HandlerOptions{Level: l.level}
	newHandler := func(w io.Writer) slog.Handler {
		if cfg.Format == "json" {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
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

// openLog is openSyncLog for callers that need only the logger and a Close.
func openLog(cfg LogConfig, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	l, err := openSyncLog(cfg, stderr)
	if err != nil {
		return nil, nil, err
	}
	return l.Logger, l, nil
}

// Close closes the log file.
func (l *syncLog) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.Close()
}

// Reopen opens log.file again, for logrotate's postrotate (SIGHUP).
func (l *syncLog) Reopen() error {
	if l.file == nil {
		return nil
	}
	return l.file.Reopen()
}

// SetLevel changes the level of every line from now on.
func (l *syncLog) SetLevel(s string) error {
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
