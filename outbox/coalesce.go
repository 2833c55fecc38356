package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// newestPendingQuery lists, for each item code of the JSON array ?1, the
// newest pending message holding it.
const newestPendingQuery = `SELECT mi.item_code, max(mi.message_id) FROM message_items AS mi INDEXED BY message_items_pending
WHERE mi.item_code IN (SELECT value FROM json_each(?1)) AND mi.pending = 1
GROUP BY mi.item_code`

// PendingItems returns which of the given items a pending message holds
// (claimed or not, exposed or not). A new message whose items it leaves out
// can go to delivery at once (AddClaimedMessage).
func (tx *Tx) PendingItems(ctx context.Context, codes []string) (map[string]bool, error) {
	list, err := jsonList(codes)
	if err != nil {
		return nil, tx.fail(tx.o.errorf(err, "read pending items"))
	}
	rows, err := tx.tx.QueryContext(ctx, newestPendingQuery, list)
	if err != nil {
		return nil, tx.fail(tx.o.errorf(err, "read pending items"))
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var code string
		var id int64
		if err := rows.Scan(&code, &id); err != nil {
			return nil, tx.fail(tx.o.errorf(err, "read pending items"))
		}
		out[code] = true
	}
	if err := rows.Err(); err != nil {
		return nil, tx.fail(tx.o.errorf(err, "read pending items"))
	}
	return out, nil
}

// Waiting returns the messages that a newer state of the given items may
// still replace in, by item code: for each code, the newest pending message
// holding it, when that message is not claimed (Claim) and no attempt at it
// may have reached the receiver (not Exposed). Codes without such a message
// are absent. Messages come with their bodies and items; several codes may
// share one message.
//
// From the first call until Update ends, Claim waits: what Waiting returned
// is not handed out for delivery before this transaction has committed or
// rolled back, so Rewrite and DropMessage never change a message in flight.
func (tx *Tx) Waiting(ctx context.Context, codes []string) (map[string]Message, error) {
	tx.lockClaims()
	out, err := tx.waiting(ctx, codes)
	if err != nil {
		return nil, tx.fail(tx.o.errorf(err, "read waiting messages"))
	}
	return out, nil
}

func (tx *Tx) waiting(ctx context.Context, codes []string) (map[string]Message, error) {
	list, err := jsonList(codes)
	if err != nil {
		return nil, err
	}
	rows, err := tx.tx.QueryContext(ctx, newestPendingQuery, list)
	if err != nil {
		return nil, err
	}
	newest := map[string]int64{}
	var ids []int64
	seen := map[int64]bool{}
	for rows.Next() {
		var code string
		var id int64
		if err := rows.Scan(&code, &id); err != nil {
			rows.Close()
			return nil, err
		}
		if tx.o.claimed[id] {
			continue
		}
		newest[code] = id
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	msgs, err := loadMessagesWith(ctx, sqlQuery{tx.tx, messagesByIDQuery}, sqlQuery{tx.tx, itemsByIDQuery}, ids, true)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]Message, len(msgs))
	for _, m := range msgs {
		if m.State == Pending && !m.Exposed {
			byID[m.ID] = m
		}
	}
	out := make(map[string]Message, len(newest))
	for code, id := range newest {
		if m, ok := byID[id]; ok {
			out[code] = m
		}
	}
	return out, nil
}

// lockClaims makes Claim wait until the transaction ends.
func (tx *Tx) lockClaims() {
	if !tx.claimsLocked {
		tx.o.claimMu.Lock()
		tx.claimsLocked = true
	}
}

// Rewrite gives message id, which Waiting returned in this transaction, a
// new delivery id, items and body, for example with a newer state of one of
// its items in place of the old one. The message keeps its place in delivery
// order (its id), its next attempt time and its attempts; it counts as never
// sent under the new delivery id. m follows AddMessage's rules. ErrWrongState
// when the message is not pending, is claimed, or an attempt at it may have
// reached the receiver: its delivery id must keep its body.
func (tx *Tx) Rewrite(ctx context.Context, id int64, m NewMessage, now time.Time) error {
	tx.lockClaims()
	if err := tx.rewrite(ctx, id, m, now); err != nil {
		return tx.fail(tx.o.errorf(err, "rewrite message %d as %s", id, m.DeliveryID))
	}
	return nil
}

func (tx *Tx) rewrite(ctx context.Context, id int64, m NewMessage, now time.Time) error {
	if err := validMessage(m); err != nil {
		return err
	}
	if err := tx.rewritable(ctx, id); err != nil {
		return err
	}
	return tx.o.replaceContent(ctx, tx.tx, tx.st, id, m, now)
}

// replaceContent gives message id the delivery id, body and items of m, and
// makes it count as never sent (exposure 0): its new delivery id was never
// sent. Its state, attempts and schedule stay.
func (o *Outbox) replaceContent(ctx context.Context, tx *sql.Tx, st *boundStmts, id int64, m NewMessage, now time.Time) error {
	inline, separate := splitBody(m.Body)
	if _, err := tx.ExecContext(ctx, `UPDATE messages SET delivery_id = ?, body = ?, exposure = 0, updated_at = ? WHERE id = ?`,
		m.DeliveryID, inline, now.UnixMilli(), id); err != nil {
		return err
	}
	var err error
	if separate != nil {
		_, err = tx.ExecContext(ctx, `INSERT INTO message_bodies (message_id, body) VALUES (?, ?)
			ON CONFLICT (message_id) DO UPDATE SET body = excluded.body`, id, separate)
	} else {
		_, err = tx.ExecContext(ctx, `DELETE FROM message_bodies WHERE message_id = ?`, id)
	}
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM message_items WHERE message_id = ?`, id); err != nil {
		return err
	}
	return o.insertItems(ctx, st, id, m.Items)
}

// DropMessage deletes message id, which Waiting returned in this
// transaction, when newer states have taken the place of all its items.
// ErrWrongState as for Rewrite.
func (tx *Tx) DropMessage(ctx context.Context, id int64) error {
	tx.lockClaims()
	err := tx.rewritable(ctx, id)
	if err == nil {
		_, err = tx.tx.ExecContext(ctx, `DELETE FROM messages WHERE id = ?`, id)
	}
	if err != nil {
		return tx.fail(tx.o.errorf(err, "drop message %d", id))
	}
	return nil
}

// rewritable checks that message id is pending, unclaimed and never exposed.
func (tx *Tx) rewritable(ctx context.Context, id int64) error {
	if tx.o.claimed[id] {
		return fmt.Errorf("message is in flight: %w", ErrWrongState)
	}
	var state State
	var exposure int
	err := tx.tx.QueryRowContext(ctx, `SELECT state, exposure FROM messages WHERE id = ?`, id).Scan(&state, &exposure)
	switch {
	case errors.Is(err, errNoRows):
		return ErrNotFound
	case err != nil:
		return err
	case state != Pending:
		return fmt.Errorf("message is %s: %w", state, ErrWrongState)
	case exposure != exposureNone:
		return fmt.Errorf("an attempt at the message may have reached the receiver: %w", ErrWrongState)
	}
	return nil
}
