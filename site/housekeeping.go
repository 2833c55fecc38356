package site

import (
	"context"
	"time"

	"github.com/orderweave/erpsync/internal/tick"
	"github.com/orderweave/erpsync/outbox"
)

// housekeepingEvery is how often the outbox is pruned and its backlog checked.
const housekeepingEvery = time.Minute

// housekeepingIdleEvery is how often an idle outbox (nothing pending or
// dead, no commit since) is pruned all the same: delivered messages pass
// outbox.retention with no commit.
const housekeepingIdleEvery = time.Hour

// alarmRepeat is how often a persisting backlog alarm is logged again.
const alarmRepeat = 10 * time.Minute

// housekeeping prunes delivered messages older than outbox.retention (dead
// letters stay until retried or purged) and logs an alarm while the backlog
// is past outbox.alarm_pending messages or outbox.alarm_age old.
//
// A round is skipped while nothing can have changed: no commit reached the
// outbox since the last round (outbox Stamp), which found no message
// pending or dead, less than housekeepingIdleEvery ago. An idle site, of
// hundreds in one process, then costs two stat calls a minute, and its
// outbox's connections close (with the memory they hold). firstRound is
// called once the first round is done.
func (p *Pipeline) housekeeping(ctx context.Context, ob *outbox.Outbox, firstRound func()) {
	defer firstRound() // also when ctx ended first
	var alarmedAt, full time.Time
	var stamp outbox.Mark
	for {
		// The mark is read before the round, so that a commit during it
		// (another process's) brings the next one.
		if mark := ob.Stamp(); mark.CommittedSince(stamp) || time.Since(full) >= housekeepingIdleEvery || !p.outboxClean() {
			alarmedAt = p.housekeep(ctx, ob, alarmedAt)
			full, stamp = time.Now(), mark
		}
		firstRound()
		// On a grid shared by every site of the process: their rounds
		// wake it together.
		t := time.NewTimer(tick.UntilNext(time.Now(), p.opts.HousekeepingEvery))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// housekeep does one round and returns when the alarm was last logged (zero
// when there is no alarm).
func (p *Pipeline) housekeep(ctx context.Context, ob *outbox.Outbox, alarmedAt time.Time) time.Time {
	p.rounds.Add(1)
	cfg := p.config()
	now := p.opts.Now()
	if cfg.Outbox.Retention > 0 {
		n, err := ob.PruneDelivered(ctx, now.Add(-cfg.Outbox.Retention))
		switch {
		case err != nil && ctx.Err() == nil:
			p.logger.Error("prune delivered messages failed; will try again", "err", err)
		case n > 0:
			p.logger.Info("pruned delivered messages", "count", n, "older_than", cfg.Outbox.Retention.String())
		}
	}
	st, err := ob.Stats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.logger.Error("read outbox stats failed", "err", err)
		}
		p.clean.Store(false)
		return alarmedAt
	}
	p.clean.Store(st.Pending == 0 && st.Dead == 0)
	// The age of the oldest change the receiver does not have: pending or
	// dead.
	var age time.Duration
	for _, t := range []time.Time{st.OldestPending, st.OldestDead} {
		if !t.IsZero() {
			age = max(age, now.Sub(t))
		}
	}
	// A dead letter is a change the receiver does not have until an
	// operator acts: it counts with the pending messages, and any at all
	// raise the alarm.
	over := (cfg.Outbox.AlarmPending > 0 && st.Pending+st.Dead > int64(cfg.Outbox.AlarmPending)) ||
		(cfg.Outbox.AlarmAge > 0 && age > cfg.Outbox.AlarmAge) || st.Dead > 0
	switch {
	case over && (alarmedAt.IsZero() || now.Sub(alarmedAt) >= alarmRepeat):
		msg := "outbox backlog alarm: messages are waiting longer or in larger numbers than outbox.alarm_pending / outbox.alarm_age allow; check the ingestion service and the HMAC lines of this log"
		if st.Dead > 0 {
			msg = "outbox backlog alarm: dead letters hold changes the receiver does not have (erpsync outbox list; fix the cause, then erpsync outbox retry or erpsync resync --item), or messages are waiting longer or in larger numbers than outbox.alarm_pending / outbox.alarm_age allow"
		}
		p.logger.Warn(msg, "pending", st.Pending, "oldest_pending_age", age.Round(time.Second).String(), "dead", st.Dead)
		return now
	case over:
		return alarmedAt
	case !alarmedAt.IsZero():
		p.logger.Info("outbox backlog back to normal", "pending", st.Pending, "dead", st.Dead)
	}
	return time.Time{}
}

// outboxClean reports whether the last housekeeping round found no message
// pending or dead.
func (p *Pipeline) outboxClean() bool { return p.clean.Load() }
