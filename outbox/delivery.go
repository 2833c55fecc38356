package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// notBlocked is the SQL condition, on a pending message m, that no item of m
// is also held by an older pending message. The message_items_pending index
// answers it with one index seek per item of m, however long the item's
// history of delivered messages is.
const notBlocked = `NOT EXISTS (
	SELECT 1 FROM message_items AS mi
	WHERE mi.message_id = m.id
	  AND EXISTS (
		SELECT 1 FROM message_items AS older INDEXED BY message_items_pending
		WHERE older.item_code = mi.item_code AND older.pending = 1 AND older.message_id < m.id))`

// Due has two plans. dueProbeQuery lists the due pending messages, by next
// attempt, up to a bound. When it finds few, dueAmongQuery keeps those that
// are not blocked, in id order. When it finds many, dueQuery walks the
// pending part of messages_state in id order, reading next_attempt_at from
// the index, and the caller stops after enough rows. Either way the cost
// grows with what is due, or with how far Due must walk to fill its limit,
// not with the whole backlog.
const (
	dueProbeQuery = `SELECT id FROM messages INDEXED BY messages_due
WHERE state = 'pending' AND next_attempt_at <= ? LIMIT ?`
	dueAmongQuery = `SELECT m.id FROM messages AS m
WHERE m.id IN (SELECT value FROM json_each(?)) AND ` + notBlocked + `
ORDER BY m.id`
	dueQuery = `SELECT m.id FROM messages AS m INDEXED BY messages_state
WHERE m.state = 'pending' AND m.next_attempt_at <= ? AND ` + notBlocked + `
ORDER BY m.id`
)

// dueProbe is how many due messages Due checks one by one before it walks
// the pending messages in id order instead.
const dueProbe = 256

// nextDueQuery lists unblocked pending messages by next attempt, earliest first.
const nextDueQuery = `SELECT m.id, m.next_attempt_at FROM messages AS m INDEXED BY messages_due
WHERE m.state = 'pending' AND ` + notBlocked + `
ORDER BY m.next_attempt_at`

const nextAttemptQuery = `SELECT next_attempt_at FROM messages INDEXED BY messages_due
WHERE state = 'pending' ORDER BY next_attempt_at LIMIT 1`

// deliveredItemsQuery records, for each item of message ?1 whose last queued
// version is the one the message carried, that this version was delivered.
const deliveredItemsQuery = `UPDATE items SET delivered_version = items.version, delivered_hash = items.hash
FROM message_items AS mi
WHERE mi.message_id = ?1 AND items.item_code = mi.item_code AND items.version = mi.version`

const pruneQuery = `DELETE FROM messages WHERE id IN (
	SELECT id FROM messages INDEXED BY messages_delivered
	WHERE state = 'delivered' AND delivered_at < ? LIMIT ?)`

// prunableQuery finds a row when pruneQuery would delete anything.
const prunableQuery = `SELECT 1 FROM messages INDEXED BY messages_delivered
	WHERE state = 'delivered' AND delivered_at < ? LIMIT 1`

// pruneBatch is how many messages one PruneDelivered transaction deletes, so
// that pruning a long history does not hold the write lock for long.
const pruneBatch = 1000

// Due returns up to limit pending messages whose next attempt is at or before
// now, oldest (lowest id) first, with their bodies and items. It skips
// messages whose id is in exclude (messages in flight), and messages holding
// an item that an older pending message also holds, whether that older
// message is due, excluded or waiting: a newer state of an item is never handed
// out while an older one is still pending. Dead and delivered messages block
// nothing. limit must be positive.
//
// Due reads one consistent snapshot and changes nothing.
func (o *Outbox) Due(ctx context.Context, now time.Time, limit int, exclude map[int64]bool) ([]Message, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("outbox %s: due messages: limit %d is not positive", o.path, limit)
	}
	var msgs []Message
	err := o.read(ctx, func(tx *sql.Tx) error {
		st := bind(tx)
		var err error
		msgs, err = o.due(ctx, dueQueries{
			probe: st.get(ctx, o.stmts.dueProbe), among: st.get(ctx, o.stmts.dueAmong), walk: st.get(ctx, o.stmts.due),
			byID: st.get(ctx, o.stmts.messagesByID), items: st.get(ctx, o.stmts.itemsByID),
		}, now, limit, exclude)
		return err
	})
	if err != nil {
		return nil, o.errorf(err, "due messages")
	}
	return msgs, nil
}

