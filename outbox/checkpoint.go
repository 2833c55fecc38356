package outbox

import (
	"context"
	"database/sql"
	"time"
)

// checkpointDelay is how long the checkpointer lets commits accumulate in
// the write-ahead log before it copies them into the database file. Short, so
// that each checkpoint stays small: a checkpoint of a whole second of a bulk
// change (20 MB) makes its fsync, and the fsync of a commit at the same
// moment, take 100 ms and more on a busy disk.
const checkpointDelay = 100 * time.Millisecond

// checkpointer copies the write-ahead log into the database file in the
// background. The writing connections do not checkpoint themselves
// (wal_autocheckpoint=0): SQLite would otherwise run the checkpoint, with its
// fsyncs, inside whichever commit crosses 1000 pages, and a single item
// change would then wait tens of milliseconds for it. After a commit, the
// checkpointer waits checkpointDelay and runs a PASSIVE checkpoint on its own
// connection, which neither blocks nor waits for readers and writers. An
// outbox nothing writes to never checkpoints.
type checkpointer struct {
	db      *sql.DB
	pending chan struct{} // a commit happened since the last checkpoint
	stop    chan struct{}
	done    chan struct{}
}

func startCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, pending: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// committed tells the checkpointer that the log grew.
func (c *checkpointer) committed() {
	select {
	case c.pending <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	timer := time.NewTimer(0)
	<-timer.C
	for {
		select {
		case <-c.stop:
			return
		case <-c.pending:
		}
		timer.Reset(checkpointDelay)
		select {
		case <-c.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		// A failure (disk full) leaves the log as it is; the next commit
		// tries again, and SQLite checkpoints when the last connection
		// closes.
		ctx, cancel := context.WithTimeout(context.Background(), busyTimeout)
		_, _ = c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		cancel()
	}
}

// close stops the checkpointer and closes its connection.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}
