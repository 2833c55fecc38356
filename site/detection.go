package site

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/retry"
	"github.com/orderweave/erpsync/internal/tick"
	"github.com/orderweave/erpsync/outbox"
)

// detection runs the initial snapshot once, then polls; between polls it
// walks a reconciliation sweep one page at a time when one is due.
type detection struct {
	det      *detector.Detector
	ob       *outbox.Outbox
	w        *writer
	logger   *slog.Logger
	interval time.Duration

	reconcileEvery time.Duration // 0: only on request
	started        func()        // called once the first poll is done (nil: nothing to tell)
	readsDone      func()        // called once the reads of the start are done (nil: nothing to tell)
	wake           chan struct{} // poll now (binary log watch)
	apply          chan func()   // settings changes, run between steps
	reconcileReq   atomic.Bool
	metrics        *siteMetrics
	sweep          *sweep       // the reconciliation in progress, if any
	heartbeat      atomic.Int64 // unix nanoseconds of the last sign of progress

	settingsFile string     // the settings file, for the fixes messages name
	refs         references // what the names the settings give last looked like

	// siteZone reads System Settings' time zone, which the detector follows
	// when erp.time_zone is empty; nil when erp.time_zone names the zone.
	siteZone func(ctx context.Context) (string, error)

	// safety, when set, says how often the site polls by itself: a server
	// probe (Servers) wakes it when its tables change, and this is the
	// safety net. Its polls come at an offset of the interval spread by
	// name (safetyOffset), so that the sites of a server spread over it.
	safety func() time.Duration
	name   string
	polls  atomic.Int64 // polls run, for Pipeline.Polls

	// dateDue is when, by this host's clock, the site's date next changes,
	// as the last followDate reckoned it from the database's clock: a site
	// that polls only on its safety net polls then, so that items due on
	// the new date do not wait for the net. Zero until followDate ran.
	dateDue time.Time

	// What detection learnt of the outbox's meta data, which no other
	// process writes: that the initial sync is done, and the site's date
	// whose due items were sent. A poll that finds nothing then reads
	// nothing of the outbox.
	synced   bool
	siteDate string
}

// dateMargin is how long after the reckoned change of date the site polls:
// enough for the database's clock, read a moment ago, to have passed it.
const dateMargin = 500 * time.Millisecond

// zoneCheckEvery is how often detection looks whether System Settings' time
// zone changed.
const zoneCheckEvery = 10 * time.Second

// beat records progress.
func (r *detection) beat() { r.heartbeat.Store(time.Now().UnixNano()) }

// Wake makes the detector poll now instead of at the next interval.
func (r *detection) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// do runs fn on the detection goroutine between two steps.
func (r *detection) do(fn func()) {
	r.apply <- fn
	r.Wake()
}

// requestReconcile starts a reconciliation sweep at the next step.
func (r *detection) requestReconcile() {
	r.reconcileReq.Store(true)
	r.Wake()
}

