package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
)

// stmts are the statements the hot paths run, prepared once per Outbox:
// parsing SQL costs more than running these statements. A list of values
// (ids, item codes) is bound as one JSON array and read with json_each, so
// one prepared statement serves any number of values.
type stmts struct {
	// On the write connection.
	insertMessage, insertBody, insertItem, putItem, setCursor *sql.Stmt
	// On the bookkeeping connection (o.wm).
	beginAttempt, endAttempts, markDelivered, deliveredItems *sql.Stmt
	markDeliveredMany, deliveredItemsMany                    *sql.Stmt
	// On the read connections.
	dueProbe, dueAmong, due, nextAttempt, nextDue, messagesByID, itemsByID *sql.Stmt
}

const (
	insertMessageQuery = `INSERT INTO messages
	(delivery_id, body, state, attempts, next_attempt_at, created_at, updated_at, exposure)
	VALUES (?, ?, 'pending', 0, ?, ?, ?, ?)`
	insertBodyQuery = `INSERT INTO message_bodies (message_id, body) VALUES (?, ?)`
	insertItemQuery = `INSERT INTO message_items (message_id, seq, item_code, version, op) VALUES (?, ?, ?, ?, ?)`
	putItemQuery    = `INSERT INTO items (item_code, version, hash, deleted, queued_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (item_code) DO UPDATE SET
		version = excluded.version, hash = excluded.hash, deleted = excluded.deleted, queued_at = excluded.queued_at
	WHERE excluded.version >= items.version`
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
	itemStatesQuery = `SELECT item_code, version, hash, deleted, coalesce(delivered_version, 0), coalesce(delivered_hash, '')
	FROM items WHERE item_code IN (SELECT value FROM json_each(?))`
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

		markDeliveredMany:  prep(o.wm, markDeliveredManyQuery),
		deliveredItemsMany: prep(o.wm, deliveredItemsManyQuery),
		dueProbe:           prep(o.r, dueProbeQuery),
		dueAmong:           prep(o.r, dueAmongQuery),
		due:                prep(o.r, dueQuery),
		nextAttempt:        prep(o.r, nextAttemptQuery),
		nextDue:            prep(o.r, nextDueQuery),
		messagesByID:       prep(o.r, messagesByIDQuery),
		itemsByID:          prep(o.r, itemsByIDQuery),
	}
	return err
}

func (s *stmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.insertMessage, s.insertBody, s.insertItem, s.putItem, s.setCursor,
		s.beginAttempt, s.endAttempts, s.markDelivered, s.deliveredItems, s.markDeliveredMany, s.deliveredItemsMany, s.dueProbe, s.dueAmong, s.due, s.nextAttempt, s.nextDue, s.messagesByID, s.itemsByID} {
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
