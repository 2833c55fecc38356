package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
)

// stmts are the statements the hot paths run, prepared once per Outbox:
// parsing SQL costs more than running these statements. A list of values
// (ids, item codes) is bound as one JSON array and read with json_each, so
// one prepared statement serves any number of values.
type stmts struct {
	// On the write connection.
	insertMessage, insertBody, insertItem, putItem, setCursor *sql.Stmt
	// The same INSERTs for chunkRows[i] rows at once: one statement per
	// chunk instead of one per item (each costs more to run than its row).
	insertItems, putItems [chunks]*sql.Stmt
	// On the bookkeeping connection (o.wm).
	beginAttempt, endAttempts, markDelivered, deliveredItems *sql.Stmt
	markDeliveredMany, deliveredItemsMany                    *sql.Stmt
	claimCheck, markDeliveredManyAs                          *sql.Stmt
	// On the read connections.
	dueProbe, dueAmong, due, nextAttempt, nextDue, messagesByID, itemsByID *sql.Stmt
}

const (
	insertMessageQuery = `INSERT INTO messages
	(delivery_id, body, state, attempts, next_attempt_at, created_at, updated_at, exposure)
	VALUES (?, ?, 'pending', 0, ?, ?, ?, ?)`
	insertBodyQuery = `INSERT INTO message_bodies (message_id, body) VALUES (?, ?)`
	insertItemHead  = `INSERT INTO message_items (message_id, seq, item_code, version, op) VALUES `
	insertItemRow   = `(?, ?, ?, ?, ?)`
	insertItemQuery = insertItemHead + insertItemRow
	putItemHead     = `INSERT INTO items (item_code, version, hash, deleted, queued_at, changes_on) VALUES `
	putItemRow      = `(?, ?, ?, ?, ?, ?)`
	putItemTail     = `
	ON CONFLICT (item_code) DO UPDATE SET
		version = excluded.version, hash = excluded.hash, deleted = excluded.deleted, queued_at = excluded.queued_at,
		changes_on = excluded.changes_on
	WHERE excluded.version >= items.version`
	putItemQuery   = putItemHead + putItemRow + putItemTail
	setCursorQuery = `INSERT INTO cursors (source, modified, name, updated_at) VALUES (?, ?, ?, ?)
	ON CONFLICT (source) DO UPDATE SET modified = excluded.modified, name = excluded.name, updated_at = excluded.updated_at`

	// messagesByIDQuery takes a JSON array of ids and whether to read bodies
	// (in message_bodies, or in messages.body for messages stored before
	// schema version 3).
	messagesByIDQuery = `SELECT id, delivery_id, iif(?2, coalesce((SELECT body FROM message_bodies WHERE message_id = messages.id), body), NULL), state, attempts,
	coalesce(last_status, 0), coalesce(last_error, ''), next_attempt_at, created_at, updated_at, delivered_at, exposure
	FROM messages WHERE id IN (SELECT value FROM json_each(?1))`
	itemsByIDQuery = `SELECT message_id, item_code, version, op FROM message_items
	WHERE message_id IN (SELECT value FROM json_each(?)) ORDER BY message_id, seq`
	itemStatesQuery = `SELECT item_code, version, hash, deleted, coalesce(delivered_version, 0), coalesce(delivered_hash, ''), queued_at,
	coalesce(changes_on, '') FROM items WHERE item_code IN (SELECT value FROM json_each(?))`
)

