package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/orderweave/erpsync/client"
	"github.com/orderweave/erpsync/outbox"
)

// dispatcher hands due outbox messages to the client, at most concurrency at
// a time, and records each outcome in the outbox. The outbox owns the long
// retry schedule; the client only retries a short burst within one attempt.
//
// A newer state of an item is never delivered before an older one: Due skips
// messages holding an item of an older pending message, and in-flight
// messages stay pending until their outcome is stored.
type dispatcher struct {
	ob          *outbox.Outbox
	client      *client.Client
	logger      *slog.Logger
	concurrency int
	maxWait     time.Duration // cap of the retry schedule
	grace       time.Duration // how long in-flight requests may finish after shutdown begins
	now         func() time.Time
	tenant      string

	wake chan struct{} // new messages, or a slot came free

	mu          sync.Mutex
	inflight    map[int64]bool
	pausedUntil time.Time // after 401/403: no delivery but one probe at a time
	authFails   int
	transient   int  // consecutive transient failures: above downAfter, one probe at a time
	gone        bool // 410: stop until restart
}

const (
	downAfter   = 3               // consecutive transient failures before the endpoint counts as down
	idleRecheck = 5 * time.Second // longest sleep between looks at the outbox
)

func newDispatcher(ob *outbox.Outbox, c *client.Client, logger *slog.Logger, tenant string, concurrency int, maxWait time.Duration) *dispatcher {
	return &dispatcher{
		ob: ob, client: c, logger: logger, tenant: tenant, concurrency: concurrency, maxWait: maxWait,
		grace: 5 * time.Second, now: time.Now,
		wake: make(chan struct{}, 1), inflight: map[int64]bool{},
	}
}

