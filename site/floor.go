package site

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// floorAhead is how far (in version units, microseconds) a raised floor
// runs ahead of the version that raised it: versions given out within that
// much of it need no new fsync, so a steady flow of changes costs at most an
// fsync a second. It is kept short because a process that starts takes its
// versions from above the floor, so they run up to floorAhead ahead of the
// clock for a moment.
const floorAhead = 1_000_000

// versionFloor keeps, in a small file beside the outbox that is fsynced
// before it is relied on, a version at least as high as every version the
// writer has given out. The outbox commits without waiting for an fsync: a
// power loss can undo its last commits, item states and versions included.
// If the clock was also set back, versions taken from it could then fall
// below one the receiver already holds, and the receiver would drop the
// newer state as older. Versions at least one above the floor read at start
// never do.
type versionFloor struct {
	path  string
	start int64 // the floor when the writer started: versions stay above it

	mu      sync.Mutex
	durable int64 // what the file holds for sure (fsynced)
}

// openFloor reads the floor of the outbox at outboxPath ("" for tests: no
// file, a floor of 0 that is never written).
func openFloor(outboxPath string) (*versionFloor, error) {
	if outboxPath == "" {
		return &versionFloor{}, nil
	}
	f := &versionFloor{path: outboxPath + ".version-floor"}
	v, err := f.read()
	if err != nil {
		return nil, err
	}
	f.start, f.durable = v, v
	return f, nil
}

// read returns the floor in the file, 0 when there is none yet.
func (f *versionFloor) read() (int64, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the version floor: %w", err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("version floor %s is not a number: remove it, erpsync writes it again", f.path)
	}
	return v, nil
}

// cover makes sure the file holds a floor at least v, before a version v is
// stored and so before it can reach the receiver. It writes (and fsyncs)
// only when v passes what the file holds, and then runs floorAhead ahead.
// Another process writing the same outbox (resync) takes the same lock and
// never lowers the floor.
func (f *versionFloor) cover(v int64) error {
	if f.path == "" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if v <= f.durable {
		return nil
	}
	lock, err := os.OpenFile(f.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("version floor: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("version floor: lock: %w", err)
	}
	cur, err := f.read()
	if err != nil {
		return err
	}
	next := max(cur, v+floorAhead)
	if next > cur {
		if err := writeSynced(f.path, strconv.FormatInt(next, 10)+"\n"); err != nil {
			return fmt.Errorf("version floor: %w", err)
		}
	}
	f.durable = next
	return nil
}

// writeSynced replaces path with content durably: a temporary file, fsync,
// rename, fsync of the directory.
func writeSynced(path, content string) error {
	tmp := path + ".tmp"
	w, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := w.WriteString(content); err != nil {
		w.Close()
		return err
	}
	if err := w.Sync(); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
