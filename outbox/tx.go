package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// queryer is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Update runs fn in one write transaction (BEGIN IMMEDIATE) and commits it.
// Everything fn wrote is stored, or nothing is:
//   - When Update returns nil, all of it is stored and survives a crash of the
//     process or the machine (kill -9, power loss).
//   - When fn returns an error (Update returns it unchanged) or panics, when
//     any Tx method failed during fn (even if fn went on and returned nil),
//     or when the transaction cannot begin, nothing fn wrote is stored.
//   - When the commit itself fails, nothing is stored, except after an I/O
//     error from the disk while committing: then the outcome is unknown, but
//     still all or nothing.
//
// Update waits for other writers: in this process for the Outbox's one write
// connection, in other processes up to the busy timeout. fn must not call the
// Outbox's writing methods (MarkDelivered and the like, or Update): they would
// wait for the connection fn holds until ctx ends. The Outbox's reading methods
// work inside fn but do not see fn's writes; read through tx instead. tx must
// not be used after fn returns.
func (o *Outbox) Update(ctx context.Context, fn func(tx *Tx) error) error {
	if err := o.beginWrite(ctx); err != nil {
		return o.errorf(err, "begin write transaction")
	}
	defer o.endWrite()
	sqlTx, err := o.w.BeginTx(ctx, nil)
	if err != nil {
		return o.errorf(err, "begin write transaction")
	}
	tx := &Tx{o: o, tx: sqlTx, st: bind(sqlTx)}
	committed := false
	defer func() {
		if !committed {
			sqlTx.Rollback()
		}
		// Only now may Claim hand out what Waiting returned, and only now
		// do the claims of AddClaimedMessage exist.
		if committed {
			for _, id := range tx.claims {
				o.claimed[id] = true
			}
		}
		if tx.claimsLocked {
			o.claimMu.Unlock()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if tx.err != nil {
		return fmt.Errorf("%w (the function given to Update went on after this error; nothing was stored)", tx.err)
	}
	if err := ctx.Err(); err != nil {
		return o.errorf(err, "commit")
	}
	if err := sqlTx.Commit(); err != nil {
		if errors.Is(err, sql.ErrTxDone) && ctx.Err() != nil {
			err = ctx.Err() // database/sql rolled back when ctx ended
		}
		return o.errorf(err, "commit")
	}
	committed = true
	o.committed(tx.logBytes)
	return nil
}

// Tx is a write transaction, valid only inside the function given to Update.
// An error from any of its methods dooms the transaction: Update then stores
// nothing.
type Tx struct {
	o   *Outbox
	tx  *sql.Tx
	st  *boundStmts
	err error // the first error a method returned

	claimsLocked bool    // holds o.claimMu until Update ends (Waiting, Rewrite, AddClaimedMessage)
	claims       []int64 // AddClaimedMessage: claimed once committed
	logBytes     int     // about what the transaction adds to the write-ahead log
}

var errNoRows = sql.ErrNoRows

// fail records err as the first error of the transaction and returns it.
func (tx *Tx) fail(err error) error {
	if tx.err == nil {
		tx.err = err
	}
	return err
}

// ItemStates returns the stored states of the given items. Items never queued
// are absent from the map. Any number of codes may be asked for.
func (tx *Tx) ItemStates(ctx context.Context, codes []string) (map[string]ItemState, error) {
	states, err := itemStates(ctx, tx.tx, codes)
	if err != nil {
		return nil, tx.fail(tx.o.errorf(err, "read item states"))
	}
	return states, nil
}

func itemStates(ctx context.Context, q queryer, codes []string) (map[string]ItemState, error) {
	list, err := jsonList(codes)
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, itemStatesQuery, list)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	states := make(map[string]ItemState, len(codes))
	for rows.Next() {
		var s ItemState
		var queuedAt int64
		if err := rows.Scan(&s.Code, &s.Version, &s.Hash, &s.Deleted, &s.DeliveredVersion, &s.DeliveredHash, &queuedAt, &s.ChangesOn); err != nil {
			return nil, err
		}
		s.QueuedAt = time.UnixMilli(queuedAt)
		states[s.Code] = s
	}
	return states, rows.Err()
}

// PutItemState records s as the last queued state of item s.Code, queued
// now. The version may stay the same but never go down: PutItemState fails
// when s.Version is lower than the stored version, since a receiver would
// ignore that state. It keeps the delivered version and hash.
func (tx *Tx) PutItemState(ctx context.Context, s ItemState) error {
	return tx.PutItemStates(ctx, []ItemState{s})
}

// PutItemStates is PutItemState for several items, in fewer statements. An
// item may appear once.
func (tx *Tx) PutItemStates(ctx context.Context, states []ItemState) error {
	now := time.Now().UnixMilli()
	args := make([]any, 0, 6*len(states))
	for _, s := range states {
		if s.Code == "" {
			return tx.fail(fmt.Errorf("outbox %s: put item state: empty item code", tx.o.path))
		}
		var changesOn any
		if s.ChangesOn != "" {
			changesOn = s.ChangesOn
		}
		args = append(args, s.Code, s.Version, s.Hash, s.Deleted, now, changesOn)
	}
	n, err := execChunks(ctx, tx.st, &tx.o.stmts.putItems, tx.o.stmts.putItem, 6, args)
	if err != nil {
		return tx.fail(tx.o.errorf(err, "put %d item states", len(states)))
	}
	if n != int64(len(states)) {
		// Some version went down: say which.
		for _, s := range states {
			var stored int64
			if err := tx.tx.QueryRowContext(ctx, `SELECT version FROM items WHERE item_code = ?`, s.Code).Scan(&stored); err == nil && stored > s.Version {
				return tx.fail(fmt.Errorf("outbox %s: put item state %s: version %d is lower than the stored version %d", tx.o.path, s.Code, s.Version, stored))
			}
		}
		return tx.fail(fmt.Errorf("outbox %s: put %d item states: %d stored", tx.o.path, len(states), n))
	}
	tx.logBytes += 256 * len(states)
	return nil
}

// SetChangesOn records, for items whose last queued state stays as it is,
// the next date on which what they sell changes with no row changing
// (ItemState.ChangesOn; "" for none). Items never queued are left alone.
func (tx *Tx) SetChangesOn(ctx context.Context, dates map[string]string) error {
	for code, date := range dates {
		var v any
		if date != "" {
			v = date
		}
		if _, err := tx.tx.ExecContext(ctx, `UPDATE items SET changes_on = ? WHERE item_code = ?`, v, code); err != nil {
			return tx.fail(tx.o.errorf(err, "set the change date of item %s", code))
		}
	}
	return nil
}

// AddMessage stores m as a pending message due at now and returns its id,
// which is larger than the id of every message stored before. The delivery id
// must not have been used before; the body must not be empty; each item code
// may appear once in a message.
func (tx *Tx) AddMessage(ctx context.Context, m NewMessage, now time.Time) (int64, error) {
	id, err := tx.o.addMessage(ctx, tx.st, m, now, exposureNone)
	if err != nil {
		return 0, tx.fail(tx.o.errorf(err, "add message %s", m.DeliveryID))
	}
	tx.logBytes += messageLogBytes(m)
	return id, nil
}

// AddClaimedMessage is AddMessage for a message that goes straight to
// delivery in this process: it is stored claimed, as Claim would hand it out
// (an attempt at it has begun, Message.Exposed), and returned complete with
// its body. The claim takes effect when Update commits; until then Claim
// waits, and when nothing is stored nothing is claimed. As with Claim, the
// caller marks the outcome and then Releases the message.
//
// The caller must know that no older pending message holds any of m's items
// (PendingItems), since Claim would not hand out a message that must wait for
// an older one.
func (tx *Tx) AddClaimedMessage(ctx context.Context, m NewMessage, now time.Time) (Message, error) {
	tx.lockClaims()
	id, err := tx.o.addMessage(ctx, tx.st, m, now, exposureUnderway)
	if err != nil {
		return Message{}, tx.fail(tx.o.errorf(err, "add message %s", m.DeliveryID))
	}
	tx.logBytes += messageLogBytes(m)
	tx.claims = append(tx.claims, id)
	at := time.UnixMilli(now.UnixMilli())
	return Message{ID: id, DeliveryID: m.DeliveryID, Items: m.Items, Body: m.Body, State: Pending,
		NextAttemptAt: at, CreatedAt: at, UpdatedAt: at, Exposed: true}, nil
}

// messageLogBytes estimates what storing m adds to the write-ahead log: its
// body, and a row with index entries per item.
func messageLogBytes(m NewMessage) int { return len(m.Body) + 256*(len(m.Items)+1) }

func (o *Outbox) addMessage(ctx context.Context, st *boundStmts, m NewMessage, now time.Time, exposure int) (int64, error) {
	if err := validMessage(m); err != nil {
		return 0, err
	}

	at := now.UnixMilli()
	inline, separate := splitBody(m.Body)
	res, err := st.get(ctx, o.stmts.insertMessage).ExecContext(ctx, m.DeliveryID, inline, at, at, at, exposure)
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	if separate != nil {
		if _, err := st.get(ctx, o.stmts.insertBody).ExecContext(ctx, id, separate); err != nil {
			return 0, err
		}
	}
	if err := o.insertItems(ctx, st, id, m.Items); err != nil {
		return 0, err
	}
	return id, nil
}

// insertItems stores the items of message id, several rows per statement.
func (o *Outbox) insertItems(ctx context.Context, st *boundStmts, id int64, items []MessageItem) error {
	args := make([]any, 0, 5*len(items))
	for i, it := range items {
		args = append(args, id, i, it.Code, it.Version, it.Op)
	}
	if _, err := execChunks(ctx, st, &o.stmts.insertItems, o.stmts.insertItem, 5, args); err != nil {
		return fmt.Errorf("items of message %d: %w", id, err)
	}
	return nil
}

// inlineBody is the largest body stored in its message's row. A larger one
// goes to message_bodies, so that recording the message's delivery does not
// write it again (SQLite rewrites a whole row when a column changes size); a
// smaller one costs less in the row than a second INSERT does.
const inlineBody = 2 << 10

// splitBody returns what to store in messages.body and in message_bodies
// (nil: no row there) for body.
func splitBody(body []byte) (inline, separate []byte) {
	if len(body) <= inlineBody {
		return body, nil
	}
	return []byte{}, body
}

// SetCursor stores c, replacing the cursor of the same source.
func (tx *Tx) SetCursor(ctx context.Context, c Cursor) error {
	if c.Source == "" {
		return tx.fail(fmt.Errorf("outbox %s: set cursor: empty source", tx.o.path))
	}
	_, err := tx.st.get(ctx, tx.o.stmts.setCursor).ExecContext(ctx, c.Source, c.Modified, c.Name, time.Now().UnixMilli())
	if err != nil {
		return tx.fail(tx.o.errorf(err, "set cursor %s", c.Source))
	}
	return nil
}

// SetMeta stores value under key, replacing the previous value.
func (tx *Tx) SetMeta(ctx context.Context, key, value string) error {
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return tx.fail(tx.o.errorf(err, "set meta %s", key))
	}
	return nil
}

