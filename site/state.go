package site

import (
	"context"
	"strings"
	"time"

	"github.com/orderweave/erpsync/outbox"
)

// metaDown is the outbox meta key where a site that cannot start records
// since when and why ("<RFC 3339 time>\t<reason>"); empty while it runs.
const metaDown = "site_down"

// Down reports whether the site is down (it could not start, and Run tries
// again with backoff), since when and why. A site that is starting or
// running is not down.
func (p *Pipeline) Down() (down bool, since time.Time, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down == nil {
		return false, time.Time{}, ""
	}
	return true, p.down.since, p.down.reason
}

// setState records that the site runs (err nil) or is down because of err:
// in memory for Down, in the metrics, and in the outbox when it is open, for
// `erpsync status` in another process.
func (p *Pipeline) setState(ctx context.Context, err error) {
	p.mu.Lock()
	switch {
	case err == nil:
		p.down = nil
	case p.down == nil:
		p.down = &siteDown{since: p.opts.Now(), reason: err.Error()}
	default:
		p.down.reason = err.Error() // same outage, maybe another reason
	}
	down, ob := p.down, p.ob
	p.mu.Unlock()
	p.metrics.up(down == nil)
	if ob == nil {
		return // the outbox itself could not be opened: the log says why
	}
	value := ""
	if down != nil {
		value = down.since.UTC().Format(time.RFC3339) + "\t" + down.reason
	}
	// Most starts find the value stored already (a site that ran before):
	// a read then spares a commit, which would make the outbox's other
	// connections open again.
	if stored, _, err := ob.Meta(ctx, metaDown); err == nil && stored == value {
		return
	}
	if werr := ob.Update(ctx, func(tx *outbox.Tx) error { return tx.SetMeta(ctx, metaDown, value) }); werr != nil && ctx.Err() == nil {
		p.logger.Warn("record the site's state in the outbox failed", "err", werr)
	}
}

// State reads from the outbox of a site whether the daemon found it down,
// since when and why (`erpsync status`).
func State(ctx context.Context, ob *outbox.Outbox) (down bool, since time.Time, reason string, err error) {
	v, _, err := ob.Meta(ctx, metaDown)
	if err != nil || v == "" {
		return false, time.Time{}, "", err
	}
	at, why, _ := strings.Cut(v, "\t")
	since, _ = time.Parse(time.RFC3339, at)
	return true, since, why, nil
}
