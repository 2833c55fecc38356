package outbox

import (
	"context"
	"database/sql"
)

// LiveItems returns up to limit item codes, in code order after after, whose
// last queued state is not a delete, or is a delete that went dead: the
// items the receiver may hold.
// A reconciliation sweep walks them to find items that were deleted or
// renamed without a trace.
func (o *Outbox) LiveItems(ctx context.Context, after string, limit int) ([]string, error) {
	var codes []string
	err := o.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx,
			"SELECT item_code FROM items WHERE deleted = 0 AND item_code > ? ORDER BY item_code LIMIT ?", after, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				return err
			}
			codes = append(codes, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, o.errorf(err, "list live items after %q", after)
	}
	return codes, nil
}

// PurgeDead deletes the dead messages among ids (with their item lists) and
// returns how many it deleted. Messages in other states are left alone.
func (o *Outbox) PurgeDead(ctx context.Context, ids []int64) (int64, error) {
	list, err := jsonList(ids)
	if err != nil {
		return 0, o.errorf(err, "purge dead messages")
	}
	var n int64
	err = o.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE state = 'dead' AND id IN (SELECT value FROM json_each(?))`, list)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	}, "purge dead messages")
	return n, err
}
