package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// ErrLocked is returned, wrapped, by LockForDaemon when another process (or
// another Outbox of this one) holds the outbox's daemon lock.
var ErrLocked = errors.New("outbox: in use by another daemon")

// LockForDaemon takes the outbox's daemon lock: an exclusive, non-blocking
// flock on the file beside it named after it with ".lock" appended, held
// until Close. One daemon delivers from an outbox: a second `erpsync run` on
// the same file fails here, with ErrLocked (wrapped) and an error that names
// the outbox, the process holding it when known, and the fix. The operator's
// commands (resync, status, outbox) do not take the lock: they share the
// file with the daemon safely (see the package documentation).
//
// The kernel releases the lock when the process ends, however it ends
// (kill -9 included), so it never outlives its holder. The lock file stays
// and holds the holder's process id. Calling LockForDaemon again on an
// Outbox that holds the lock does nothing.
func (o *Outbox) LockForDaemon() error {
	o.lockMu.Lock()
	defer o.lockMu.Unlock()
	if o.lock != nil {
		return nil
	}
	path := o.path + ".lock"
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("outbox %s: lock for the daemon: %w (the directory of outbox.path must be writable)", o.path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(string(bytes.TrimSpace(b))); perr == nil && pid > 0 {
				holder = fmt.Sprintf(" (process %d holds %s)", pid, path)
			}
		}
		f.Close()
		return fmt.Errorf("another erpsync run is using outbox %s%s: stop it (systemctl stop erpsync) or give this one its own outbox.path: %w",
			o.path, holder, ErrLocked)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("outbox %s: lock %s for the daemon: %w", o.path, path, err)
	}
	// Who holds it, for the error above in the next one; the lock does not
	// depend on it.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	o.lock = f
	return nil
}

// unlock releases the daemon lock, if held.
func (o *Outbox) unlock() error {
	o.lockMu.Lock()
	defer o.lockMu.Unlock()
	if o.lock == nil {
		return nil
	}
	err := o.lock.Close() // closing the last descriptor releases the flock
	o.lock = nil
	return err
}
