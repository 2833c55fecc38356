package config

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls reload whenever the settings file at path is written, replaced
// (editors save by rename) or recreated after removal, and its content
// differs from what it last read. It watches the directory, not the file, so
// it survives all three; bursts of events within debounce are one reload. It
// returns nil when ctx is done, and an error when the file cannot be watched.
func Watch(ctx context.Context, path string, debounce time.Duration, reload func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch settings %s: %w", path, err)
	}
	defer w.Close()
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("watch settings %s: %w", path, err)
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("watch settings directory %s: %w", filepath.Dir(abs), err)
	}
	last, _ := os.ReadFile(abs) // the settings in force were read from this
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(ev.Name) != abs || ev.Op == fsnotify.Chmod {
				continue
			}
			if timer != nil {
				timer.Stop()
			}
			timer = time.AfterFunc(debounce, func() {
				select {
				case fire <- struct{}{}:
				default:
				}
			})
		case <-fire:
			b, err := os.ReadFile(abs)
			if err != nil || bytes.Equal(b, last) {
				continue // removed (wait for its return) or unchanged
			}
			last = b
			reload()
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			return fmt.Errorf("watch settings %s: %w", path, err)
		}
	}
}
