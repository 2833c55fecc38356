package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/orderweave/erpsync/internal/retry"
	"github.com/orderweave/erpsync/internal/tick"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
)

// Dispatcher hands due outbox messages to the Client, at most concurrency at
// a time, and records each outcome in the outbox. It computes each message's
// next attempt (retry.Backoff: exponential with full jitter, capped by
// maxWait) and the outbox stores it; the Client only retries a short burst
// within one attempt.
//
// A newer state of an item is never delivered before an older one: Claim
// skips messages holding an item of an older pending message, and claimed
// messages stay pending until their outcome is stored.
//
// Bookkeeping is grouped so that its cost per message stays small: while
// the endpoint accepts, the dispatcher claims a window of due messages at
// once (one outbox write for all of them) and sends them as request slots
// come free, and accepted deliveries are recorded by one recorder in a
// transaction per group of whatever was accepted meanwhile (group commit).
// Other outcomes are rare and recorded one by one. A claimed message cannot
// take an item's newer state (coalescing), so the first failure gives the
// claimed messages not yet sent back at once, and until the next acceptance
// the dispatcher claims only what it sends.
//
// While the endpoint accepts, the writer into the outbox hands messages whose
// items have nothing older pending straight to the dispatcher (Room, Take):
// they are stored claimed (outbox Tx.AddClaimedMessage), so that a fresh
// change costs no Claim, and what does not fit goes through Claim as before.
// The writer waits for room (AwaitRoom) before it stores a page, so that the
// pages of a bulk change go the same way instead of overflowing into Claim.
// A request slot that comes free takes the next waiting message itself
// (nextReady).
//
// Faults that concern the endpoint rather than one message hold all delivery
// back (pausedUntil): a Retry-After; a fault of the endpoint itself, a
// 401/403 or a wrong ingest.url (3xx, 404, 405), which pauses delivery (one
// probe at a time with backoff until one is accepted, with an alarm logged
// once per pause; Paused); and an endpoint that failed downAfter times in a
// row (one probe at a time, spaced with backoff). No message is touched
// meanwhile. The first accepted probe brings the whole backlog due at once.
// Claimed messages not yet sent when delivery is held back go back to the
// outbox unchanged.
//
// A refusal of an item (400, 409, 415, 422 and other 4xx) splits a batch
// down to the refused item; only a message holding that item alone is
// dead-lettered.
type Dispatcher struct {
	outcome     func(m outbox.Message, res Result, at time.Time) // nil: nobody is told
	firstLook   func()                                           // nil: nobody is told
	ob          *outbox.Outbox
	client      *Client
	logger      *slog.Logger
	concurrency int
	maxWait     time.Duration // cap of the retry schedule and of Retry-After
	grace       time.Duration // how long in-flight requests may finish after shutdown begins
	now         func() time.Time
	tenant      string

	wake     chan struct{}   // new messages, or a slot came free
	accepted chan acceptance // to the recorder; nil: record at once (no Run)

	mu          sync.Mutex
	running     bool             // Run is delivering: take hands messages to it
	ready       []outbox.Message // claimed, not sent yet, in delivery order
	readyBytes  int              // body bytes of ready
	roomFreed   chan struct{}    // closed when ready shrinks or the lane closes; nil: nobody waits
	backlog     bool             // the outbox may hold due messages not claimed: Claim before sending
	nextDue     time.Time        // earliest next attempt not claimed, as of the last Claim; zero: none
	lastStamp   outbox.Mark      // the outbox's Stamp just before the last Claim
	idle        time.Duration    // longest sleep between looks at the outbox (idleRecheck; tests shorten it)
	claims      int              // Claims run (tests)
	healthy     bool             // the last outcome was an acceptance: claim ahead
	inflight    map[int64]bool   // requests under way
	pausedUntil time.Time        // no new attempt before: a fault, Retry-After, or the next probe of an endpoint that is down
	fault       endpointFault    // 401/403 or a wrong ingest.url: paused, one probe at a time
	transient   int              // consecutive transient failures: from downAfter on, one probe at a time
	gone        bool             // 410: stop until restart or reload
	goneWhy     string           // the 410, for Paused
	goneSince   time.Time        // when the 410 came
	outage      retry.Outage     // outbox writes failing (disk full): logged once per outage
	lastFailure time.Time        // of an outbox write

	// mono reads a clock with monotonic readings (time.Now), against which
	// dispatch sees the wall clock (now) step back; lastWall and lastMono are
	// its readings at the last dispatch. Only the Run goroutine uses them.
	mono               func() time.Time
	lastWall, lastMono time.Time
}