// run detects until ctx ends: the initial snapshot, then a poll every
// interval or when woken, and a sweep page between polls while one is due.
func (r *detection) run(ctx context.Context) error {
	var outage retry.Outage
	var cursors map[string]detector.Cursor
	nextReconcile := time.Now().Add(r.reconcileEvery)
	woken := false // by a commit (erp.watch) rather than the poll timer
	var lastFull time.Time
	zoneChecked := time.Now()
	firstDone := false
	why := "start" // what brought this step, for the DEBUG log
	for attempt := 0; ; {
		r.beat()
		r.logger.Debug("detection step", "why", why)
		for len(r.apply) > 0 {
			(<-r.apply)()
		}
		if r.sweep == nil && (r.reconcileReq.Swap(false) || (r.reconcileEvery > 0 && time.Now().After(nextReconcile))) {
			r.sweep = &sweep{started: time.Now()}
			nextReconcile = time.Now().Add(r.reconcileEvery)
			r.logger.Info("reconciliation started: comparing every item with the last state sent")
		}
		// A wake by a commit reads only new rows; the overlap window is
		// re-read at least every poll interval, however often commits wake us.
		tail := woken && time.Since(lastFull) < r.interval
		err := r.step(ctx, &cursors, tail)
		if err == nil && !tail {
			lastFull = time.Now()
			err = r.followDate(ctx)
			if err == nil {
				err = r.checkReferences(ctx)
			}
		}
		if err == nil && r.sweep != nil {
			err = r.sweepPage(ctx)
		}
		if err == nil && !firstDone {
			// The reads of the start are done (cursors, the state of the
			// site, what is due): a quiet site needs its outbox no more,
			// and the next site may start.
			firstDone = true
			for _, tell := range []func(){r.readsDone, r.started} {
				if tell != nil {
					tell()
				}
			}
		}
		if err == nil && r.siteZone != nil && time.Since(zoneChecked) >= zoneCheckEvery {
			zoneChecked = time.Now()
			if changed, zerr := r.followZone(ctx); zerr != nil {
				err = zerr
			} else if changed {
				return errZoneChanged
			}
		}
		wait, from, own := r.interval, time.Now(), false
		why = "poll interval"
		if r.safety != nil {
			wait, own, why = ownPollWait(from, r.safety(), r.interval, r.name), true, "safety net"
		}
		if !r.dateDue.IsZero() {
			if d := max(time.Until(r.dateDue), 0) + dateMargin; d < wait {
				wait, own, why = d, false, "date changes"
			}
		}
		switch {
		case ctx.Err() != nil:
			r.stopping(ctx)
			return nil
		case err != nil:
			attempt++
			outage.Failed(r.logger, "detection", err)
			wait, own, why = retry.Backoff(attempt, 5*time.Second), false, "retry" // short: a database or disk back from an outage should be used at once
		default:
			attempt = 0
			outage.Recovered(r.logger, "detection")
			if r.sweep != nil {
				wait, own, why = 0, false, "sweep" // keep sweeping, a page per poll
			}
		}
		timer := time.NewTimer(wait)
		for waiting := true; waiting; {
			waiting = false
			select {
			case <-ctx.Done():
				timer.Stop()
				r.stopping(ctx)
				return nil
			case <-timer.C:
				woken = false
				// The safety net grows with the sites of the server, which
				// join one by one at start: an own poll reckoned with fewer
				// waits on for its phase of the net as it is now.
				if own {
					if left := ownPollLeft(from, time.Now(), r.safety(), r.interval, r.name); left > 0 {
						timer.Reset(left)
						waiting = true
					}
				}
			case <-r.wake:
				timer.Stop()
				woken = err == nil && r.sweep == nil
				why = "woken"
			}
		}
	}
}

// ownPollWait is how long from now a site polled by a server probe waits
// for its own poll, the safety net of every: until its own phase of every,
// spread by its name, whatever woke it in between (the probe wakes every
// site at its start, and a net counted from each site's last poll would
// then bring them all back at once), on the grid of the poll interval,
// which the probe shares, so that hundreds of sites' own polls wake the
// process with the probe, not each at its own moment.
func ownPollWait(now time.Time, every, interval time.Duration, name string) time.Duration {
	wait := tick.UntilNext(now.Add(-safetyOffset(every, name)), every)
	return wait + tick.UntilNext(now.Add(wait), interval)
}

// ownPollLeft is how much longer than until now a site that reckoned its own
// poll at from (ownPollWait) waits, with the safety net every as it is now:
// none while every is what it was then.
func ownPollLeft(from, now time.Time, every, interval time.Duration, name string) time.Duration {
	return max(from.Add(ownPollWait(from, every, interval, name)).Sub(now), 0)
}

// stopping stores what detection holds in memory only (the positions of
// polls that found nothing), as the run ends with ctx.
func (r *detection) stopping(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.w.storeHeld(ctx); err != nil {
		r.logger.Warn("stopping: the next start polls again from earlier positions", "err", err)
	}
}

// step does one unit of detection: the whole initial snapshot (resumable), or
// one poll of every source.
func (r *detection) step(ctx context.Context, cursors *map[string]detector.Cursor, tail bool) error {
	if *cursors == nil {
		cs, err := r.loadCursors(ctx)
		if err != nil {
			return err
		}
		*cursors = cs
	}
	if !r.synced {
		done, _, err := r.ob.Meta(ctx, metaInitialSyncDone)
		if err != nil {
			return err
		}
		if done != "1" {
			return r.snapshot(ctx)
		}
		r.synced = true
	}
	poll := r.det.Poll
	if tail {
		poll = r.det.PollTail // woken by a commit: new rows only; the timer's full poll re-reads the overlap
	}
	next, err := poll(ctx, *cursors, r.write)
	*cursors = next
	if err == nil {
		r.polls.Add(1)
		r.metrics.polled(time.Now())
	}
	return err
}