// dueQueries are the queries of Due (dueProbeQuery, dueAmongQuery, dueQuery,
// messagesByIDQuery, itemsByIDQuery), prepared or not, on one transaction.
type dueQueries struct {
	probe, among, walk, byID, items rowQuerier
}

// dueIn is dueQueries on transaction tx, unprepared: for a write
// transaction (the prepared ones belong to the read connections).
func dueIn(tx *sql.Tx) dueQueries {
	return dueQueries{probe: sqlQuery{tx, dueProbeQuery}, among: sqlQuery{tx, dueAmongQuery}, walk: sqlQuery{tx, dueQuery},
		byID: sqlQuery{tx, messagesByIDQuery}, items: sqlQuery{tx, itemsByIDQuery}}
}

// due is Due in the transaction of q.
func (o *Outbox) due(ctx context.Context, q dueQueries, now time.Time, limit int, exclude map[int64]bool) ([]Message, error) {
	nowMS := now.UnixMilli()
	// Few due messages (the usual case, and a backlog that waits out an
	// outage): check just those. Many: walk pending in id order. While
	// the last walk filled its limit, walk at once: a backlog being
	// sent stays large from one call to the next.
	var due []int64
	if !o.dueMany.Load() {
		var err error
		due, err = queryIDs(ctx, q.probe, nowMS, o.dueProbeLimit+1)
		if err != nil || len(due) == 0 {
			return nil, err
		}
	}
	var rows *sql.Rows
	var err error
	walk := len(due) == 0 || len(due) > o.dueProbeLimit
	if !walk {
		list, err := jsonList(due)
		if err != nil {
			return nil, err
		}
		rows, err = q.among.QueryContext(ctx, list)
		if err != nil {
			return nil, err
		}
	} else {
		rows, err = q.walk.QueryContext(ctx, nowMS)
		if err != nil {
			return nil, err
		}
	}
	ids := make([]int64, 0, limit)
	for len(ids) < limit && rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		if !exclude[id] {
			ids = append(ids, id)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	o.dueMany.Store(walk && len(ids) == limit)
	return loadMessagesWith(ctx, q.byID, q.items, ids, true)
}

// NextAttempt returns the earliest next attempt time among pending messages;
// ok is false when no message is pending. The time may be past, for a message
// in flight or waiting behind an older message of the same item: a delivery
// loop that sleeps until it should not spin on it (see NextDue).
func (o *Outbox) NextAttempt(ctx context.Context) (t time.Time, ok bool, err error) {
	var at sql.NullInt64
	err = o.stmts.nextAttempt.QueryRowContext(ctx).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, o.errorf(err, "next attempt")
	}
	return fromMS(at), at.Valid, nil
}

// NextDue returns the earliest next attempt time among the messages Due could
// hand out when their time comes: pending, not in exclude, and not behind an
// older pending message of the same item. ok is false when there is none;
// then only a change (a delivery reported, a message added or retried) can
// make a message due.
func (o *Outbox) NextDue(ctx context.Context, exclude map[int64]bool) (t time.Time, ok bool, err error) {
	rows, err := o.stmts.nextDue.QueryContext(ctx)
	if err != nil {
		return time.Time{}, false, o.errorf(err, "next due")
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var at sql.NullInt64
		if err := rows.Scan(&id, &at); err != nil {
			return time.Time{}, false, o.errorf(err, "next due")
		}
		if !exclude[id] {
			return fromMS(at), true, nil
		}
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, false, o.errorf(err, "next due")
	}
	return time.Time{}, false, nil
}

// MarkDelivered records that attempt at message id was accepted with HTTP
// status: the message becomes delivered at now and its attempts grow by one.
// For each item of the message whose last queued version is the version the
// message carried, the item's delivered version and hash become that version
// and its hash. The message must be pending (ErrWrongState otherwise).
func (o *Outbox) MarkDelivered(ctx context.Context, id int64, status int, now time.Time) error {
	return o.write(ctx, func(tx *sql.Tx) error {
		return o.markDeliveredIn(ctx, bind(tx), id, "", status, now)
	}, "mark message %d delivered", id)
}

// Accepted is one accepted attempt, for MarkDeliveredBatch.
type Accepted struct {
	ID     int64
	Status int
	// DeliveryID, when set, is the delivery id that was sent: the message
	// is marked delivered only while it still holds that delivery id (and
	// so that body). Claim guarantees that a claimed message keeps it
	// until its outcome is recorded; this makes the record itself say so.
	DeliveryID string
}