// endpointFault is a fault of the endpoint itself rather than of any
// message: the signature refused (Unauthorized) or a wrong ingest.url
// (Misdirected). While it lasts, all delivery is paused: one probe at a time,
// spaced with backoff, until one is accepted.
type endpointFault struct {
	probes  int       // consecutive refused probes; 0: no fault
	outcome Outcome   // of the last refusal
	status  int       // of the last refusal
	why     string    // the last refusal, for people (Paused)
	since   time.Time // when the pause began
	alarmed bool      // the alarm for this cause was logged since the pause began or settings were reloaded
}

// acceptance is an accepted delivery on its way to the recorder: what it
// records, not the message (its body is let go as soon as it was sent).
type acceptance struct {
	id         int64
	deliveryID string
	status     int
	at         time.Time
}

const (
	downAfter   = 3               // consecutive transient failures before the endpoint counts as down
	idleRecheck = 5 * time.Second // longest sleep between looks at the outbox
	// recordPause holds delivery back after the outbox could not be
	// written (disk full).
	recordPause = time.Second
	outageQuiet = 5 * time.Second
	// recordBatch is the most accepted deliveries one recorder
	// transaction stores; recordLinger is how long the recorder waits for
	// more while requests are in flight.
	recordBatch  = 256
	recordLinger = 20 * time.Millisecond
	// readyMax and readyMaxBytes bound the claimed messages waiting to be
	// sent that the writer may hand over (Room): a few pages' worth.
	readyMax      = 1024
	readyMaxBytes = 4 << 20
)

// DispatcherConfig says how a Dispatcher delivers.
type DispatcherConfig struct {
	Tenant      string        // for log lines
	Concurrency int           // requests in flight at most (ingest.concurrency)
	MaxWait     time.Duration // cap of the retry schedule and of Retry-After (ingest.retry_max_wait)
	Logger      *slog.Logger  // the sync log; nil discards
	// Outcome, when set, is told the result of every delivery call, on the
	// goroutine that made it (metrics). It must not block.
	Outcome func(m outbox.Message, res Result, at time.Time)
	// FirstLook, when set, is called once Run's first look at the outbox is
	// done (the reads of a start), or when Run returns before that.
	FirstLook func()
}

// NewDispatcher returns a dispatcher of ob's messages through c; Run starts it.
func NewDispatcher(ob *outbox.Outbox, c *Client, cfg DispatcherConfig) *Dispatcher {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{
		ob: ob, client: c, logger: logger, tenant: cfg.Tenant, concurrency: cfg.Concurrency, maxWait: cfg.MaxWait,
		outcome: cfg.Outcome, firstLook: cfg.FirstLook, grace: 5 * time.Second, now: time.Now, mono: time.Now,
		wake: make(chan struct{}, 1), inflight: map[int64]bool{}, backlog: true, idle: idleRecheck,
	}
}

// Reconfigure applies reloaded delivery settings and resumes delivery that a
// 401/403 or a wrong ingest.url (3xx, 404, 405) paused, with a probe at
// once, or that a 410 stopped: the fix may be in the new settings. Should the
// probe be refused again, the alarm is logged again.
func (d *Dispatcher) Reconfigure(concurrency int, maxWait time.Duration) {
	d.mu.Lock()
	d.concurrency, d.maxWait = concurrency, maxWait
	d.pausedUntil, d.gone = time.Time{}, false
	d.fault.alarmed = false
	d.mu.Unlock()
	d.Wake()
}

// Paused reports why delivery is paused by a fault of the endpoint itself,
// for people, and since when: the signature refused (401/403), a wrong
// ingest.url (3xx, 404, 405), or the endpoint gone (410). why names the
// status and what to check; it is "" (and since zero) while delivery is not
// paused. An endpoint that is merely down (5xx, network errors), being probed
// one request at a time, does not count. Every message is kept while
// delivery is paused. Paused is safe for concurrent use.
func (d *Dispatcher) Paused() (why string, since time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.gone:
		return d.goneWhy, d.goneSince
	case d.fault.probes > 0:
		return d.fault.why, d.fault.since
	}
	return "", time.Time{}
}

// PauseReason is what pauses delivery, as the outcome label of the deliveries
// metric names it: "unauthorized" (401/403), "misdirected" (3xx, 404, 405)
// or "gone" (410); "" while delivery is not paused by the endpoint (see
// Paused). It is safe for concurrent use.
func (d *Dispatcher) PauseReason() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.gone:
		return Gone.String()
	case d.fault.probes > 0:
		return d.fault.outcome.String()
	}
	return ""
}

