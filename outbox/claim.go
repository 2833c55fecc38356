package outbox

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Exposure values of messages.exposure (see the 1 -> 2 migration).
const (
	exposureNone     = 0 // no attempt may have reached the receiver
	exposureUnderway = 1 // an attempt began (Claim) and its end is not recorded yet
	exposureMaybe    = 2 // an attempt may have reached the receiver
)

// beginAttemptQuery marks the start of an attempt: a message that was never
// sent is now under way; one already under way (the process died during an
// attempt) or possibly received counts as possibly received.
const beginAttemptQuery = `UPDATE messages SET exposure = iif(exposure = 0, 1, 2)
WHERE id IN (SELECT value FROM json_each(?)) AND state = 'pending'`

// Claim returns up to limit due messages, as Due does, and claims them for
// delivery in this process: until Release, Claim does not hand them out again
// and no transaction rewrites them (Tx.Waiting leaves them out). Before it
// returns, Claim records in the file that an attempt at each message has
// begun, so that a message whose attempt is cut short by a crash counts as
// possibly received (Message.Exposed) and keeps its delivery id and body.
// Mark the outcome with MarkDelivered, MarkRetry, MarkRefused, MarkDead,
// Split or EndAttempt, then Release the message.
//
// What Claim hands out is what the file holds when the attempt begins, in
// any process. Due reads a snapshot, and the write transaction that records
// the attempts checks each message again first: a message that another
// connection rewrote meanwhile (coalescing in `erpsync resync`: a new
// delivery id and body), deleted, or put behind an older pending message of
// one of its items (`erpsync outbox retry`) is not handed out as it was
// read. Then that transaction reads what is due once more, where nothing
// can change under it, and claims that instead, so that a busy writer in
// another process never starves delivery. From that transaction on, the
// messages are exposed in the file, and no connection rewrites them
// (Tx.Rewrite).
func (o *Outbox) Claim(ctx context.Context, now time.Time, limit int) ([]Message, error) {
	o.claimMu.Lock()
	msgs, err := o.Due(ctx, now, limit, o.claimed)
	if err == nil {
		for _, m := range msgs {
			o.claimed[m.ID] = true
		}
	}
	o.claimMu.Unlock()
	if err != nil || len(msgs) == 0 {
		return nil, err
	}
	if o.afterDue != nil {
		o.afterDue()
	}
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	var kept, more []Message
	list, err := jsonList(ids)
	if err == nil {
		err = o.write(ctx, func(tx *sql.Tx) error {
			kept, more = nil, nil
			st := bind(tx)
			var err error
			if kept, err = o.unchanged(ctx, st, list, msgs); err != nil {
				return err
			}
			if len(kept) < len(msgs) {
				if more, err = o.claimAgain(ctx, tx, now, limit-len(kept), msgs, kept); err != nil {
					return err
				}
			}
			begin := make([]int64, 0, len(kept)+len(more))
			for _, m := range kept {
				begin = append(begin, m.ID)
			}
			for _, m := range more {
				begin = append(begin, m.ID)
			}
			if len(begin) == 0 {
				return nil
			}
			blist, err := jsonList(begin)
			if err != nil {
				return err
			}
			_, err = st.get(ctx, o.stmts.beginAttempt).ExecContext(ctx, blist)
			return err
		}, "begin attempts at %d messages", len(ids))
	}
	if err != nil {
		for _, m := range more {
			ids = append(ids, m.ID)
		}
		o.Release(ids...)
		return nil, err
	}
	out := append(kept, more...)
	claimed := make(map[int64]bool, len(out))
	for i := range out {
		out[i].Exposed = true
		claimed[out[i].ID] = true
	}
	var changed []int64
	for _, id := range ids {
		if !claimed[id] {
			changed = append(changed, id)
		}
	}
	o.Release(changed...)
	if len(out) == 0 {
		return nil, nil
	}
	slices.SortFunc(out, func(a, b Message) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// claimAgain reads, in write transaction tx, up to limit due messages other
// than those claimed in this process, counting the ones of read that are not
// in kept as not claimed (they changed since read: claimAgain may find them
// again as they are now), and claims them.
func (o *Outbox) claimAgain(ctx context.Context, tx *sql.Tx, now time.Time, limit int, read, kept []Message) ([]Message, error) {
	o.claimMu.Lock()
	defer o.claimMu.Unlock()
	exclude := maps.Clone(o.claimed)
	for _, m := range read {
		delete(exclude, m.ID)
	}
	for _, m := range kept {
		exclude[m.ID] = true
	}
	more, err := o.due(ctx, dueIn(tx), now, limit, exclude)
	if err != nil {
		return nil, err
	}
	for _, m := range more {
		o.claimed[m.ID] = true
	}
	return more, nil
}

// claimCheckQuery lists, among the messages of the JSON array ?1, those
// still pending and not behind an older pending message of one of their
// items, with their delivery ids.
const claimCheckQuery = `SELECT m.id, m.delivery_id FROM messages AS m
WHERE m.id IN (SELECT value FROM json_each(?1)) AND m.state = 'pending' AND ` + notBlocked

// unchanged returns those of msgs (whose ids are the JSON array list) that
// are, in the write transaction st is bound to, still as Due read them:
// pending, not blocked, and under the same delivery id. A delivery id names
// one body and one list of items for good (Rewrite and RetryCurrent give a
// new one), so the same delivery id means the same content.
func (o *Outbox) unchanged(ctx context.Context, st *boundStmts, list string, msgs []Message) ([]Message, error) {
	rows, err := st.get(ctx, o.stmts.claimCheck).QueryContext(ctx, list)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	stored := make(map[int64]string, len(msgs))
	for rows.Next() {
		var id int64
		var did string
		if err := rows.Scan(&id, &did); err != nil {
			return nil, err
		}
		stored[id] = did
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	kept := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		if did, ok := stored[m.ID]; ok && did == m.DeliveryID {
			kept = append(kept, m)
		}
	}
	return kept, nil
}

// Release ends the claims on the given messages (see Claim).
func (o *Outbox) Release(ids ...int64) {
	o.claimMu.Lock()
	for _, id := range ids {
		delete(o.claimed, id)
	}
	o.claimMu.Unlock()
}

// Claimed returns the ids of the messages claimed in this process.
func (o *Outbox) Claimed() map[int64]bool {
	o.claimMu.Lock()
	defer o.claimMu.Unlock()
	c := make(map[int64]bool, len(o.claimed))
	for id := range o.claimed {
		c[id] = true
	}
	return c
}

// EndAttempt records how an attempt that Claim began ended, when none of the
// Mark methods records it: the message stays pending, its attempts and
// schedule unchanged (for example while delivery is paused by a 401).
// maybeReceived says whether the request may have reached the receiver; when
// false the message counts as never sent again, unless an earlier attempt
// may have reached the receiver. A message that is no longer pending is left
// as it is.
func (o *Outbox) EndAttempt(ctx context.Context, id int64, maybeReceived bool) error {
	return o.EndAttempts(ctx, []int64{id}, maybeReceived)
}

// EndAttempts is EndAttempt for several messages, in one transaction: for
// example the messages a delivery loop claimed but did not send before
// delivery was paused.
func (o *Outbox) EndAttempts(ctx context.Context, ids []int64, maybeReceived bool) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := jsonList(ids)
	if err != nil {
		return err
	}
	what, arg := "end attempt at message %d", any(ids[0])
	if len(ids) > 1 {
		what, arg = "end attempts at %d messages", len(ids)
	}
	return o.write(ctx, func(tx *sql.Tx) error {
		_, err := bind(tx).get(ctx, o.stmts.endAttempts).ExecContext(ctx, maybeReceived, list)
		return err
	}, what, arg)
}

const endAttemptsQuery = `UPDATE messages SET exposure = ` + endExposure + `
WHERE id IN (SELECT value FROM json_each(?2)) AND state = 'pending'`

// endExposure is the exposure after an attempt that ?1 says may (true) or
// may not (false) have reached the receiver.
const endExposure = `iif(?1, 2, iif(exposure = 1, 0, exposure))`

// Expedite makes every pending message whose next attempt is after now due
// at now, and returns how many it moved: when the ingestion endpoint is back
// after an outage, the backlog goes at full speed instead of waiting out each
// message's backoff.
func (o *Outbox) Expedite(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	at := now.UnixMilli()
	err := o.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages INDEXED BY messages_due SET next_attempt_at = ?1, updated_at = ?1
			WHERE state = 'pending' AND next_attempt_at > ?1`, at)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	}, "expedite pending messages")
	return n, err
}

// supersededQuery lists the items of message ?1 that a newer pending message
// also holds.
const supersededQuery = `SELECT mi.item_code FROM message_items AS mi
WHERE mi.message_id = ?1 AND EXISTS (
	SELECT 1 FROM message_items AS newer INDEXED BY message_items_pending
	WHERE newer.item_code = mi.item_code AND newer.pending = 1 AND newer.message_id > ?1)
ORDER BY mi.seq`

// Split replaces pending message id by the messages parts returns, as new
// pending messages due at now, in one transaction: for a batch the receiver
// refused as a whole (too large, or unprocessable because of one item).
// parts gets the items of the message that a newer pending message also
// holds: their state in message id is not the last one queued, and the parts
// must leave them out (ErrWrongState otherwise), because the parts come
// after every pending message in delivery order. With that, a part never
// goes after a newer state of one of its items. No parts deletes the
// message. The message must be pending.
func (o *Outbox) Split(ctx context.Context, id int64, now time.Time, parts func(superseded map[string]bool) ([]NewMessage, error)) error {
	return o.writeOn(ctx, o.w, func(tx *sql.Tx) error {
		superseded, err := querySuperseded(ctx, tx, id)
		if err != nil {
			return err
		}
		msgs, err := parts(superseded)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			for _, it := range m.Items {
				if superseded[it.Code] {
					return fmt.Errorf("item %s of part %s has a newer state pending: %w", it.Code, m.DeliveryID, ErrWrongState)
				}
			}
		}
		if err := o.transition(ctx, tx, id, `DELETE FROM messages WHERE id = ? AND state = 'pending'`, id); err != nil {
			return err
		}
		st := bind(tx)
		for _, m := range msgs {
			if _, err := o.addMessage(ctx, st, m, now, exposureNone); err != nil {
				return fmt.Errorf("add message %s: %w", m.DeliveryID, err)
			}
		}
		return nil
	}, "split message %d", id)
}

func querySuperseded(ctx context.Context, tx *sql.Tx, id int64) (map[string]bool, error) {
	rows, err := tx.QueryContext(ctx, supersededQuery, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	codes := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		codes[c] = true
	}
	return codes, rows.Err()
}
