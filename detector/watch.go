package detector

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// burstFactor bounds how long a continuous stream of commits can hold a wake-up
// back: a burst is cut after burstFactor debounce intervals, so under constant
// load the detector still wakes every burstFactor×debounce (50ms at the default
// 5ms) instead of waiting for a quiet moment that never comes.
const burstFactor = 10

// Watch watches dir (the binary log's directory) with fsnotify and calls wake after each burst of writes, at most once per
// debounce interval, until ctx ends. It survives the binlog rotating to a new file (new files in dir are seen because the
// directory is watched). It returns an error at once if dir cannot be watched (missing, unreadable) naming the path and the fix.
//
// Only writes to files named like binary logs count (IsBinlogName: "<base>.NNNNNN", the suffix MariaDB and MySQL give
// every binary and relay log); InnoDB's redo log and tablespaces, Aria's logs and the binlog index, which may share the
// directory and are written in the background, are ignored, so an idle server causes no wake-ups.
//
// A burst ends when dir has been quiet for debounce, and is cut after 10×debounce when writes never pause; then wake is
// called once. The delay matters beyond saving queries: the server writes a transaction to the binary log just before the
// transaction becomes visible to other sessions, so a poll started at the very first write could miss it (the next poll
// or wake-up would catch it). With debounce 0 every write calls wake at once. wake is called from Watch's goroutine and
// should not block (a non-blocking send on a channel of capacity 1 coalesces wake-ups that arrive during a poll).
//
// Watch returns nil when ctx ends, and an error if dir is removed or renamed while watched or the kernel reports a
// failure; polling is unaffected by either.
func Watch(ctx context.Context, dir string, debounce time.Duration, wake func()) error {
	if _, err := CheckWatchDir(dir); err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return watchError(dir, err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return watchError(dir, err)
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var pending bool    // writes seen that wake has not yet been called for
	var first time.Time // when the first of them was seen
	maxWait := burstFactor * debounce
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Name == dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				return fmt.Errorf("erp.watch = %q: the directory was removed or renamed; changes are found by polling only "+
					"until erpsync restarts: set erp.watch to the directory of the binary log (the directory part of SELECT @@log_bin_basename)", dir)
			}
			if !ev.Has(fsnotify.Write|fsnotify.Create) || !IsBinlogName(filepath.Base(ev.Name)) {
				continue
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				return fmt.Errorf("erp.watch = %q: %w; changes are found by polling only until erpsync restarts", dir, err)
			}
			// The kernel dropped events: some were surely commits.
		case <-timer.C:
			pending = false
			wake()
			continue
		}
		// A write to the binary log.
		if debounce <= 0 {
			wake()
			continue
		}
		now := time.Now()
		if !pending {
			pending, first = true, now
		}
		timer.Reset(max(min(debounce, first.Add(maxWait).Sub(now)), 0))
	}
}

// IsBinlogName reports whether a file name looks like a binary (or relay) log
// file: a base name, a dot and at least six digits ("mariadb-bin.000042",
// "binlog.001337"). Aria's logs ("aria_log.00000001") are not binary logs.
func IsBinlogName(name string) bool {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || len(name)-i-1 < 6 || strings.HasPrefix(name, "aria_log.") {
		return false
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// CheckWatchDir checks that dir is a directory erpsync can watch and returns
// the names of the binary log files in it (none means log_bin is off, or dir
// is not where the server writes them). An error names the path and the fix.
// `erpsync check` can use it to say whether the binary log is on and readable.
func CheckWatchDir(dir string) (binlogs []string, err error) {
	if dir == "" {
		return nil, errors.New(`erp.watch is empty: set it to the directory of the database's binary log ` +
			`(the directory part of SELECT @@log_bin_basename), or leave it "" to poll only`)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, watchError(dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("erp.watch = %q is not a directory: set it to the directory that holds the binary log files "+
			"(the directory part of SELECT @@log_bin_basename), not to a file", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, watchError(dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() && IsBinlogName(e.Name()) {
			binlogs = append(binlogs, e.Name())
		}
	}
	return binlogs, nil
}

// watchError turns an error from stat, readdir or inotify into one that names
// dir and says what to change.
func watchError(dir string, err error) error {
	const fix = `the directory part of SELECT @@log_bin_basename; or set erp.watch = "" to poll only`
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("erp.watch = %q: no such directory: set it to the directory of the database's binary log (%s)", dir, fix)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("erp.watch = %q: permission denied: the user erpsync runs as must be able to read the directory "+
			"(for example `usermod -aG mysql erpsync` and `chmod g+rx %s`), or set erp.watch = \"\" to poll only", dir, dir)
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("erp.watch = %q: the inotify watch limit is reached: raise it (sysctl fs.inotify.max_user_watches=65536) "+
			"or set erp.watch = \"\" to poll only", dir)
	case errors.Is(err, syscall.EMFILE):
		return fmt.Errorf("erp.watch = %q: too many inotify instances: raise the limit (sysctl fs.inotify.max_user_instances=1024) "+
			"or set erp.watch = \"\" to poll only", dir)
	}
	return fmt.Errorf("erp.watch = %q: cannot watch: %w (set it to %s)", dir, err, fix)
}