// claimWindow is how many messages the dispatcher keeps claimed (sent and
// waiting to be sent) at most: a few per request slot, so that one Claim
// serves several requests.
func claimWindow(concurrency int) int { return max(4*concurrency, 16) }

// Wake tells the dispatcher that new messages may be due in the outbox.
func (d *Dispatcher) Wake() {
	d.claimLater()
	d.poke()
}

// claimLater makes the next dispatch look in the outbox, without waking it.
func (d *Dispatcher) claimLater() {
	d.mu.Lock()
	d.backlog = true
	d.mu.Unlock()
}

// mayHaveDue reports whether the outbox may hold messages due now that the
// last Claim did not see: the next attempt it knew of came due, or a commit
// reached the outbox since (another process's: this one's own writes Wake
// the dispatcher). An idle outbox is not read at all, however many sites a
// process runs.
func (d *Dispatcher) mayHaveDue(now time.Time) bool {
	d.mu.Lock()
	due := !d.nextDue.IsZero() && !now.Before(d.nextDue)
	last := d.lastStamp
	d.mu.Unlock()
	return due || d.ob.Stamp().CommittedSince(last)
}

// poke wakes the dispatcher without sending it to the outbox: a request slot
// came free, or the writer handed messages over (Take).
func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is done. Requests in flight then get d.grace to
// finish; whatever does not finish stays pending and is sent again, with the
// same delivery id, after a restart. Accepted deliveries are all recorded
// before Run returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()
	accepted := make(chan acceptance, recordBatch)
	recorded := make(chan struct{})
	d.accepted = accepted
	go func() {
		defer close(recorded)
		d.record(accepted)
	}()
	d.mu.Lock()
	d.running = true
	d.mu.Unlock()
	var wg sync.WaitGroup
	defer func() {
		d.mu.Lock()
		d.running = false
		d.freeRoom()
		d.mu.Unlock()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(d.grace):
			d.logger.Warn("shutdown: abandoning deliveries still in flight; they stay pending and are sent again with the same delivery id",
				"grace", d.grace.String())
			cancelReqs()
			<-done
		}
		close(accepted)
		<-recorded
		d.unclaimReady(context.WithoutCancel(ctx))
	}()
	var once sync.Once
	looked := func() {
		if d.firstLook != nil {
			once.Do(d.firstLook)
		}
	}
	defer looked()
	for {
		wait, err := d.dispatch(ctx, reqCtx, &wg)
		looked()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.outboxFailed(err)
			wait = recordPause
		}
		if wait >= d.idle {
			// Idle looks come on a grid shared by every dispatcher of the
			// process: hundreds of idle sites then wake it once per
			// d.idle, not hundreds of times.
			wait = tick.UntilNext(time.Now(), d.idle)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-d.wake:
		case <-timer.C:
			// A retry came due, or an operator may have changed the
			// outbox from another process (outbox retry).
			if d.mayHaveDue(d.now()) {
				d.claimLater()
			}
		}
		timer.Stop()
	}
}

