package outbox

import (
	"context"
	"database/sql"
	"time"
)

// checkpointEvery is the shortest time between two checkpoints.
const checkpointEvery = 100 * time.Millisecond

// checkpointer copies the write-ahead log into the database file in the
// background. The writing connections do not checkpoint themselves
// (wal_autocheckpoint=0): SQLite would otherwise run the checkpoint, with its
// fsyncs, inside whichever commit crosses 1000 pages, and a single item
// change would then wait tens of milliseconds for it.
//
// After a commit the checkpointer runs a PASSIVE checkpoint on its own
// connection at once, which neither blocks nor waits for readers and
// writers, and then at most every checkpointEvery while commits go on. At
// once, because a checkpoint's fsync and a commit's fsync at the same moment
// slow each other down: a lone change's checkpoint is over long before the
// next change commits, and a bulk change's log is copied in small steps. An
// outbox nothing writes to never checkpoints.
type checkpointer struct {
	db      *sql.DB
	pending chan struct{} // a commit happened since the last checkpoint
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

// committed tells the checkpointer that the log grew.
func (c *checkpointer) committed() {
	select {
	case c.pending <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	timer := time.NewTimer(0)
	<-timer.C
	var last time.Time
	for {
		select {
		case <-stop:
			return
		case <-c.pending:
		}
		if wait := checkpointEvery - time.Since(last); wait > 0 {
			timer.Reset(wait)
			select {
			case <-stop:
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		// A failure (disk full) leaves the log as it is; the next commit
		// tries again, and SQLite checkpoints when the last connection
		// closes.
		ctx, cancel := context.WithTimeout(context.Background(), busyTimeout)
		_, _ = c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		cancel()
		last = time.Now()
	}
}

// close stops the checkpointer and closes its connection.
func (c *checkpointer) close() error {
	c.halt()
	return c.db.Close()
}