// MarkDeliveredBatch is MarkDelivered for several messages in one
// transaction: one commit for a whole group of accepted deliveries. A
// message that is no longer pending (an operator purged it meanwhile), or
// no longer holds the Accepted.DeliveryID that was sent, is left as it is
// and its id returned in skipped; any other error stores nothing.
func (o *Outbox) MarkDeliveredBatch(ctx context.Context, ds []Accepted, now time.Time) (skipped []int64, err error) {
	if len(ds) == 0 {
		return nil, nil
	}
	// One statement per status for all of them, the usual case; when one is
	// no longer pending, that transaction stores nothing and each message is
	// marked on its own, to tell which.
	err = o.write(ctx, func(tx *sql.Tx) error {
		return o.markDeliveredAll(ctx, bind(tx), ds, now)
	}, "mark %d messages delivered", len(ds))
	if err == nil {
		o.committed(512 * len(ds))
		return nil, nil
	}
	if !errors.Is(err, errNotAllPending) {
		return nil, err
	}
	err = o.write(ctx, func(tx *sql.Tx) error {
		skipped = skipped[:0]
		st := bind(tx)
		for _, d := range ds {
			err := o.markDeliveredIn(ctx, st, d.ID, d.DeliveryID, d.Status, now)
			if errors.Is(err, ErrWrongState) || errors.Is(err, ErrNotFound) {
				skipped = append(skipped, d.ID)
				continue
			}
			if err != nil {
				return fmt.Errorf("message %d: %w", d.ID, err)
			}
		}
		return nil
	}, "mark %d messages delivered", len(ds))
	if err == nil {
		o.committed(512 * len(ds)) // a few index entries and the item's state per message
	}
	return skipped, err
}

// errNotAllPending: markDeliveredAll met a message that is not pending.
var errNotAllPending = errors.New("a message is no longer pending")