// dispatch starts what is due and returns how long to sleep at most.
func (d *Dispatcher) dispatch(ctx, reqCtx context.Context, wg *sync.WaitGroup) (time.Duration, error) {
	now := d.now()
	if back := d.clockStepBack(now); back > 0 {
		// The outbox keeps next attempts as wall-clock times: without this,
		// every waiting message would wait out the step too.
		n, err := d.ob.ShiftSchedule(ctx, now, back)
		d.logger.Warn("the clock stepped back: waiting messages moved earlier by as much, so that none waits out the step",
			"by", back.Round(time.Millisecond).String(), "messages", n)
		d.mu.Lock()
		d.nextDue, d.backlog = time.Time{}, true
		d.mu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	slots, want, claim, held := d.plan(now)
	if held > 0 {
		return held, d.unclaimReady(ctx)
	}
	if slots <= 0 {
		return d.idle, nil // a finishing delivery wakes us
	}
	var claimed int
	if claim {
		stamp := d.ob.Stamp()
		d.mu.Lock()
		d.lastStamp = stamp
		d.claims++
		d.mu.Unlock()
		msgs, err := d.ob.Claim(ctx, now, want)
		if err != nil {
			d.claimLater()
			return 0, err
		}
		if claimed = len(msgs); claimed > 0 {
			d.outboxWorks() // Claim wrote
			d.mu.Lock()
			d.addReady(msgs)
			d.mu.Unlock()
		}
	}
	d.mu.Lock()
	start := d.takeReady(min(slots, len(d.ready)))
	waiting := len(d.ready)
	for _, m := range start {
		d.inflight[m.ID] = true
	}
	d.mu.Unlock()
	for _, m := range start {
		wg.Go(func() { d.requestSlot(ctx, reqCtx, m) })
	}
	switch {
	case waiting > 0:
		return d.idle, nil // every slot is busy: a finishing delivery wakes us
	case claim && claimed == want:
		d.Wake()
		return 0, nil // look again at once: more may be due than the window allowed
	}
	return d.untilDue(ctx, now, claim)
}

// clockStepBack returns how far the wall clock (now) went back since the
// last dispatch, measured against the monotonic clock: 0 when it did not, or
// by less than a second.
func (d *Dispatcher) clockStepBack(now time.Time) time.Duration {
	mono := d.mono()
	lastWall, lastMono := d.lastWall, d.lastMono
	d.lastWall, d.lastMono = now, mono
	if lastMono.IsZero() {
		return 0
	}
	back := mono.Sub(lastMono) - now.Round(0).Sub(lastWall.Round(0))
	if back < time.Second {
		return 0
	}
	return back
}

// plan decides what dispatch does now: how many request slots are free, how
// many messages to claim and whether to look in the outbox at all; held is
// how long delivery is held back (401/403, a wrong ingest.url, Retry-After,
// an endpoint that is down, 410), zero when it is not.
func (d *Dispatcher) plan(now time.Time) (slots, want int, claim bool, held time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone {
		return 0, 0, false, d.idle
	}
	if now.Before(d.pausedUntil) {
		return 0, 0, false, d.pausedUntil.Sub(now)
	}
	slots = d.concurrency - len(d.inflight)
	switch {
	case d.fault.probes > 0 || d.transient >= downAfter:
		slots = 1 - len(d.inflight) // probe: one at a time
		if slots > 0 && len(d.ready) == 0 {
			want = 1
		}
	case !d.healthy:
		want = slots - len(d.ready)
	case len(d.ready) < d.concurrency:
		want = claimWindow(d.concurrency) - len(d.ready) - len(d.inflight)
	}
	// Only a Wake (or a timer) sends the dispatcher to the outbox; cleared
	// before Claim reads, so that a Wake meanwhile is not lost.
	claim = want > 0 && slots > 0 && d.backlog
	if claim {
		d.backlog = false
	}
	return slots, want, claim, 0
}

// requestSlot delivers m, then, while the endpoint accepts, the next
// waiting message itself: no goroutine to start (and no stack to grow
// again) and no dispatcher round per message.
func (d *Dispatcher) requestSlot(ctx, reqCtx context.Context, m outbox.Message) {
	for {
		recording := d.deliver(reqCtx, m)
		d.mu.Lock()
		delete(d.inflight, m.ID)
		if !recording {
			// Released only after it left inflight: Claim may hand it out
			// again at once.
			d.mu.Unlock()
			d.ob.Release(m.ID)
			d.mu.Lock()
			d.backlog = true // its outcome may have made messages due
		}
		next, ok := d.nextReady(ctx)
		claim := d.backlog && len(d.ready) < d.concurrency
		d.mu.Unlock()
		if !ok || claim {
			d.poke() // the dispatcher decides what comes next
		}
		if !ok {
			return
		}
		m = next
	}
}

// untilDue returns how long the dispatcher may sleep: until the next due
// time (read from the outbox after a Claim), and at most a few seconds, so
// that an operator's `outbox retry` from another process is picked up.
func (d *Dispatcher) untilDue(ctx context.Context, now time.Time, claimed bool) (time.Duration, error) {
	if claimed {
		next, ok, err := d.ob.NextDue(ctx, d.ob.Claimed())
		if err != nil {
			d.claimLater()
			return 0, err
		}
		d.mu.Lock()
		d.nextDue = time.Time{}
		if ok {
			d.nextDue = next
		}
		d.mu.Unlock()
	}
	d.mu.Lock()
	wait := d.idle
	if !d.nextDue.IsZero() {
		wait = min(max(d.nextDue.Sub(now), 10*time.Millisecond), d.idle)
	}
	d.mu.Unlock()
	return wait, nil
}

// Room says how many messages, and how many body bytes, the dispatcher takes
// straight from the writer now: none unless it is running, the endpoint
// accepted the last request and nothing holds delivery back.
func (d *Dispatcher) Room() (msgs, bytes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.acceptsHandOffs() {
		return 0, 0
	}
	return max(readyMax-len(d.ready), 0), max(readyMaxBytes-d.readyBytes, 0)
}

// AwaitRoom waits until at most half of the messages and bytes that the
// writer may hand over (Room) are waiting to be sent, the dispatcher stops
// taking them, ctx ends or limit passes. The writer waits here before it
// stores a batch, so that during a bulk change the detector keeps pace
// with delivery and every message goes straight to it, rather than filling
// the room at once and leaving the rest to Claim. What the detector has not
// stored yet stays in MariaDB behind its cursor: waiting loses nothing.
func (d *Dispatcher) AwaitRoom(ctx context.Context, limit time.Duration) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		d.mu.Lock()
		if !d.acceptsHandOffs() || (len(d.ready) <= readyMax/2 && d.readyBytes <= readyMaxBytes/2) {
			d.mu.Unlock()
			return
		}
		if d.roomFreed == nil {
			d.roomFreed = make(chan struct{})
		}
		freed := d.roomFreed
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case <-freed:
		}
	}
}

