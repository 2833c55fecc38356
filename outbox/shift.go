package outbox

import (
	"context"
	"database/sql"
	"time"
)

// ShiftSchedule moves the next attempt of every pending message that is not
// due yet earlier by by, but not before now: for a clock that stepped back by
// that much, so that no waiting message waits out the step. It returns how
// many messages moved.
func (o *Outbox) ShiftSchedule(ctx context.Context, now time.Time, by time.Duration) (int64, error) {
	if by <= 0 {
		return 0, nil
	}
	var n int64
	at, shift := now.UnixMilli(), by.Milliseconds()
	err := o.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages INDEXED BY messages_due SET next_attempt_at = max(next_attempt_at - ?2, ?1)
			WHERE state = 'pending' AND next_attempt_at > ?1`, at, shift)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	}, "move the schedule of pending messages after the clock stepped back")
	return n, err
}