func (o *Outbox) prepareStmts(ctx context.Context) error {
	var err error
	prep := func(db *sql.DB, query string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = db.PrepareContext(ctx, query)
		return s
	}
	o.stmts = stmts{
		insertMessage:  prep(o.w, insertMessageQuery),
		insertBody:     prep(o.w, insertBodyQuery),
		insertItem:     prep(o.w, insertItemQuery),
		putItem:        prep(o.w, putItemQuery),
		setCursor:      prep(o.w, setCursorQuery),
		beginAttempt:   prep(o.wm, beginAttemptQuery),
		endAttempts:    prep(o.wm, endAttemptsQuery),
		markDelivered:  prep(o.wm, markDeliveredQuery),
		deliveredItems: prep(o.wm, deliveredItemsQuery),

		markDeliveredMany:   prep(o.wm, markDeliveredManyQuery),
		deliveredItemsMany:  prep(o.wm, deliveredItemsManyQuery),
		claimCheck:          prep(o.wm, claimCheckQuery),
		markDeliveredManyAs: prep(o.wm, markDeliveredManyAsQuery),
		dueProbe:            prep(o.r, dueProbeQuery),
		dueAmong:            prep(o.r, dueAmongQuery),
		due:                 prep(o.r, dueQuery),
		nextAttempt:         prep(o.r, nextAttemptQuery),
		nextDue:             prep(o.r, nextDueQuery),
		messagesByID:        prep(o.r, messagesByIDQuery),
		itemsByID:           prep(o.r, itemsByIDQuery),
	}
	for i := range chunks {
		o.stmts.insertItems[i] = prep(o.w, multiRow(insertItemHead, insertItemRow, "", chunkRows(i)))
		o.stmts.putItems[i] = prep(o.w, multiRow(putItemHead, putItemRow, putItemTail, chunkRows(i)))
	}
	return err
}

// chunks is how many multi-row INSERTs there are of each kind; chunkRows(i)
// is the row count of the i-th: 64, 16, 4. Statements of 256 rows ran no
// faster (BenchmarkCycle) and each prepared statement's program lives in
// SQLite's C heap. What is left goes one row at a time.
const chunks = 3

func chunkRows(i int) int { return 64 >> (2 * i) }

// multiRow returns head, n times row separated by commas, and tail.
func multiRow(head, row, tail string, n int) string {
	return head + strings.Repeat(row+", ", n-1) + row + tail
}

// execChunks runs the rows in args (width values each) through the chunked
// statements of chunks, then single, and returns the rows affected in all.
func execChunks(ctx context.Context, st *boundStmts, chunked *[chunks]*sql.Stmt, single *sql.Stmt, width int, args []any) (int64, error) {
	var affected int64
	for len(args) > 0 {
		s, n := single, 1
		for i := range chunks {
			if rows := chunkRows(i); len(args) >= rows*width {
				s, n = chunked[i], rows
				break
			}
		}
		res, err := st.get(ctx, s).ExecContext(ctx, args[:n*width]...)
		if err != nil {
			return affected, err
		}
		k, err := res.RowsAffected()
		if err != nil {
			return affected, err
		}
		affected += k
		args = args[n*width:]
	}
	return affected, nil
}

func (s *stmts) close() error {
	var errs []error
	all := []*sql.Stmt{s.insertMessage, s.insertBody, s.insertItem, s.putItem, s.setCursor,
		s.beginAttempt, s.endAttempts, s.markDelivered, s.deliveredItems, s.markDeliveredMany, s.deliveredItemsMany, s.claimCheck, s.markDeliveredManyAs, s.dueProbe, s.dueAmong, s.due, s.nextAttempt, s.nextDue, s.messagesByID, s.itemsByID}
	all = append(append(all, s.insertItems[:]...), s.putItems[:]...)
	for _, st := range all {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// boundStmts binds prepared statements to one transaction, each once.
type boundStmts struct {
	tx    *sql.Tx
	bound map[*sql.Stmt]*sql.Stmt
}

func bind(tx *sql.Tx) *boundStmts { return &boundStmts{tx: tx} }

func (b *boundStmts) get(ctx context.Context, s *sql.Stmt) *sql.Stmt {
	if t, ok := b.bound[s]; ok {
		return t
	}
	if b.bound == nil {
		b.bound = make(map[*sql.Stmt]*sql.Stmt)
	}
	t := b.tx.StmtContext(ctx, s)
	b.bound[s] = t
	return t
}

// jsonList encodes values as a JSON array for json_each.
func jsonList[T any](values []T) (string, error) {
	if values == nil {
		return "[]", nil
	}
	b, err := json.Marshal(values)
	return string(b), err
}