// nextReady takes the next waiting message for a request slot that just came
// free, marking it in flight, when delivery runs freely: the endpoint
// accepts, nothing holds delivery back and the slot is still wanted. ctx is
// the dispatcher's: after it ends, nothing new starts. d.mu must be held.
func (d *Dispatcher) nextReady(ctx context.Context) (outbox.Message, bool) {
	if ctx.Err() != nil || !d.acceptsHandOffs() || len(d.ready) == 0 || len(d.inflight) >= d.concurrency {
		return outbox.Message{}, false
	}
	m := d.takeReady(1)[0]
	d.inflight[m.ID] = true
	return m, true
}

// addReady queues messages to be sent after those waiting. d.mu must be held.
func (d *Dispatcher) addReady(msgs []outbox.Message) {
	d.ready = append(d.ready, msgs...)
	for _, m := range msgs {
		d.readyBytes += len(m.Body)
	}
}

// takeReady removes and returns the first n messages waiting to be sent,
// and tells a waiting awaitRoom. d.mu must be held.
func (d *Dispatcher) takeReady(n int) []outbox.Message {
	out := slices.Clone(d.ready[:n])
	for _, m := range out {
		d.readyBytes -= len(m.Body)
	}
	// Reslice rather than shift what is left: a long list would be copied
	// on every dispatch. The taken messages' bodies are let go.
	clear(d.ready[:n])
	d.ready = d.ready[n:]
	if len(d.ready) == 0 {
		d.ready = nil
	}
	if n > 0 {
		d.freeRoom()
	}
	return out
}

// freeRoom wakes the writer if it waits for room. d.mu must be held.
func (d *Dispatcher) freeRoom() {
	if d.roomFreed != nil {
		close(d.roomFreed)
		d.roomFreed = nil
	}
}

// acceptsHandOffs reports whether the dispatcher takes messages from the
// writer (Room). d.mu must be held.
func (d *Dispatcher) acceptsHandOffs() bool {
	return d.running && d.healthy && !d.gone && d.fault.probes == 0 && d.transient < downAfter && !d.now().Before(d.pausedUntil)
}

// Take queues messages that the writer stored claimed for delivery, after
// the ones already claimed. When the dispatcher stopped or a delivery failed
// since Room, their claims end at once, as unclaimReady ends those of the
// messages it had claimed: they stay pending, open to coalescing.
func (d *Dispatcher) Take(msgs []outbox.Message) {
	d.mu.Lock()
	if d.acceptsHandOffs() {
		d.addReady(msgs)
		d.mu.Unlock()
		d.poke()
		return
	}
	d.mu.Unlock()
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	defer d.ob.Release(ids...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.claimLater() // Claim finds them when delivery goes on
	if err := d.ob.EndAttempts(ctx, ids, false); err != nil {
		d.outboxFailed(err)
	}
}

// unclaimReady gives the messages claimed but not sent back to the outbox as
// they were: delivery is held back, or shutting down.
func (d *Dispatcher) unclaimReady(ctx context.Context) error {
	d.mu.Lock()
	ready := d.takeReady(len(d.ready))
	d.freeRoom() // the lane may have closed: a waiting writer need not wait longer
	d.mu.Unlock()
	if len(ready) == 0 {
		return nil
	}
	ids := make([]int64, len(ready))
	for i, m := range ready {
		ids[i] = m.ID
	}
	defer d.ob.Release(ids...)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Never sent in this attempt: the claim's mark comes off again, so that
	// they may still take newer states (coalescing), and Claim finds them.
	d.claimLater()
	return d.ob.EndAttempts(ctx, ids, false)
}

// record stores accepted deliveries, each group that arrived meanwhile in
// one outbox transaction, then releases their claims. It returns when in is
// closed and drained.
func (d *Dispatcher) record(in <-chan acceptance) {
	batch := make([]acceptance, 0, recordBatch)
	for a := range in {
		batch = append(batch[:0], a)
		// Take what else was accepted meanwhile and, while requests are
		// still in flight, what they bring within recordLinger, so that one
		// commit stores several.
		linger := time.NewTimer(recordLinger)
	drain:
		for len(batch) < recordBatch {
			select {
			case b, ok := <-in:
				if !ok {
					break drain
				}
				batch = append(batch, b)
				continue
			default:
			}
			if !d.busy() {
				break
			}
			select {
			case b, ok := <-in:
				if !ok {
					break drain
				}
				batch = append(batch, b)
			case <-linger.C:
				break drain
			}
		}
		linger.Stop()
		d.recordAccepted(batch)
		clear(batch) // keep no delivery id past its record
	}
}

// busy reports whether requests are in flight.
func (d *Dispatcher) busy() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.inflight) > 0
}