// markDeliveredAll marks every message of ds delivered, with one statement
// per status, or fails with errNotAllPending when one is not pending (the
// transaction must then be rolled back).
func (o *Outbox) markDeliveredAll(ctx context.Context, st *boundStmts, ds []Accepted, now time.Time) error {
	type group struct {
		status int
		as     bool // by delivery id
	}
	ids, dids := map[group][]int64{}, map[group][]string{}
	for _, d := range ds {
		g := group{d.Status, d.DeliveryID != ""}
		ids[g] = append(ids[g], d.ID)
		if g.as {
			dids[g] = append(dids[g], d.DeliveryID)
		}
	}
	groups := slices.SortedFunc(maps.Keys(ids), func(a, b group) int {
		if a.status != b.status {
			return a.status - b.status
		}
		if a.as == b.as {
			return 0
		}
		if a.as {
			return 1
		}
		return -1
	})
	for _, g := range groups {
		list, err := jsonList(ids[g])
		if err != nil {
			return err
		}
		var res sql.Result
		if g.as {
			pairs := make([][2]any, len(ids[g]))
			for i, id := range ids[g] {
				pairs[i] = [2]any{id, dids[g][i]}
			}
			var plist string
			if plist, err = jsonList(pairs); err == nil {
				res, err = st.get(ctx, o.stmts.markDeliveredManyAs).ExecContext(ctx, g.status, now.UnixMilli(), plist)
			}
		} else {
			res, err = st.get(ctx, o.stmts.markDeliveredMany).ExecContext(ctx, g.status, now.UnixMilli(), list)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != int64(len(ids[g])) {
			return errNotAllPending
		}
		if _, err := st.get(ctx, o.stmts.deliveredItemsMany).ExecContext(ctx, list); err != nil {
			return err
		}
	}
	return nil
}

const markDeliveredManyQuery = `UPDATE messages SET state = 'delivered', attempts = attempts + 1,
	last_status = nullif(?1, 0), last_error = NULL, next_attempt_at = NULL, delivered_at = ?2, updated_at = ?2
	WHERE id IN (SELECT value FROM json_each(?3)) AND state = 'pending'`

// markDeliveredManyAsQuery is markDeliveredManyQuery for the messages of
// the JSON array ?3 of [id, delivery id] pairs that still hold that
// delivery id.
const markDeliveredManyAsQuery = `UPDATE messages SET state = 'delivered', attempts = attempts + 1,
	last_status = nullif(?1, 0), last_error = NULL, next_attempt_at = NULL, delivered_at = ?2, updated_at = ?2
	WHERE (id, delivery_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?3)) AND state = 'pending'`

const deliveredItemsManyQuery = `UPDATE items SET delivered_version = items.version, delivered_hash = items.hash
FROM message_items AS mi
WHERE mi.message_id IN (SELECT value FROM json_each(?1)) AND items.item_code = mi.item_code AND items.version = mi.version`

const markDeliveredQuery = `UPDATE messages SET state = 'delivered', attempts = attempts + 1,
	last_status = nullif(?1, 0), last_error = NULL, next_attempt_at = NULL, delivered_at = ?2, updated_at = ?2
	WHERE id = ?3 AND state = 'pending' AND (?4 = '' OR delivery_id = ?4)`

func (o *Outbox) markDeliveredIn(ctx context.Context, st *boundStmts, id int64, deliveryID string, status int, now time.Time) error {
	res, err := st.get(ctx, o.stmts.markDelivered).ExecContext(ctx, status, now.UnixMilli(), id, deliveryID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return o.explainDelivered(ctx, st.tx, id, deliveryID)
	}
	_, err = st.get(ctx, o.stmts.deliveredItems).ExecContext(ctx, id)
	return err
}

// MarkRetry records a failed attempt at message id that may have reached the
// receiver (a timeout, a connection lost after the request was sent, a 5xx
// from a gateway): attempts grow by one, status (0 for no HTTP response) and
// errText (cut to 8 KiB) are kept as the last status and error, the message
// stays pending, due at next (now when next is zero), and it counts as
// possibly received from now on (Message.Exposed). The message must be
// pending.
func (o *Outbox) MarkRetry(ctx context.Context, id int64, status int, errText string, next time.Time) error {
	return o.markFailed(ctx, id, status, errText, next, true)
}

// MarkRefused is MarkRetry for an attempt that certainly did not reach the
// receiver's state: the connection was refused, or every request of the
// attempt was answered with a refusal such as 503 or 429. The message
// counts as never sent unless an earlier attempt may have reached the
// receiver, so it may still be rewritten (Tx.Rewrite).
func (o *Outbox) MarkRefused(ctx context.Context, id int64, status int, errText string, next time.Time) error {
	return o.markFailed(ctx, id, status, errText, next, false)
}

func (o *Outbox) markFailed(ctx context.Context, id int64, status int, errText string, next time.Time, maybeReceived bool) error {
	now := time.Now()
	if next.IsZero() {
		next = now
	}
	return o.write(ctx, func(tx *sql.Tx) error {
		return o.transition(ctx, tx, id, `UPDATE messages SET attempts = attempts + 1,
			last_status = nullif(?3, 0), last_error = ?4, next_attempt_at = ?5, updated_at = ?6, exposure = `+endExposure+`
			WHERE id = ?2 AND state = 'pending'`,
			maybeReceived, id, status, truncateText(errText, maxErrorText), next.UnixMilli(), now.UnixMilli())
	}, "mark message %d for retry", id)
}

// Reschedule moves the next attempt at pending message id to next (now when
// next is zero) without counting an attempt, for example while delivery is
// paused. The message must be pending.
func (o *Outbox) Reschedule(ctx context.Context, id int64, next time.Time) error {
	now := time.Now()
	if next.IsZero() {
		next = now
	}
	return o.write(ctx, func(tx *sql.Tx) error {
		return o.transition(ctx, tx, id, `UPDATE messages SET next_attempt_at = ?, updated_at = ?
			WHERE id = ? AND state = 'pending'`, next.UnixMilli(), now.UnixMilli(), id)
	}, "reschedule message %d", id)
}

// MarkDead records a rejected attempt at message id: attempts grow by one,
// status and reason (cut to 8 KiB) are kept as the last status and error, and
// the message becomes dead: it is not handed out again unless Retry brings it
// back, and it no longer holds back newer messages of its items. The message
// must be pending.
//
// A dead state was not delivered, so it must not pass for what the receiver
// has: in the same transaction, each item of the message whose last queued
// state is the one the message carried (same version) gets an empty hash
// and Deleted false (ItemState). No content equals an empty hash, so the
// item's next change, a reconciliation sweep and a resync queue its current
// state again, a delete included (the item counts as live: LiveItems).
func (o *Outbox) MarkDead(ctx context.Context, id int64, status int, reason string, now time.Time) error {
	return o.write(ctx, func(tx *sql.Tx) error {
		err := o.transition(ctx, tx, id, `UPDATE messages SET state = 'dead', attempts = attempts + 1,
			last_status = nullif(?, 0), last_error = ?, next_attempt_at = NULL, updated_at = ?
			WHERE id = ? AND state = 'pending'`,
			status, truncateText(reason, maxErrorText), now.UnixMilli(), id)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, deadItemsQuery, id)
		return err
	}, "mark message %d dead", id)
}

