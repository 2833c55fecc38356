package outbox

import (
	"context"
	"database/sql"
	"sync/atomic"
	"time"
)

const (
	// checkpointBytes is about how much the write-ahead log grows before a
	// checkpoint runs while commits go on (SQLite's own autocheckpoint is at
	// 1000 pages, 4 MiB).
	checkpointBytes = 4 << 20
	// checkpointIdle is how long without a commit before the rest of the
	// log is checkpointed.
	checkpointIdle = time.Second
	// commitBytes is what a commit adds to the log at least: a page or so.
	commitBytes = 4 << 10
)

// checkpointer copies the write-ahead log into the database file in the
// background. The writing connections do not checkpoint themselves
// (wal_autocheckpoint=0): SQLite would otherwise run the checkpoint, with its
// fsyncs, inside whichever commit crosses 1000 pages, and a single item
// change would then wait tens of milliseconds for it.
//
// The checkpointer runs a PASSIVE checkpoint on its own connection, which
// neither blocks nor waits for readers and writers, when the log has grown by
// about checkpointBytes (a bulk change), or when no commit came for
// checkpointIdle. A checkpoint's fsyncs slow down the commits around them on a
// busy disk, so single changes a few milliseconds apart must not each bring
// one. The writers estimate the growth (Outbox.committed). An outbox nothing
// writes to never checkpoints.
type checkpointer struct {
	db      *sql.DB
	grown   atomic.Int64  // estimated bytes added to the log since the last checkpoint
	pending chan struct{} // a commit happened since the checkpointer last looked
	stop    chan struct{}
	done    chan struct{}
}

func startCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, pending: make(chan struct{}, 1)}
	c.start()
	return c
}

func (c *checkpointer) start() {
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go c.run(c.stop, c.done)
}

// halt stops the goroutine; start starts it again (tests).
func (c *checkpointer) halt() {
	close(c.stop)
	<-c.done
}

// committed tells the checkpointer that a commit added about n bytes to the
// log.
func (c *checkpointer) committed(n int) {
	c.grown.Add(int64(n) + commitBytes)
	select {
	case c.pending <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	idle := time.NewTimer(checkpointIdle)
	idle.Stop()
	waiting := false // for checkpointIdle without a commit
	for {
		select {
		case <-stop:
			idle.Stop()
			return
		case <-c.pending:
			if c.grown.Load() >= checkpointBytes {
				c.checkpoint()
				continue
			}
			idle.Stop()
			select { // a timer that fired meanwhile
			case <-idle.C:
			default:
			}
			idle.Reset(checkpointIdle)
			waiting = true
		case <-idle.C:
			if waiting {
				waiting = false
				c.checkpoint()
			}
		}
	}
}

func (c *checkpointer) checkpoint() {
	c.grown.Store(0)
	// A failure (disk full) leaves the log as it is; the next commit tries
	// again, and SQLite checkpoints when the last connection closes.
	ctx, cancel := context.WithTimeout(context.Background(), busyTimeout)
	_, _ = c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
	cancel()
}

// close stops the checkpointer and closes its connection.
func (c *checkpointer) close() error {
	c.halt()
	return c.db.Close()
}