func (d *Dispatcher) recordAccepted(batch []acceptance) {
	ds := make([]outbox.Accepted, len(batch))
	ids := make([]int64, len(batch))
	for i, a := range batch {
		ds[i] = outbox.Accepted{ID: a.id, Status: a.status, DeliveryID: a.deliveryID}
		ids[i] = a.id
	}
	defer d.Wake()
	defer d.ob.Release(ids...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	skipped, err := d.ob.MarkDeliveredBatch(ctx, ds, batch[len(batch)-1].at)
	if err != nil {
		d.outboxFailed(fmt.Errorf("record %d accepted deliveries: %w", len(batch), err))
		return
	}
	d.outboxWorks()
	if len(skipped) > 0 {
		d.logger.Info("accepted messages were no longer pending in the outbox as sent (rewritten, retried or purged meanwhile by another process); left as they are", "messages", len(skipped))
	}
}

// outboxFailed logs that the outbox could not be read or written, once per
// outage, and holds delivery back for a moment: sending what cannot be
// recorded would only repeat.
func (d *Dispatcher) outboxFailed(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.outage.Failed(d.logger, "outbox access for delivery (messages stay pending and are sent again with the same delivery id)", err)
	d.lastFailure = d.now()
	d.holdUntil(d.lastFailure.Add(recordPause))
}

// outboxWorks ends an outage of outbox writes, logging its end once. A full
// disk lets some small writes through: the outage ends only after
// outageQuiet without a failure.
func (d *Dispatcher) outboxWorks() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.now().Sub(d.lastFailure) > outageQuiet {
		d.outage.Recovered(d.logger, "outbox access for delivery")
	}
}

// holdUntil holds all delivery back until t at least. d.mu must be held.
func (d *Dispatcher) holdUntil(t time.Time) {
	if t.After(d.pausedUntil) {
		d.pausedUntil = t
	}
}

// deliver sends message m and records the outcome. It returns true when it
// handed the outcome to the recorder, which then releases the message;
// otherwise the caller releases it.
func (d *Dispatcher) deliver(ctx context.Context, m outbox.Message) (recording bool) {
	codes := make([]string, len(m.Items))
	for i, it := range m.Items {
		codes[i] = it.Code
	}
	res := d.client.Deliver(ctx, Request{DeliveryID: m.DeliveryID, Items: codes, Body: m.Body})
	if ctx.Err() != nil && res.Outcome != Delivered {
		// Shutting down: the message stays pending as it was. Claim
		// recorded the attempt, so it keeps its delivery id and body.
		return false
	}
	// The outcome is recorded even when shutdown cut the request short
	// just after it was accepted.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	now := d.now()
	if d.outcome != nil {
		d.outcome(m, res, now)
	}
	d.mu.Lock()
	d.healthy = res.Outcome == Delivered
	d.mu.Unlock()
	if res.Outcome != Delivered {
		if err := d.unclaimReady(ctx); err != nil {
			d.outboxFailed(err)
		}
	}
	var err error
	switch res.Outcome {
	case Delivered:
		if recording, err = d.delivered(ctx, m, res, now); recording {
			return true
		}
	case Transient:
		err = d.transientFailure(ctx, m, res, codes, now)
	case Unauthorized, Misdirected:
		err = d.pause(ctx, m, res, now)
	case Gone:
		d.mu.Lock()
		if !d.gone {
			d.goneSince = now
		}
		d.gone, d.goneWhy = true, errText(res)
		d.mu.Unlock()
		d.logger.Error("delivery stopped: the ingestion endpoint answered 410 Gone; every message is kept. Fix ingest.url and restart erpsync", "tenant", d.tenant)
		err = d.ob.EndAttempt(ctx, m.ID, res.MaybeAccepted)
	case TooLarge:
		if len(m.Items) > 1 {
			err = d.split(ctx, m, "batch too large (413)")
		} else {
			err = d.ob.MarkDead(ctx, m.ID, res.Status, "413: a single item is larger than the ingestion service accepts", now)
		}
	case Rejected:
		err = d.rejected(ctx, m, res, codes, now)
	}
	if err != nil {
		d.outboxFailed(fmt.Errorf("record the outcome of delivery %s: %w", m.DeliveryID, err))
	} else {
		d.outboxWorks()
	}
	return false
}