// deadItemsQuery forgets the content of the items of dead message ?1 whose
// last queued state is the one the message carried (see MarkDead).
const deadItemsQuery = `UPDATE items SET hash = '', deleted = 0
FROM message_items AS mi
WHERE mi.message_id = ?1 AND items.item_code = mi.item_code AND items.version = mi.version`

// ErrSuperseded is returned, wrapped in a *SupersededError, by Retry and
// RetryCurrent for a dead message holding an item that has had a newer state
// queued since.
var ErrSuperseded = errors.New("outbox: a newer state of the item was queued since")

// SupersededError says which items of a dead message have had a newer state
// queued since it was stored (pending, delivered or dead itself): sending the
// message's older state of them could undo the newer one at a receiver that
// has it, so Retry does not send it.
type SupersededError struct {
	ID         int64
	DeliveryID string
	Items      []string // codes of the superseded items, in message order
	All        bool     // every item of the message is superseded
}

func (e *SupersededError) Error() string {
	what := "items " + strings.Join(e.Items, ", ") + " of the message have"
	if e.All {
		what = "every item of the message (" + strings.Join(e.Items, ", ") + ") has"
	}
	return what + " a newer state queued since (superseded); its older state is not sent again"
}

// Unwrap makes errors.Is(err, ErrSuperseded) true.
func (e *SupersededError) Unwrap() error { return ErrSuperseded }

// Retry makes dead message id pending again, due at now; a pending message
// becomes due at now. Attempts, last status and last error are kept. Because
// ids keep their order, a retried message again holds back newer pending
// messages of its items until it is delivered or dead. A delivered message
// cannot be retried (ErrWrongState). A dead message holding an item that has
// had a newer state queued since is left dead: Retry returns a
// *SupersededError (ErrSuperseded), since its older state must not reach the
// receiver after the newer one; RetryCurrent sends the rest of such a
// message.
func (o *Outbox) Retry(ctx context.Context, id int64, now time.Time) error {
	_, err := o.RetryCurrent(ctx, id, now, nil)
	return err
}

