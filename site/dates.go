package site

import (
	"context"
	"fmt"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/outbox"
)

// metaSiteDate is the site's date (YYYY-MM-DD) whose due items were sent.
const metaSiteDate = "site_date"

// originDate names the batches sent because the site's date changed.
const originDate = "date"

// followDate sends again, once the site's date has changed, every item whose
// effective price or sale state changes on a date that has now come with no
// row changing (outbox ItemState.ChangesOn: a price's validity window opens or
// closes, an end of life is reached). The date is the site's by the database
// server's clock (detector Now), never this host's. The items come from an
// index range of the outbox, so the work grows with the items due, not with the
// catalogue. They are built afresh and queued even when their content did not
// change (an end of life changes no field the item carries), each with a new
// version. A date missed while erpsync was stopped is caught up at start: every
// date up to today is due. It stores the date once all due items are queued;
// interrupted, it starts over, and items queued already are queued again.
func (r *detection) followDate(ctx context.Context) error {
	now, err := r.det.Now(ctx)
	if err != nil {
		return err
	}
	today := now[:10]
	r.dateDue = nextDate(now, r.det.Location(), time.Now())
	last, ok := r.siteDate, r.siteDate != ""
	if !ok {
		if last, ok, err = r.ob.Meta(ctx, metaSiteDate); err != nil {
			return err
		}
		r.siteDate = last
	}
	if ok && today <= last {
		return nil // the same day, or the database's clock went back
	}
	if ok {
		start := time.Now()
		n, err := r.sendDue(ctx, today)
		if err != nil {
			return fmt.Errorf("send the items whose price or sale state changes on %s: %w", today, err)
		}
		r.logger.Info("the site's date changed: items whose effective price or sale state changes on it were sent again",
			"date", today, "since", last, "items", n, "duration", time.Since(start).Round(time.Millisecond).String())
	}
	if err := r.ob.Update(ctx, func(tx *outbox.Tx) error { return tx.SetMeta(ctx, metaSiteDate, today) }); err != nil {
		return err
	}
	r.siteDate = today
	return nil
}

// nextDate returns when, by the clock that reads at, the date of now (the
// site's time by the database's clock, detector ModifiedLayout, in loc)
// changes: at the next midnight in loc. It returns the zero time when now
// does not parse.
func nextDate(now string, loc *time.Location, at time.Time) time.Time {
	t, err := time.ParseInLocation(detector.ModifiedLayout, now, loc)
	if err != nil {
		return time.Time{}
	}
	y, m, d := t.Date()
	return at.Add(time.Date(y, m, d+1, 0, 0, 0, 0, loc).Sub(t))
}

// sendDue builds and queues, a page at a time, the items due on or before
// today, and returns how many it built.
func (r *detection) sendDue(ctx context.Context, today string) (int, error) {
	forced := *r.w
	forced.force = true
	after, n := "", 0
	for {
		codes, err := r.ob.DueItems(ctx, today, after, r.det.PageSize())
		if err != nil || len(codes) == 0 {
			return n, err
		}
		readAt := time.Now()
		items, err := r.det.Build(ctx, codes)
		if err != nil {
			return n, err
		}
		b := detector.Batch{Items: items, Origin: originDate}
		queued, err := forced.writeRead(ctx, b, readAt)
		if err != nil {
			return n, err
		}
		r.metrics.queuedBatch(b, queued, r.det.Location(), time.Now())
		r.beat()
		n += len(items)
		after = codes[len(codes)-1]
	}
}