// Meta returns the value stored under key, as this transaction sees it.
func (tx *Tx) Meta(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := meta(ctx, tx.tx, key)
	if err != nil {
		return "", false, tx.fail(tx.o.errorf(err, "read meta %s", key))
	}
	return v, ok, nil
}

func meta(ctx context.Context, q queryer, key string) (string, bool, error) {
	var v string
	err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return v, true, nil
}

// Cursors returns the stored cursors by source.
func (o *Outbox) Cursors(ctx context.Context) (map[string]Cursor, error) {
	rows, err := o.r.QueryContext(ctx, `SELECT source, modified, name FROM cursors`)
	if err != nil {
		return nil, o.errorf(err, "read cursors")
	}
	defer rows.Close()
	cursors := make(map[string]Cursor)
	for rows.Next() {
		var c Cursor
		if err := rows.Scan(&c.Source, &c.Modified, &c.Name); err != nil {
			return nil, o.errorf(err, "read cursors")
		}
		cursors[c.Source] = c
	}
	if err := rows.Err(); err != nil {
		return nil, o.errorf(err, "read cursors")
	}
	return cursors, nil
}

// Meta returns the value stored under key; ok is false when there is none.
func (o *Outbox) Meta(ctx context.Context, key string) (value string, ok bool, err error) {
	v, ok, err := meta(ctx, o.r, key)
	if err != nil {
		return "", false, o.errorf(err, "read meta %s", key)
	}
	return v, ok, nil
}