// RetryCurrent is Retry that sends what is still current of a dead message
// some of whose items are superseded (a newer state of them was queued
// since): rebuild gets the stored message, with its body, and the codes of
// the superseded items, and returns the message without them, under a new
// delivery id (a delivery id never names two contents). In one transaction
// the dead message takes that delivery id, body and items in place, keeping
// its place in delivery order, its attempts and its last error, and becomes
// pending, due at now, never sent. RetryCurrent returns the superseded item
// codes. The new message's items must be items of the old one with the same
// versions, none superseded, at least one (ErrWrongState otherwise, and
// nothing changes). With rebuild nil, or when every item is superseded, it
// returns a *SupersededError and changes nothing. A message none of whose
// items is superseded, or a pending one, is retried as Retry does, and
// rebuild is not called.
func (o *Outbox) RetryCurrent(ctx context.Context, id int64, now time.Time, rebuild func(m Message, superseded map[string]bool) (NewMessage, error)) (superseded []string, err error) {
	at := now.UnixMilli()
	err = o.writeOn(ctx, o.w, func(tx *sql.Tx) error {
		superseded = nil
		var state State
		var deliveryID string
		err := tx.QueryRowContext(ctx, `SELECT state, delivery_id FROM messages WHERE id = ?`, id).Scan(&state, &deliveryID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case state == Delivered:
			return fmt.Errorf("message is %s: %w", state, ErrWrongState)
		case state == Pending:
			_, err := tx.ExecContext(ctx, `UPDATE messages SET next_attempt_at = ?1, updated_at = ?1 WHERE id = ?2`, at, id)
			return err
		}
		codes, n, err := supersededItems(ctx, tx, id)
		if err != nil {
			return err
		}
		if len(codes) == 0 {
			return o.transition(ctx, tx, id, `UPDATE messages SET state = 'pending', next_attempt_at = ?1, updated_at = ?1
				WHERE id = ?2 AND state = 'dead'`, at, id)
		}
		if rebuild == nil || len(codes) == n {
			return &SupersededError{ID: id, DeliveryID: deliveryID, Items: codes, All: len(codes) == n}
		}
		msgs, err := loadMessagesWith(ctx, sqlQuery{tx, messagesByIDQuery}, sqlQuery{tx, itemsByIDQuery}, []int64{id}, true)
		if err != nil {
			return err
		}
		if len(msgs) != 1 {
			return ErrNotFound
		}
		old := msgs[0]
		set := make(map[string]bool, len(codes))
		for _, c := range codes {
			set[c] = true
		}
		m, err := rebuild(old, set)
		if err != nil {
			return err
		}
		if err := currentPart(old, m, set); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET state = 'pending', next_attempt_at = ?1, updated_at = ?1 WHERE id = ?2`, at, id); err != nil {
			return err
		}
		if err := o.replaceContent(ctx, tx, bind(tx), id, m, now); err != nil {
			return err
		}
		superseded = codes
		return nil
	}, "retry message %d", id)
	return superseded, err
}

// supersededItems returns the codes of the items of message id, in message
// order, whose last queued version is newer than the message's, and how many
// items the message holds.
func supersededItems(ctx context.Context, tx *sql.Tx, id int64) (codes []string, n int, err error) {
	rows, err := tx.QueryContext(ctx, `SELECT mi.item_code, coalesce(items.version > mi.version, 0) FROM message_items AS mi
		LEFT JOIN items ON items.item_code = mi.item_code
		WHERE mi.message_id = ? ORDER BY mi.seq`, id)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var code string
		var newer bool
		if err := rows.Scan(&code, &newer); err != nil {
			return nil, 0, err
		}
		n++
		if newer {
			codes = append(codes, code)
		}
	}
	return codes, n, rows.Err()
}

// currentPart checks that m, the part of old to send again, holds only
// states of old that are not superseded, and at least one.
func currentPart(old Message, m NewMessage, superseded map[string]bool) error {
	if err := validMessage(m); err != nil {
		return fmt.Errorf("message to send again: %w", err)
	}
	if len(m.Items) == 0 {
		return fmt.Errorf("message to send again holds no item: %w", ErrWrongState)
	}
	versions := make(map[string]int64, len(old.Items))
	for _, it := range old.Items {
		versions[it.Code] = it.Version
	}
	for _, it := range m.Items {
		v, ok := versions[it.Code]
		switch {
		case superseded[it.Code]:
			return fmt.Errorf("item %s of %s has a newer state queued since: %w", it.Code, m.DeliveryID, ErrWrongState)
		case !ok || v != it.Version:
			return fmt.Errorf("item %s version %d of %s is not a state the dead message carried: %w", it.Code, it.Version, m.DeliveryID, ErrWrongState)
		}
	}
	return nil
}

// PruneDelivered deletes the messages delivered before before, with their
// item lists, and returns how many it deleted. It deletes in batches, each
// its own transaction, so the daemon's writes go on meanwhile; when ctx ends
// it stops, keeping what earlier batches deleted. Item states (including the
// delivered version) stay.
//
// Whether there is anything to delete is read first: a write transaction
// takes a writing connection, and its commit wakes the checkpointer's, even
// when it deletes nothing, as it does at most rounds of an idle site.
func (o *Outbox) PruneDelivered(ctx context.Context, before time.Time) (int64, error) {
	var one int
	err := o.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, prunableQuery, before.UnixMilli()).Scan(&one)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, o.errorf(err, "prune delivered messages")
	}
	var total int64
	for {
		var n int64
		err := o.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, pruneQuery, before.UnixMilli(), pruneBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		}, "prune delivered messages")
		if err != nil {
			return total, err
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

// Get returns message id with its body and items (ErrNotFound, wrapped, when
// there is none).
func (o *Outbox) Get(ctx context.Context, id int64) (Message, error) {
	var msgs []Message
	err := o.read(ctx, func(tx *sql.Tx) (err error) {
		msgs, err = o.loadMessages(ctx, bind(tx), []int64{id}, true)
		return err
	})
	if err != nil {
		return Message{}, o.errorf(err, "get message %d", id)
	}
	if len(msgs) == 0 {
		return Message{}, o.errorf(ErrNotFound, "get message %d", id)
	}
	return msgs[0], nil
}

// GetByDeliveryID returns the message with the given delivery id, with its
// body and items (ErrNotFound, wrapped, when there is none).
func (o *Outbox) GetByDeliveryID(ctx context.Context, deliveryID string) (Message, error) {
	var msgs []Message
	err := o.read(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM messages WHERE delivery_id = ?`, deliveryID).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		msgs, err = o.loadMessages(ctx, bind(tx), []int64{id}, true)
		return err
	})
	if err != nil {
		return Message{}, o.errorf(err, "get message %s", deliveryID)
	}
	if len(msgs) == 0 {
		return Message{}, o.errorf(ErrNotFound, "get message %s", deliveryID)
	}
	return msgs[0], nil
}