// delivered records an accepted delivery: through the recorder while
// delivery runs freely (recording), or at once when the acceptance ends an
// outage, which also brings the whole backlog due.
func (d *Dispatcher) delivered(ctx context.Context, m outbox.Message, res Result, now time.Time) (recording bool, err error) {
	d.mu.Lock()
	recovered := d.fault.probes > 0 || d.transient >= downAfter
	var pausedFor time.Duration
	if d.fault.probes > 0 {
		pausedFor = now.Sub(d.fault.since)
	}
	d.fault, d.transient = endpointFault{}, 0
	d.pausedUntil = time.Time{}
	delete(d.inflight, m.ID) // the request is over: the recorder waits only for others
	d.mu.Unlock()
	if d.accepted != nil && !recovered {
		d.accepted <- acceptance{id: m.ID, deliveryID: m.DeliveryID, status: res.Status, at: now}
		return true, nil
	}
	// Recorded delivered only if it still holds the body sent (the same
	// delivery id): another process may have rewritten it meanwhile.
	_, err = d.ob.MarkDeliveredBatch(ctx, []outbox.Accepted{{ID: m.ID, Status: res.Status, DeliveryID: m.DeliveryID}}, now)
	if recovered {
		// Full speed at once: the backlog need not wait out each
		// message's backoff from the outage.
		n, xerr := d.ob.Expedite(ctx, now)
		attrs := []any{"tenant", d.tenant, "rescheduled", n}
		if pausedFor > 0 {
			attrs = append(attrs, "paused_for", pausedFor.Round(time.Millisecond).String())
		}
		d.logger.Info("ingestion endpoint accepts deliveries again: sending the backlog at full speed", attrs...)
		err = errors.Join(err, xerr)
	}
	return false, err
}

// transientFailure schedules m's next attempt (retry.Backoff, or a capped
// Retry-After) and, after downAfter failures in a row, holds all delivery
// back for one probe at a time.
func (d *Dispatcher) transientFailure(ctx context.Context, m outbox.Message, res Result, codes []string, now time.Time) error {
	wait := retry.Backoff(m.Attempts+1, d.maxWait)
	var retryAfter time.Duration
	if res.RetryAfter > 0 {
		retryAfter = min(res.RetryAfter, d.maxWait) // honoured, capped
		wait = max(wait, retryAfter)
	}
	d.mu.Lock()
	d.transient++
	if retryAfter > 0 {
		d.holdUntil(now.Add(retryAfter))
	}
	down := d.transient >= downAfter
	if down {
		d.holdUntil(now.Add(retry.Backoff(d.transient-downAfter+1, d.maxWait)))
	}
	probeIn := d.pausedUntil.Sub(now)
	first := d.transient == downAfter
	d.mu.Unlock()
	if first {
		d.logger.Warn("ingestion endpoint down: probing with one request at a time, with backoff, until it answers; every message is kept",
			"tenant", d.tenant, "failures", downAfter, "error", errText(res))
	}
	var err error
	if res.MaybeAccepted {
		err = d.ob.MarkRetry(ctx, m.ID, res.Status, errText(res), now.Add(wait))
	} else {
		err = d.ob.MarkRefused(ctx, m.ID, res.Status, errText(res), now.Add(wait))
	}
	attrs := []any{"delivery_id", m.DeliveryID, "items", ItemList(codes), "attempts", m.Attempts + 1, "next_attempt_in", wait.Round(time.Millisecond).String()}
	if down || retryAfter > 0 {
		attrs = append(attrs, "all_delivery_held_for", probeIn.Round(time.Millisecond).String())
	}
	d.logger.Info("delivery rescheduled", attrs...)
	return err
}