// ItemState returns the stored state of one item; ok is false when the item
// was never queued.
func (o *Outbox) ItemState(ctx context.Context, code string) (ItemState, bool, error) {
	states, err := itemStates(ctx, o.r, []string{code})
	if err != nil {
		return ItemState{}, false, o.errorf(err, "read item state %s", code)
	}
	s, ok := states[code]
	return s, ok, nil
}

// validMessage checks what AddMessage requires of a message.
func validMessage(m NewMessage) error {
	if m.DeliveryID == "" {
		return errors.New("empty delivery id")
	}
	if len(m.Body) == 0 {
		return errors.New("empty body")
	}
	seen := make(map[string]bool, len(m.Items))
	for _, it := range m.Items {
		switch {
		case it.Code == "":
			return errors.New("empty item code")
		case it.Op == "":
			return fmt.Errorf("item %s: empty op", it.Code)
		case seen[it.Code]:
			return fmt.Errorf("item %s appears twice", it.Code)
		}
		seen[it.Code] = true
	}
	return nil
}

// DueItems returns, in code order, up to limit items after the code after
// whose ChangesOn is on or before date (YYYY-MM-DD), skipping items whose
// last queued state is a delete: the items whose effective price or sale
// state may have changed by date with no row changing. It reads an index
// range on the date, so its cost grows with the items due, not with the
// catalogue.
func (o *Outbox) DueItems(ctx context.Context, date, after string, limit int) ([]string, error) {
	rows, err := o.r.QueryContext(ctx, `SELECT item_code FROM items
		WHERE changes_on IS NOT NULL AND changes_on <= ? AND item_code > ? AND deleted = 0
		ORDER BY item_code LIMIT ?`, date, after, limit)
	if err != nil {
		return nil, o.errorf(err, "read the items due on %s", date)
	}
	defer rows.Close()
	var codes []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, o.errorf(err, "read the items due on %s", date)
		}
		codes = append(codes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, o.errorf(err, "read the items due on %s", date)
	}
	return codes, nil
}
