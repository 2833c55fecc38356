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
)

// openLog returns the sync log: one text line per event in cfg.File (created
// 0640 with its directory when missing), and the same lines on stderr, which
// systemd sends to the journal. cfg.File "" or "-" logs to stderr only.
func openLog(cfg LogConfig, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	level, err := parseLevel(cfg.Level)
	if err != nil {
		return nil, nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	handlers := []slog.Handler{}
	var closer io.Closer = io.NopCloser(nil)
	if cfg.File != "" && cfg.File != "-" {
		if err := os.MkdirAll(filepath.Dir(cfg.File), 0o750); err != nil {
			return nil, nil, fmt.Errorf("log.file = %q: create its directory: %w", cfg.File, err)
		}
		f, err := os.OpenFile(cfg.File, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log.file = %q: %w: make the directory writable for the erpsync user or choose another path", cfg.File, err)
		}
		closer = f
		handlers = append(handlers, slog.NewTextHandler(f, opts))
	}
	if stderr != nil {
		handlers = append(handlers, slog.NewTextHandler(stderr, opts))
	}
	if len(handlers) == 0 {
		return slog.New(slog.DiscardHandler), closer, nil
	}
	return slog.New(fanout(handlers)), closer, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log.level = %q is not a level: use debug, info, warn or error", s)
	}
	return l, nil
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