// pause pauses all delivery after a fault of the endpoint itself (a
// 401/403, or a wrong ingest.url: 3xx, 404, 405) until a probe, spaced with
// backoff, is accepted; m stays pending as it was. The alarm is logged when
// the pause begins, when its cause changes and after a reload; each further
// refused probe gets an INFO line.
func (d *Dispatcher) pause(ctx context.Context, m outbox.Message, res Result, now time.Time) error {
	d.mu.Lock()
	f := &d.fault
	if f.probes == 0 {
		f.since = now
	}
	// Requests in flight together count as one failed probe.
	if f.probes == 0 || !now.Before(d.pausedUntil) {
		f.probes++
		d.holdUntil(now.Add(retry.Backoff(f.probes, d.maxWait)))
	}
	alarm := !f.alarmed || f.outcome != res.Outcome || f.status != res.Status
	f.outcome, f.status, f.why, f.alarmed = res.Outcome, res.Status, errText(res), true
	probeIn := d.pausedUntil.Sub(now).Round(time.Millisecond).String()
	pausedFor := now.Sub(f.since).Round(time.Millisecond).String()
	d.mu.Unlock()
	switch {
	case !alarm:
		d.logger.Info("delivery still paused: the endpoint refused again; every message is kept",
			"tenant", d.tenant, "status", res.Status, "paused_for", pausedFor, "probe_in", probeIn)
	case res.Outcome == Misdirected:
		d.logger.Error("delivery paused: "+errText(res)+
			". Every message is kept; one probe at a time follows with backoff, and delivery resumes by itself once the endpoint accepts",
			"tenant", d.tenant, "status", res.Status, "probe_in", probeIn)
	default:
		d.logger.Warn("delivery paused: the ingestion service rejected the signature; every message is kept and a probe follows",
			"tenant", d.tenant, "status", res.Status, "probe_in", probeIn)
	}
	return d.ob.EndAttempt(ctx, m.ID, res.MaybeAccepted)
}

// rejected splits a batch of which the receiver refused an item (400, 409,
// 415, 422 or another 4xx that Rejected covers) down to the refused item; a
// single message it refused is dead-lettered, and the rest go on.
func (d *Dispatcher) rejected(ctx context.Context, m outbox.Message, res Result, codes []string, now time.Time) error {
	if res.Status >= 400 && res.Status < 500 && len(m.Items) > 1 {
		// One poison item must not take its batch-mates down with it:
		// halve until the item the receiver refuses is alone.
		return d.split(ctx, m, "batch rejected ("+formatInt(int64(res.Status))+"): split to single out the item refused")
	}
	reason := errText(res)
	if res.Response != "" {
		reason += ": " + res.Response
	}
	d.logger.Error("message dead-lettered: the ingestion service refused it; the rest go on", "delivery_id", m.DeliveryID,
		"items", ItemList(codes), "status", res.Status)
	return d.ob.MarkDead(ctx, m.ID, res.Status, reason, now)
}

// split replaces a message the receiver refused as a whole (413 too large,
// or a 4xx refusing one of its items) by two halves with new delivery ids;
// the receiver took nothing of it, so no item state is accepted twice. The
// halves go after every pending message, so items whose newer state already
// waits in a later message are left out: their older state is not needed,
// and must not arrive after the newer one. The outbox decides that in the
// same transaction that stores the halves.
func (d *Dispatcher) split(ctx context.Context, m outbox.Message, why string) error {
	raw, err := signer.BodyItems(m.Body)
	if err != nil || len(raw) != len(m.Items) {
		return fmt.Errorf("message %s: body does not match its items", m.DeliveryID)
	}
	var parts []outbox.NewMessage
	var dropped int
	err = d.ob.Split(ctx, m.ID, d.now(), func(superseded map[string]bool) ([]outbox.NewMessage, error) {
		var keep []int // indexes into m.Items and raw
		for i, it := range m.Items {
			if !superseded[it.Code] {
				keep = append(keep, i)
			}
		}
		dropped = len(m.Items) - len(keep)
		groups := [][]int{keep}
		switch {
		case len(keep) == 0:
			groups = nil
		case len(keep) > 1:
			half := len(keep) / 2
			groups = [][]int{keep[:half], keep[half:]}
		}
		parts = parts[:0]
		for _, group := range groups {
			id, err := signer.NewDeliveryID()
			if err != nil {
				return nil, err
			}
			items := make([]outbox.MessageItem, len(group))
			entries := make([][]byte, len(group))
			for j, i := range group {
				items[j], entries[j] = m.Items[i], raw[i]
			}
			b, err := signer.Body(id, d.tenant, entries)
			if err != nil {
				return nil, err
			}
			parts = append(parts, outbox.NewMessage{DeliveryID: id, Items: items, Body: b})
		}
		return parts, nil
	})
	if err == nil {
		d.logger.Warn(why, "delivery_id", m.DeliveryID, "items", len(m.Items), "parts", len(parts), "superseded", dropped)
	}
	return err
}

func errText(res Result) string {
	if res.Err != nil {
		return res.Err.Error()
	}
	if res.Status != 0 {
		return fmt.Sprintf("HTTP %d", res.Status)
	}
	return res.Outcome.String()
}