// List returns up to limit messages in the given state (any state when state
// is ""), newest first, with their items but without bodies. A limit of 0 or
// less means no limit.
func (o *Outbox) List(ctx context.Context, state State, limit int) ([]Message, error) {
	if state != "" && !state.valid() {
		return nil, fmt.Errorf("outbox %s: list messages: unknown state %q", o.path, state)
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	var msgs []Message
	err := o.read(ctx, func(tx *sql.Tx) error {
		var ids []int64
		var err error
		if state == "" {
			ids, err = queryIDs(ctx, sqlQuery{tx, `SELECT id FROM messages ORDER BY id DESC LIMIT ?`}, limit)
		} else {
			ids, err = queryIDs(ctx, sqlQuery{tx, `SELECT id FROM messages INDEXED BY messages_state
				WHERE state = ? ORDER BY id DESC LIMIT ?`}, string(state), limit)
		}
		if err != nil {
			return err
		}
		msgs, err = o.loadMessages(ctx, bind(tx), ids, false)
		return err
	})
	if err != nil {
		what := "list messages"
		if state != "" {
			what = "list " + string(state) + " messages"
		}
		return nil, o.errorf(err, "%s", what)
	}
	return msgs, nil
}

// ItemMessages returns up to limit stored messages that hold item code,
// newest first, with their items but without bodies. A limit of 0 or less
// means no limit.
func (o *Outbox) ItemMessages(ctx context.Context, code string, limit int) ([]Message, error) {
	if limit <= 0 {
		limit = -1
	}
	var msgs []Message
	err := o.read(ctx, func(tx *sql.Tx) error {
		ids, err := queryIDs(ctx, sqlQuery{tx, `SELECT message_id FROM message_items INDEXED BY message_items_item
			WHERE item_code = ? ORDER BY message_id DESC LIMIT ?`}, code, limit)
		if err != nil {
			return err
		}
		msgs, err = o.loadMessages(ctx, bind(tx), ids, false)
		return err
	})
	if err != nil {
		return nil, o.errorf(err, "list messages of item %s", code)
	}
	return msgs, nil
}

// Stats counts the stored messages by state.
type Stats struct {
	Pending, Delivered, Dead int64
	OldestPending            time.Time // creation time of the oldest pending message; zero when none
	OldestDead               time.Time // creation time of the oldest dead message; zero when none
	LastDelivered            time.Time // latest delivery time among stored messages; zero when none
}

// Stats returns the message counts from one consistent snapshot.
func (o *Outbox) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := o.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT state, count(*) FROM messages INDEXED BY messages_state GROUP BY state`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var state State
			var n int64
			if err := rows.Scan(&state, &n); err != nil {
				rows.Close()
				return err
			}
			switch state {
			case Pending:
				s.Pending = n
			case Delivered:
				s.Delivered = n
			case Dead:
				s.Dead = n
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		var at sql.NullInt64
		err = tx.QueryRowContext(ctx, `SELECT created_at FROM messages INDEXED BY messages_state
			WHERE state = 'pending' ORDER BY id LIMIT 1`).Scan(&at)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		s.OldestPending = fromMS(at)
		at = sql.NullInt64{}
		err = tx.QueryRowContext(ctx, `SELECT created_at FROM messages INDEXED BY messages_state
			WHERE state = 'dead' ORDER BY id LIMIT 1`).Scan(&at)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		s.OldestDead = fromMS(at)
		at = sql.NullInt64{}
		err = tx.QueryRowContext(ctx, `SELECT delivered_at FROM messages INDEXED BY messages_delivered
			WHERE state = 'delivered' ORDER BY delivered_at DESC LIMIT 1`).Scan(&at)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		s.LastDelivered = fromMS(at)
		return nil
	})
	if err != nil {
		return Stats{}, o.errorf(err, "stats")
	}
	return s, nil
}

// read runs fn in a read-only transaction: one snapshot of the file.
func (o *Outbox) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := o.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// write runs fn in a write transaction and commits it; errors are wrapped
// with what was being done.
func (o *Outbox) write(ctx context.Context, fn func(tx *sql.Tx) error, format string, args ...any) error {
	return o.writeOn(ctx, o.wm, fn, format, args...)
}

// writeOn is write on a given connection: o.w where fn uses the prepared
// statements of Update or must be durable at once.
func (o *Outbox) writeOn(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error, format string, args ...any) error {
	if err := o.beginWrite(ctx); err != nil {
		return o.errorf(err, format, args...)
	}
	defer o.endWrite()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return o.errorf(err, format, args...)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return o.errorf(err, format, args...)
	}
	if err := tx.Commit(); err != nil {
		return o.errorf(err, format, args...)
	}
	o.committed(0)
	return nil
}

// committed tells the checkpointer that a commit added about n bytes (besides
// its pages of bookkeeping) to the write-ahead log.
func (o *Outbox) committed(n int) {
	if o.ck != nil {
		o.ck.committed(n)
	}
}

// transition runs an UPDATE of message id that is guarded by its state, and
// explains a guard that did not match with ErrNotFound or ErrWrongState.
func (o *Outbox) transition(ctx context.Context, tx *sql.Tx, id int64, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 1 {
		return err
	}
	return o.explainState(ctx, tx, id)
}

// explainState says why a state-guarded UPDATE of message id matched no row:
// ErrNotFound or ErrWrongState.
func (o *Outbox) explainState(ctx context.Context, tx *sql.Tx, id int64) error {
	var state State
	err := tx.QueryRowContext(ctx, `SELECT state FROM messages WHERE id = ?`, id).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("message is %s: %w", state, ErrWrongState)
}

// explainDelivered says why marking message id delivered as deliveryID
// matched no row: ErrNotFound, or ErrWrongState when the message is not
// pending or holds another delivery id.
func (o *Outbox) explainDelivered(ctx context.Context, tx *sql.Tx, id int64, deliveryID string) error {
	var state State
	var stored string
	err := tx.QueryRowContext(ctx, `SELECT state, delivery_id FROM messages WHERE id = ?`, id).Scan(&state, &stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	case state != Pending:
		return fmt.Errorf("message is %s: %w", state, ErrWrongState)
	}
	return fmt.Errorf("message holds delivery id %s, not the %s that was sent (rewritten meanwhile): %w", stored, deliveryID, ErrWrongState)
}

// queryIDs runs q, a query or a *sql.Stmt, and returns the ids it lists.
func queryIDs(ctx context.Context, q rowQuerier, args ...any) ([]int64, error) {
	rows, err := q.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// sqlQuery is a query text on a connection, shaped like a *sql.Stmt.
type sqlQuery struct {
	q     queryer
	query string
}

func (s sqlQuery) QueryContext(ctx context.Context, args ...any) (*sql.Rows, error) {
	return s.q.QueryContext(ctx, s.query, args...)
}

// loadMessages reads the messages with the given ids, in that order, skipping
// ids that do not exist. st must be bound to a transaction on the read
// connections.
func (o *Outbox) loadMessages(ctx context.Context, st *boundStmts, ids []int64, withBody bool) ([]Message, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return loadMessagesWith(ctx, st.get(ctx, o.stmts.messagesByID), st.get(ctx, o.stmts.itemsByID), ids, withBody)
}

// rowQuerier is a *sql.Stmt, or a query text on a connection (sqlQuery).
type rowQuerier interface {
	QueryContext(context.Context, ...any) (*sql.Rows, error)
}

// loadMessagesWith reads messages with byID (messagesByIDQuery) and items
// (itemsByIDQuery), so that a write transaction can read them too.
func loadMessagesWith(ctx context.Context, byIDQuery, itemsQuery rowQuerier, ids []int64, withBody bool) ([]Message, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	list, err := jsonList(ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]*Message, len(ids))
	rows, err := byIDQuery.QueryContext(ctx, list, withBody)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var m Message
		var next, created, updated, delivered sql.NullInt64
		var exposure int
		if err := rows.Scan(&m.ID, &m.DeliveryID, &m.Body, &m.State, &m.Attempts, &m.LastStatus, &m.LastError,
			&next, &created, &updated, &delivered, &exposure); err != nil {
			rows.Close()
			return nil, err
		}
		m.NextAttemptAt, m.CreatedAt, m.UpdatedAt, m.DeliveredAt = fromMS(next), fromMS(created), fromMS(updated), fromMS(delivered)
		m.Exposed = exposure != 0
		byID[m.ID] = &m
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	rows, err = itemsQuery.QueryContext(ctx, list)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id int64
		var it MessageItem
		if err := rows.Scan(&id, &it.Code, &it.Version, &it.Op); err != nil {
			rows.Close()
			return nil, err
		}
		if m := byID[id]; m != nil {
			m.Items = append(m.Items, it)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	msgs := make([]Message, 0, len(byID))
	for _, id := range ids {
		if m := byID[id]; m != nil {
			msgs = append(msgs, *m)
		}
	}
	return msgs, nil
}