// Wake tells the dispatcher that new messages may be due.
func (d *dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is done. Requests in flight then get d.grace to
// finish; whatever does not finish stays pending and is sent again, with the
// same delivery id, after a restart.
func (d *dispatcher) Run(ctx context.Context) error {
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()
	var wg sync.WaitGroup
	defer func() {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(d.grace):
			cancelReqs()
			<-done
		}
	}()
	for {
		wait, err := d.dispatch(ctx, reqCtx, &wg)
		if err != nil {
			d.logger.Error("outbox read failed; retrying", "err", err)
			wait = time.Second
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-d.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// dispatch starts what is due and returns how long to sleep at most.
func (d *dispatcher) dispatch(ctx, reqCtx context.Context, wg *sync.WaitGroup) (time.Duration, error) {
	now := d.now()
	d.mu.Lock()
	limit := d.concurrency - len(d.inflight)
	switch {
	case d.gone:
		limit = 0
	case now.Before(d.pausedUntil):
		wait := d.pausedUntil.Sub(now)
		d.mu.Unlock()
		return wait, nil
	case d.authFails > 0 || d.transient >= downAfter:
		limit = min(limit, 1-len(d.inflight)) // probe: one at a time
	}
	exclude := make(map[int64]bool, len(d.inflight))
	for id := range d.inflight {
		exclude[id] = true
	}
	d.mu.Unlock()
	if limit <= 0 {
		return idleRecheck, nil // a finishing delivery wakes us
	}
	msgs, err := d.ob.Due(ctx, now, limit, exclude)
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		d.mu.Lock()
		d.inflight[m.ID] = true
		d.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.deliver(reqCtx, m)
			d.mu.Lock()
			delete(d.inflight, m.ID)
			d.mu.Unlock()
			d.Wake()
		}()
	}
	if len(msgs) > 0 {
		return 0, nil // look again at once: more may be due than limit allowed
	}
	d.mu.Lock()
	for id := range d.inflight {
		exclude[id] = true
	}
	d.mu.Unlock()
	next, ok, err := d.ob.NextDue(ctx, exclude)
	if err != nil {
		return 0, err
	}
	// Wake at the next due time, and at least every few seconds so that an
	// operator's `outbox retry` from another process is picked up.
	wait := idleRecheck
	if ok {
		wait = min(max(next.Sub(now), 10*time.Millisecond), idleRecheck)
	}
	return wait, nil
}

func (d *dispatcher) deliver(ctx context.Context, m outbox.Message) {
	codes := make([]string, len(m.Items))
	for i, it := range m.Items {
		codes[i] = it.Code
	}
	res := d.client.Deliver(ctx, client.Request{DeliveryID: m.DeliveryID, Items: codes, Body: m.Body})
	if ctx.Err() != nil && res.Outcome != client.Delivered {
		return // shutting down: the message stays pending as it was
	}
	now := d.now()
	var err error
	switch res.Outcome {
	case client.Delivered:
		d.mu.Lock()
		d.authFails, d.transient = 0, 0
		d.mu.Unlock()
		err = d.ob.MarkDelivered(ctx, m.ID, res.Status, now)
	case client.Transient:
		d.mu.Lock()
		d.transient++
		d.mu.Unlock()
		wait := backoff(m.Attempts+1, d.maxWait)
		if res.RetryAfter > 0 {
			wait = max(wait, min(res.RetryAfter, d.maxWait))
		}
		err = d.ob.MarkRetry(ctx, m.ID, res.Status, errText(res), now.Add(wait))
		d.logger.Info("delivery rescheduled", "delivery_id", m.DeliveryID, "items", joinCodes(codes), "attempts", m.Attempts+1, "next_attempt_in", wait.Round(time.Millisecond).String())
	case client.Unauthorized:
		d.mu.Lock()
		if !now.Before(d.pausedUntil) { // requests in flight together count as one failed probe
			d.authFails++
			d.pausedUntil = now.Add(backoff(d.authFails, d.maxWait))
		}
		wait := d.pausedUntil.Sub(now)
		d.mu.Unlock()
		d.logger.Warn("delivery paused: the ingestion service rejected the signature; every message is kept and a probe follows",
			"tenant", d.tenant, "status", res.Status, "probe_in", wait.Round(time.Millisecond).String())
	case client.Gone:
		d.mu.Lock()
		d.gone = true
		d.mu.Unlock()
		d.logger.Error("delivery stopped: the ingestion endpoint answered 410 Gone; every message is kept. Fix ingest.url and restart erpsync", "tenant", d.tenant)
	case client.TooLarge:
		if len(m.Items) > 1 {
			err = d.split(ctx, m)
		} else {
			err = d.ob.MarkDead(ctx, m.ID, res.Status, "413: a single item is larger than the ingestion service accepts", now)
		}
	case client.Rejected:
		reason := errText(res)
		if res.Response != "" {
			reason += ": " + res.Response
		}
		err = d.ob.MarkDead(ctx, m.ID, res.Status, reason, now)
	}
	if err != nil {
		d.logger.Error("could not record the delivery outcome; the message stays pending and will be sent again with the same delivery id",
			"delivery_id", m.DeliveryID, "err", err)
	}
}

// split replaces a message the receiver found too large by two halves with
// new delivery ids.
func (d *dispatcher) split(ctx context.Context, m outbox.Message) error {
	var body struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(m.Body, &body); err != nil || len(body.Items) != len(m.Items) {
		return fmt.Errorf("split message %s: body does not match its items", m.DeliveryID)
	}
	half := len(m.Items) / 2
	parts := [][2]int{{0, half}, {half, len(m.Items)}}
	var msgs []outbox.NewMessage
	for _, p := range parts {
		group := make([]entry, 0, p[1]-p[0])
		for i := p[0]; i < p[1]; i++ {
			group = append(group, entry{item: m.Items[i], content: body.Items[i]})
		}
		id, err := newDeliveryID()
		if err != nil {
			return err
		}
		b, err := assembleBody(id, d.tenant, group)
		if err != nil {
			return err
		}
		msgs = append(msgs, outbox.NewMessage{DeliveryID: id, Items: itemsOf(group), Body: b})
	}
	d.logger.Warn("batch too large (413): split in two", "delivery_id", m.DeliveryID, "items", len(m.Items))
	return d.ob.Replace(ctx, m.ID, msgs, d.now())
}

func itemsOf(group []entry) []outbox.MessageItem {
	out := make([]outbox.MessageItem, len(group))
	for i, e := range group {
		out[i] = e.item
	}
	return out
}

// backoff is exponential with full jitter: a random wait in [0, min(cap, 1s·2^n)],
// at least 100ms.
func backoff(n int, limit time.Duration) time.Duration {
	ceil := time.Second << min(n, 30)
	if ceil <= 0 || ceil > limit {
		ceil = limit
	}
	return max(time.Duration(rand.Int64N(int64(ceil)+1)), 100*time.Millisecond)
}

func errText(res client.Result) string {
	if res.Err != nil {
		return res.Err.Error()
	}
	if res.Status != 0 {
		return fmt.Sprintf("HTTP %d", res.Status)
	}
	return res.Outcome.String()
}

func joinCodes(codes []string) string {
	const show = 10
	s := ""
	for i, c := range codes {
		if i == show {
			return s + fmt.Sprintf(" +%d more", len(codes)-show)
		}
		if i > 0 {
			s += ","
		}
		s += c
	}
	return s
}