// errZoneChanged ends a run whose site changed its time zone: the next run
// reads in the new one.
var errZoneChanged = fmt.Errorf("System Settings' time zone changed: %w", errSettingsChanged)

// followZone reads System Settings' time zone and, when it is no longer the
// detector's, moves the stored cursors so that no row is missed and reports
// the change. ERPNext stamps `modified` in the site's zone: a cursor naive in
// the old zone is moved back to the same instant in the new zone when that
// reads earlier (the new zone is behind), and left where it is otherwise, so
// rows stamped in either zone after it are read; rows read twice are dropped
// by their content hash.
func (r *detection) followZone(ctx context.Context) (bool, error) {
	name, err := r.siteZone(ctx)
	if err != nil {
		return false, err
	}
	old := r.det.Location()
	if name == old.String() {
		return false, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		r.logger.Error("System Settings names a time zone that is not an IANA name: still reading in the old one; fix it in ERPNext or set erp.time_zone",
			"time_zone", name, "err", err)
		return false, nil
	}
	stored, err := r.ob.Cursors(ctx)
	if err != nil {
		return false, err
	}
	err = r.ob.Update(ctx, func(tx *outbox.Tx) error {
		for _, c := range stored {
			at, err := time.ParseInLocation(detector.ModifiedLayout, c.Modified, old)
			if err != nil {
				continue // not a time: leave it
			}
			if moved := at.In(loc).Format(detector.ModifiedLayout); moved < c.Modified {
				if err := tx.SetCursor(ctx, outbox.Cursor{Source: c.Source, Modified: moved}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("move the cursors to time zone %s: %w", name, err)
	}
	r.logger.Warn("System Settings' time zone changed: detection starts again in the new zone, its cursors moved so that no change is missed",
		"from", old.String(), "to", name)
	return true, nil
}

// loadCursors reads the stored cursors; on the first start it stores the
// detector's start cursors first, so that changes made during the initial
// snapshot are polled after it. A standby taking over (deleteUnsent) has the
// first poll read the overlap window again: the other host sent items that
// were deleted, renamed or deselected there, which the snapshot cannot send.
func (r *detection) loadCursors(ctx context.Context) (map[string]detector.Cursor, error) {
	stored, err := r.ob.Cursors(ctx)
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		start, err := r.det.StartCursors(ctx, !r.w.deleteUnsent)
		if err != nil {
			return nil, err
		}
		err = r.ob.Update(ctx, func(tx *outbox.Tx) error {
			for src, c := range start {
				if err := tx.SetCursor(ctx, outbox.Cursor{Source: src, Modified: c.Modified, Name: c.Name}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("store start cursors: %w", err)
		}
		if stored, err = r.ob.Cursors(ctx); err != nil {
			return nil, err
		}
	}
	cs := make(map[string]detector.Cursor, len(stored))
	for src, c := range stored {
		cs[src] = detector.Cursor{Modified: c.Modified, Name: c.Name}
	}
	return cs, nil
}

// write stores a detector batch in the outbox and records it in the metrics.
func (r *detection) write(ctx context.Context, b detector.Batch) error {
	n, err := r.w.write(ctx, b)
	if err == nil {
		r.metrics.queuedBatch(b, n, r.det.Location(), time.Now())
	}
	return err
}

// snapshot sends every item once, resuming after the last item stored.
func (r *detection) snapshot(ctx context.Context) error {
	after, _, err := r.ob.Meta(ctx, metaInitialSyncAfter)
	if err != nil {
		return err
	}
	start := time.Now()
	r.logger.Info("initial sync: sending every item once", "resume_after", after)
	seen, queued := 0, 0
	err = r.det.Snapshot(ctx, after, func(ctx context.Context, b detector.Batch) error {
		n, err := r.w.write(ctx, b)
		if err != nil {
			return err
		}
		r.metrics.queuedBatch(b, n, r.det.Location(), time.Now())
		r.beat()
		seen += len(b.Items)
		queued += n
		r.logger.Info("initial sync progress", "items_read", seen, "queued", queued, "last_item", b.After)
		return nil
	})
	if err != nil {
		return err
	}
	if err := r.ob.Update(ctx, func(tx *outbox.Tx) error { return tx.SetMeta(ctx, metaInitialSyncDone, "1") }); err != nil {
		return err
	}
	r.logger.Info("initial sync done", "items_read", seen, "queued", queued, "duration", time.Since(start).Round(time.Millisecond).String())
	return nil
}
