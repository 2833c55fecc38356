package site

import (
	"context"
	"time"

	"github.com/orderweave/erpsync/detector"
)

// sweep is a reconciliation in progress. It catches what ERPNext changes
// without moving `modified` (renames, raw-SQL price and stock writes, Bin and
// Item Price rows deleted with their item): first every item of the site is
// built and compared with the last state queued (changed ones are sent), then
// every item the receiver holds is checked to still exist (gone ones get a
// delete; a renamed item is a delete of the old name and an upsert of the new).
// It advances one page per detection step, so polling goes on meanwhile and
// memory stays bounded by the page size.
type sweep struct {
	started      time.Time
	checkingGone bool   // second phase: looking for items that disappeared
	after        string // last item code done in this phase
	read, queued int
}

// sweepPage does one page of the sweep in progress.
func (r *detection) sweepPage(ctx context.Context) error {
	s := r.sweep
	page := r.det.PageSize()
	if !s.checkingGone {
		items, last, err := r.det.SnapshotPage(ctx, s.after)
		if err != nil {
			return err
		}
		if len(items) > 0 {
			b := detector.Batch{Items: items, Origin: "reconcile"}
			n, err := r.w.write(ctx, b)
			if err != nil {
				return err
			}
			r.metrics.queuedBatch(b, n, r.det.Location(), time.Now())
			s.read += len(items)
			s.queued += n
			s.after = last
		}
		if len(items) < page {
			s.checkingGone, s.after = true, ""
		}
		return nil
	}
	codes, err := r.ob.LiveItems(ctx, s.after, page)
	if err != nil {
		return err
	}
	if len(codes) > 0 {
		items, err := r.det.Build(ctx, codes)
		if err != nil {
			return err
		}
		var gone []detector.Item
		for _, it := range items {
			if it.Deleted {
				gone = append(gone, it)
			}
		}
		b := detector.Batch{Items: gone, Origin: "reconcile"}
		n, err := r.w.write(ctx, b)
		if err != nil {
			return err
		}
		r.metrics.queuedBatch(b, n, r.det.Location(), time.Now())
		s.queued += n
		s.after = codes[len(codes)-1]
	}
	if len(codes) < page {
		if err := r.retryQuarantined(ctx); err != nil {
			return err
		}
		r.logger.Info("reconciliation done", "items_read", s.read, "changes_sent", s.queued,
			"duration", time.Since(s.started).Round(time.Millisecond).String())
		r.sweep = nil
	}
	return nil
}

// retryQuarantined builds the quarantined items again, so that an item that
// builds now is sent and one that no longer exists under its code (renamed or
// deleted) leaves the quarantine.
func (r *detection) retryQuarantined(ctx context.Context) error {
	quarantined, _, err := Quarantined(ctx, r.ob)
	if err != nil || len(quarantined) == 0 {
		return err
	}
	codes := make([]string, len(quarantined))
	for i, q := range quarantined {
		codes[i] = q.Code
	}
	items, err := r.det.Build(ctx, codes)
	if err != nil {
		return err
	}
	b := detector.Batch{Items: items, Origin: "reconcile"}
	n, err := r.w.write(ctx, b)
	if err != nil {
		return err
	}
	r.metrics.queuedBatch(b, n, r.det.Location(), time.Now())
	r.sweep.queued += n
	return nil
}
