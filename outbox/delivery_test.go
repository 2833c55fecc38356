package outbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// spec is a message for table tests: its delivery id, items (all version 1)
// and when it is first due, relative to t0.
type spec struct {
	id    string
	codes []string
	at    time.Duration
}

// setup stores the messages, each in its own Update, and returns their ids by
// delivery id.
func setup(t *testing.T, o *Outbox, specs ...spec) map[string]int64 {
	t.Helper()
	ids := map[string]int64{}
	for _, s := range specs {
		ids[s.id] = add(t, o, t0.Add(s.at), msg(s.id, 1, s.codes...))[0]
	}
	return ids
}

func deliveryIDs(msgs []Message) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.DeliveryID)
	}
	return out
}

func TestDue(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		msgs    []spec
		before  func(o *Outbox, ids map[string]int64) error
		now     time.Duration
		limit   int
		exclude []string
		want    []string
	}{
		{name: "oldest first",
			msgs:  []spec{{"m1", []string{"A"}, 0}, {"m2", []string{"B"}, 0}, {"m3", []string{"C"}, 0}},
			limit: 10, want: []string{"m1", "m2", "m3"}},
		{name: "an item's newer message waits for its older one",
			msgs:  []spec{{"m1", []string{"A"}, 0}, {"m2", []string{"B"}, 0}, {"m3", []string{"C", "A"}, 0}},
			limit: 10, want: []string{"m1", "m2"}},
		{name: "blocked by an older message that is not due yet, and so on down the chain",
			msgs:  []spec{{"m1", []string{"A"}, time.Hour}, {"m2", []string{"A", "B"}, 0}, {"m3", []string{"B"}, 0}, {"m4", []string{"C"}, 0}},
			limit: 10, want: []string{"m4"}},
		{name: "an excluded (in-flight) message is not handed out and still blocks",
			msgs:  []spec{{"m1", []string{"A"}, 0}, {"m2", []string{"A"}, 0}, {"m3", []string{"B"}, 0}},
			limit: 10, exclude: []string{"m1"}, want: []string{"m3"}},
		{name: "delivered and dead messages block nothing",
			msgs: []spec{{"m1", []string{"A"}, 0}, {"m2", []string{"A"}, 0}, {"m3", []string{"A"}, 0}},
			before: func(o *Outbox, ids map[string]int64) error {
				return errors.Join(o.MarkDelivered(ctx, ids["m1"], 200, t0), o.MarkDead(ctx, ids["m2"], 422, "bad", t0))
			},
			limit: 10, want: []string{"m3"}},
		{name: "a retried dead message goes first again",
			msgs: []spec{{"m1", []string{"A"}, 0}, {"m2", []string{"A"}, 0}},
			before: func(o *Outbox, ids map[string]int64) error {
				return errors.Join(o.MarkDead(ctx, ids["m1"], 422, "bad", t0), o.Retry(ctx, ids["m1"], t0))
			},
			limit: 10, want: []string{"m1"}},
		{name: "not due before next_attempt_at",
			msgs:  []spec{{"m1", []string{"A"}, time.Second}, {"m2", []string{"B"}, 0}},
			limit: 10, want: []string{"m2"}},
		{name: "due at next_attempt_at",
			msgs: []spec{{"m1", []string{"A"}, time.Second}, {"m2", []string{"B"}, 0}},
			now:  time.Second, limit: 10, want: []string{"m1", "m2"}},
		{name: "a retry pushes a message back",
			msgs: []spec{{"m1", []string{"A"}, 0}, {"m2", []string{"B"}, 0}},
			before: func(o *Outbox, ids map[string]int64) error {
				return o.MarkRetry(ctx, ids["m1"], 503, "unavailable", t0.Add(time.Minute))
			},
			now: 59 * time.Second, limit: 10, want: []string{"m2"}},
		{name: "limit",
			msgs:  []spec{{"m1", []string{"A"}, 0}, {"m2", []string{"B"}, 0}, {"m3", []string{"C"}, 0}},
			limit: 2, want: []string{"m1", "m2"}},
		{name: "limit counts only what is handed out",
			msgs:  []spec{{"m1", []string{"A"}, 0}, {"m2", []string{"A"}, 0}, {"m3", []string{"B"}, 0}, {"m4", []string{"C"}, 0}, {"m5", []string{"D"}, 0}},
			limit: 2, exclude: []string{"m1"}, want: []string{"m3", "m4"}},
		{name: "a message without items",
			msgs:  []spec{{"m1", nil, 0}, {"m2", []string{"A"}, 0}},
			limit: 10, want: []string{"m1", "m2"}},
		{name: "nothing pending",
			limit: 10, want: []string{}},
	}
	for _, tc := range tests {
		for _, plan := range []struct {
			name  string
			probe int
			many  bool // the last Due walked and filled its limit
		}{{"few due", dueProbe, false}, {"walk", 0, false}, {"walk at once after a full walk", dueProbe, true}} {
			t.Run(tc.name+"/"+plan.name, func(t *testing.T) {
				o := openTest(t, "")
				o.dueProbeLimit = plan.probe
				o.dueMany.Store(plan.many)
				ids := setup(t, o, tc.msgs...)
				if tc.before != nil {
					if err := tc.before(o, ids); err != nil {
						t.Fatal(err)
					}
				}
				exclude := map[int64]bool{}
				for _, id := range tc.exclude {
					exclude[ids[id]] = true
				}
				got, err := o.Due(ctx, t0.Add(tc.now), tc.limit, exclude)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(deliveryIDs(got), tc.want) {
					t.Errorf("Due = %v, want %v", deliveryIDs(got), tc.want)
				}
			})
		}
	}
}

func TestDueReturnsWholeMessages(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	body := []byte("\x00binary\xffbody")
	items := []MessageItem{{"Z", 7, "upsert"}, {"A", 3, "delete"}, {"M", 5, "upsert"}}
	id := add(t, o, t0, NewMessage{DeliveryID: "d-1", Items: items, Body: body})[0]
	got, err := o.Due(ctx, t0, 1, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("Due = %v, %v", got, err)
	}
	want := Message{ID: id, DeliveryID: "d-1", Items: items, Body: body, State: Pending,
		NextAttemptAt: t0, CreatedAt: t0, UpdatedAt: t0}
	if fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Errorf("Due = %+v\nwant  %+v", got[0], want)
	}
	if _, err := o.Due(ctx, t0, 0, nil); err == nil {
		t.Error("Due with limit 0 succeeded")
	}
}

func TestTransitions(t *testing.T) {
	ctx := context.Background()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		do   func(o *Outbox, id int64) error
		want error // ErrNotFound, ErrWrongState or nil
	}
	deliver := func(status int, d time.Duration) step {
		return step{do: func(o *Outbox, id int64) error { return o.MarkDelivered(ctx, id, status, at(d)) }}
	}
	retry := func(status int, text string, d time.Duration) step {
		return step{do: func(o *Outbox, id int64) error { return o.MarkRetry(ctx, id, status, text, at(d)) }}
	}
	dead := func(status int, reason string, d time.Duration) step {
		return step{do: func(o *Outbox, id int64) error { return o.MarkDead(ctx, id, status, reason, at(d)) }}
	}
	revive := func(d time.Duration) step {
		return step{do: func(o *Outbox, id int64) error { return o.Retry(ctx, id, at(d)) }}
	}
	reschedule := func(d time.Duration) step {
		return step{do: func(o *Outbox, id int64) error { return o.Reschedule(ctx, id, at(d)) }}
	}
	fails := func(s step, err error) step { s.want = err; return s }
	tests := []struct {
		name  string
		steps []step
		want  Message // compared: State, Attempts, LastStatus, LastError, NextAttemptAt, DeliveredAt
	}{
		{"delivered at once", []step{deliver(202, time.Second)},
			Message{State: Delivered, Attempts: 1, LastStatus: 202, DeliveredAt: at(time.Second)}},
		{"retries then delivered", []step{retry(503, "unavailable", time.Minute), retry(0, "connection refused", 2*time.Minute), deliver(200, 3*time.Minute)},
			Message{State: Delivered, Attempts: 3, LastStatus: 200, DeliveredAt: at(3 * time.Minute)}},
		{"retry keeps it pending", []step{retry(503, "unavailable", time.Minute), retry(0, "connection refused", 2*time.Minute)},
			Message{State: Pending, Attempts: 2, LastError: "connection refused", NextAttemptAt: at(2 * time.Minute)}},
		{"reschedule counts no attempt", []step{reschedule(time.Hour)},
			Message{State: Pending, NextAttemptAt: at(time.Hour)}},
		{"dead", []step{retry(500, "oops", time.Minute), dead(422, "unprocessable: bad price", time.Minute)},
			Message{State: Dead, Attempts: 2, LastStatus: 422, LastError: "unprocessable: bad price"}},
		{"dead, retried, delivered", []step{dead(400, "bad", 0), revive(time.Hour), deliver(200, 2*time.Hour)},
			Message{State: Delivered, Attempts: 2, LastStatus: 200, DeliveredAt: at(2 * time.Hour)}},
		{"dead, retried: pending again, due now, history kept", []step{dead(400, "bad", 0), revive(time.Hour)},
			Message{State: Pending, Attempts: 1, LastStatus: 400, LastError: "bad", NextAttemptAt: at(time.Hour)}},
		{"retry of a pending message makes it due now", []step{retry(503, "x", time.Hour), revive(time.Minute)},
			Message{State: Pending, Attempts: 1, LastStatus: 503, LastError: "x", NextAttemptAt: at(time.Minute)}},
		{"a delivered message stays delivered", []step{deliver(200, 0),
			fails(deliver(200, time.Minute), ErrWrongState), fails(retry(500, "x", time.Minute), ErrWrongState),
			fails(dead(400, "x", time.Minute), ErrWrongState), fails(reschedule(time.Minute), ErrWrongState),
			fails(revive(time.Minute), ErrWrongState)},
			Message{State: Delivered, Attempts: 1, LastStatus: 200, DeliveredAt: t0}},
		{"a dead message takes no attempts", []step{dead(410, "gone", 0),
			fails(deliver(200, time.Minute), ErrWrongState), fails(retry(500, "x", time.Minute), ErrWrongState),
			fails(dead(400, "x", time.Minute), ErrWrongState), fails(reschedule(time.Minute), ErrWrongState)},
			Message{State: Dead, Attempts: 1, LastStatus: 410, LastError: "gone"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := openTest(t, "")
			id := add(t, o, t0, msg("d-1", 1, "A"))[0]
			for i, s := range tc.steps {
				err := s.do(o, id)
				if s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
					t.Fatalf("step %d: %v, want %v", i, err, s.want)
				}
				if err != nil && !strings.Contains(err.Error(), o.Path()) {
					t.Errorf("step %d: error %q does not name the path", i, err)
				}
			}
			got, err := o.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := brief(got), brief(tc.want); g != w {
				t.Errorf("got  %+v\nwant %+v", g, w)
			}
			if string(got.Body) != string(msg("d-1", 1).Body) || len(got.Items) != 1 {
				t.Errorf("body or items changed: %+v", got)
			}
		})
	}

	t.Run("missing message", func(t *testing.T) {
		o := openTest(t, "")
		for name, err := range map[string]error{
			"MarkDelivered": o.MarkDelivered(ctx, 42, 200, t0),
			"MarkRetry":     o.MarkRetry(ctx, 42, 500, "x", t0),
			"MarkDead":      o.MarkDead(ctx, 42, 400, "x", t0),
			"Reschedule":    o.Reschedule(ctx, 42, t0),
			"Retry":         o.Retry(ctx, 42, t0),
			"Split":         o.Split(ctx, 42, t0, func(map[string]bool) ([]NewMessage, error) { return []NewMessage{msg("d-2", 1, "A")}, nil }),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}
		if _, err := o.Get(ctx, 42); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), o.Path()) {
			t.Errorf("Get: %v", err)
		}
		if _, err := o.GetByDeliveryID(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetByDeliveryID: %v", err)
		}
	})
}

// markDelivered marks the pending messages with ids from..to delivered at
// once, as that many MarkDelivered calls would, without their fsyncs.
func markDelivered(t testing.TB, o *Outbox, from, to int64, at time.Time) {
	t.Helper()
	_, err := o.w.ExecContext(context.Background(), `UPDATE messages SET state = 'delivered', attempts = attempts + 1,
		last_status = 200, next_attempt_at = NULL, delivered_at = ?1, updated_at = ?1
		WHERE id BETWEEN ?2 AND ?3 AND state = 'pending'`, at.UnixMilli(), from, to)
	if err != nil {
		t.Fatal(err)
	}
}

// briefMessage is the part of a Message that transitions change.
type briefMessage struct {
	State                State
	Attempts, LastStatus int
	LastError            string
	Next, Delivered      int64 // unix ms; 0 when unset
}

func brief(m Message) briefMessage {
	b := briefMessage{State: m.State, Attempts: m.Attempts, LastStatus: m.LastStatus, LastError: m.LastError}
	if !m.NextAttemptAt.IsZero() {
		b.Next = m.NextAttemptAt.UnixMilli()
	}
	if !m.DeliveredAt.IsZero() {
		b.Delivered = m.DeliveredAt.UnixMilli()
	}
	return b
}

func TestLongErrorTextIsCut(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	id := add(t, o, t0, msg("d-1", 1, "A"))[0]
	long := strings.Repeat("é", maxErrorText) // 2 bytes each: the cut falls inside one
	if err := o.MarkRetry(ctx, id, 500, long, t0); err != nil {
		t.Fatal(err)
	}
	m, err := o.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.LastError) > maxErrorText || len(m.LastError) < maxErrorText-3 || !strings.HasPrefix(long, m.LastError) {
		t.Errorf("last error cut to %d bytes", len(m.LastError))
	}
}

func TestMarkDeliveredRecordsItemVersions(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	var id1, id2 int64
	err := o.Update(ctx, func(tx *Tx) error {
		for _, s := range []ItemState{{Code: "A", Version: 2, Hash: "hA2"}, {Code: "B", Version: 5, Hash: "hB5"}, {Code: "C", Version: 1, Hash: "gone", Deleted: true}} {
			if err := tx.PutItemState(ctx, s); err != nil {
				return err
			}
		}
		var err error
		id1, err = tx.AddMessage(ctx, NewMessage{DeliveryID: "d-1", Body: []byte("1"),
			Items: []MessageItem{{"A", 2, "upsert"}, {"B", 4, "upsert"}, {"C", 1, "delete"}}}, t0)
		if err != nil {
			return err
		}
		id2, err = tx.AddMessage(ctx, NewMessage{DeliveryID: "d-2", Body: []byte("2"),
			Items: []MessageItem{{"B", 5, "upsert"}}}, t0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ItemState{
		"A": {Code: "A", Version: 2, Hash: "hA2", DeliveredVersion: 2, DeliveredHash: "hA2"},
		"B": {Code: "B", Version: 5, Hash: "hB5"}, // the message carried version 4, not the last queued 5
		"C": {Code: "C", Version: 1, Hash: "gone", Deleted: true, DeliveredVersion: 1, DeliveredHash: "gone"},
	}
	check := func() {
		t.Helper()
		for code, w := range want {
			s, _, err := o.ItemState(ctx, code)
			s.QueuedAt = time.Time{}
			if err != nil || s != w {
				t.Errorf("item %s: %+v, %v; want %+v", code, s, err, w)
			}
		}
	}
	if err := o.MarkDelivered(ctx, id1, 200, t0); err != nil {
		t.Fatal(err)
	}
	check()
	if err := o.MarkDelivered(ctx, id2, 200, t0); err != nil {
		t.Fatal(err)
	}
	want["B"] = ItemState{Code: "B", Version: 5, Hash: "hB5", DeliveredVersion: 5, DeliveredHash: "hB5"}
	check()
	// A newer state keeps the delivered one until it is delivered too.
	if err := o.Update(ctx, func(tx *Tx) error {
		return tx.PutItemState(ctx, ItemState{Code: "A", Version: 3, Hash: "hA3"})
	}); err != nil {
		t.Fatal(err)
	}
	want["A"] = ItemState{Code: "A", Version: 3, Hash: "hA3", DeliveredVersion: 2, DeliveredHash: "hA2"}
	check()
}

func TestStats(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	if s := stats(t, o); s != (Stats{}) {
		t.Errorf("empty outbox: %+v", s)
	}
	ids := setup(t, o,
		spec{"m1", []string{"A"}, 0}, spec{"m2", []string{"B"}, time.Second},
		spec{"m3", []string{"C"}, 2 * time.Second}, spec{"m4", []string{"D"}, 3 * time.Second},
		spec{"m5", []string{"E"}, 4 * time.Second})
	steps := []struct {
		do   func() error
		want Stats
	}{
		{func() error { return nil }, Stats{Pending: 5, OldestPending: t0}},
		{func() error { return o.MarkDelivered(ctx, ids["m1"], 200, t0.Add(time.Hour)) },
			Stats{Pending: 4, Delivered: 1, OldestPending: t0.Add(time.Second), LastDelivered: t0.Add(time.Hour)}},
		{func() error { return o.MarkDelivered(ctx, ids["m3"], 200, t0.Add(30*time.Minute)) },
			Stats{Pending: 3, Delivered: 2, OldestPending: t0.Add(time.Second), LastDelivered: t0.Add(time.Hour)}},
		{func() error { return o.MarkDead(ctx, ids["m2"], 400, "bad", t0) },
			Stats{Pending: 2, Delivered: 2, Dead: 1, OldestPending: t0.Add(3 * time.Second), OldestDead: t0.Add(time.Second), LastDelivered: t0.Add(time.Hour)}},
		{func() error { return o.Retry(ctx, ids["m2"], t0.Add(2*time.Hour)) },
			Stats{Pending: 3, Delivered: 2, OldestPending: t0.Add(time.Second), LastDelivered: t0.Add(time.Hour)}},
	}
	for i, st := range steps {
		if err := st.do(); err != nil {
			t.Fatal(err)
		}
		if s := stats(t, o); s != st.want {
			t.Errorf("step %d: %+v\nwant    %+v", i, s, st.want)
		}
	}
}

func TestPruneDelivered(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	ids := setup(t, o,
		spec{"old", []string{"A"}, 0}, spec{"mid", []string{"A"}, 0}, spec{"new", []string{"A"}, 0},
		spec{"dead", []string{"B"}, 0}, spec{"pending", []string{"C"}, 0})
	for name, d := range map[string]time.Duration{"old": time.Hour, "mid": 2 * time.Hour, "new": 3 * time.Hour} {
		if err := o.MarkDelivered(ctx, ids[name], 200, t0.Add(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.MarkDead(ctx, ids["dead"], 400, "x", t0); err != nil {
		t.Fatal(err)
	}
	n, err := o.PruneDelivered(ctx, t0.Add(2*time.Hour)) // "mid" was delivered exactly then: kept
	if err != nil || n != 1 {
		t.Fatalf("PruneDelivered = %d, %v; want 1", n, err)
	}
	all, err := o.List(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := deliveryIDs(all), []string{"pending", "dead", "new", "mid"}; !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
	var items int
	if err := o.r.QueryRowContext(ctx, `SELECT count(*) FROM message_items WHERE message_id = ?`, ids["old"]).Scan(&items); err != nil || items != 0 {
		t.Errorf("%d item rows of the pruned message left, %v", items, err)
	}
	var bodies int
	if err := o.r.QueryRowContext(ctx, `SELECT count(*) FROM message_bodies WHERE message_id = ?`, ids["old"]).Scan(&bodies); err != nil || bodies != 0 {
		t.Errorf("%d bodies of the pruned message left, %v", bodies, err)
	}
	if s, ok, _ := o.ItemState(ctx, "A"); ok {
		t.Errorf("item state of A dropped? %+v", s) // setup stores no item states
	}

	// More than one batch.
	const many = pruneBatch*2 + 10
	msgs := make([]NewMessage, many)
	for i := range msgs {
		msgs[i] = msg(fmt.Sprintf("x-%d", i), 1, fmt.Sprintf("X%d", i))
	}
	bulk := add(t, o, t0, msgs...)
	markDelivered(t, o, bulk[0], bulk[len(bulk)-1], t0)
	n, err = o.PruneDelivered(ctx, t0.Add(24*time.Hour))
	if err != nil || n != many+2 {
		t.Errorf("PruneDelivered = %d, %v; want %d", n, err, many+2)
	}
	if s := stats(t, o); s.Delivered != 0 || s.Pending != 1 || s.Dead != 1 {
		t.Errorf("after pruning: %+v", s)
	}
	// Ids are never reused, even after the newest message was pruned.
	if id := add(t, o, t0, msg("after", 1, "A"))[0]; id <= ids["pending"]+many {
		t.Errorf("new id %d reuses a pruned one", id)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	ids := setup(t, o,
		spec{"m1", []string{"A", "B"}, 0}, spec{"m2", []string{"A"}, 0}, spec{"m3", []string{"C"}, 0},
		spec{"m4", []string{"D"}, 0}, spec{"m5", []string{"E"}, 0})
	if err := errors.Join(
		o.MarkDelivered(ctx, ids["m1"], 200, t0), o.MarkDelivered(ctx, ids["m3"], 200, t0),
		o.MarkDead(ctx, ids["m4"], 400, "bad", t0)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		state State
		limit int
		want  []string
	}{
		{Pending, 10, []string{"m5", "m2"}},
		{Delivered, 10, []string{"m3", "m1"}},
		{Dead, 10, []string{"m4"}},
		{"", 0, []string{"m5", "m4", "m3", "m2", "m1"}},
		{"", 2, []string{"m5", "m4"}},
		{Delivered, 1, []string{"m3"}},
	}
	for _, tc := range tests {
		got, err := o.List(ctx, tc.state, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(deliveryIDs(got), tc.want) {
			t.Errorf("List(%q, %d) = %v, want %v", tc.state, tc.limit, deliveryIDs(got), tc.want)
		}
		for _, m := range got {
			if m.Body != nil || len(m.Items) == 0 || m.State == "" || m.CreatedAt.IsZero() {
				t.Errorf("List(%q): %+v", tc.state, m)
			}
		}
	}
	if _, err := o.List(ctx, "bogus", 1); err == nil {
		t.Error("List with an unknown state succeeded")
	}

	got, err := o.ItemMessages(ctx, "A", 0)
	if err != nil || !slices.Equal(deliveryIDs(got), []string{"m2", "m1"}) {
		t.Errorf("ItemMessages(A) = %v, %v", deliveryIDs(got), err)
	}
	if got[1].Items[1] != (MessageItem{"B", 1, "upsert"}) {
		t.Errorf("ItemMessages items: %+v", got[1].Items)
	}
}

func TestSplitStoresAllOrNothing(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	ids := setup(t, o, spec{"big", []string{"A", "B", "C"}, 0}, spec{"later", []string{"D"}, 0}, spec{"done", []string{"E"}, 0})
	if err := o.MarkDelivered(ctx, ids["done"], 200, t0); err != nil {
		t.Fatal(err)
	}
	halves := []NewMessage{msg("big-1", 1, "A"), msg("big-2", 1, "B", "C")}
	parts := func(msgs ...NewMessage) func(map[string]bool) ([]NewMessage, error) {
		return func(map[string]bool) ([]NewMessage, error) { return msgs, nil }
	}

	// A failing split changes nothing.
	err := o.Split(ctx, ids["big"], t0, parts(halves[0], msg("later", 1, "B", "C")))
	if err == nil {
		t.Fatal("Split with a used delivery id succeeded")
	}
	if _, err := o.Get(ctx, ids["big"]); err != nil {
		t.Fatalf("message gone after a failed Split: %v", err)
	}
	if err := o.Split(ctx, ids["done"], t0, parts(halves...)); !errors.Is(err, ErrWrongState) {
		t.Errorf("Split of a delivered message: %v", err)
	}

	if err := o.Split(ctx, ids["big"], t0.Add(time.Minute), parts(halves...)); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Get(ctx, ids["big"]); !errors.Is(err, ErrNotFound) {
		t.Errorf("split message still there: %v", err)
	}
	due, err := o.Due(ctx, t0.Add(time.Minute), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := deliveryIDs(due), []string{"later", "big-1", "big-2"}; !slices.Equal(got, want) {
		t.Errorf("Due after Split = %v, want %v", got, want)
	}
	if s := stats(t, o); s.Pending != 3 || s.Delivered != 1 || s.Dead != 0 {
		t.Errorf("stats after Split: %+v", s)
	}
}

func TestNextAttempt(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	if _, ok, err := o.NextAttempt(ctx); ok || err != nil {
		t.Fatalf("NextAttempt on an empty outbox: %v, %v", ok, err)
	}
	if _, ok, err := o.NextDue(ctx, nil); ok || err != nil {
		t.Fatalf("NextDue on an empty outbox: %v, %v", ok, err)
	}
	ids := setup(t, o,
		spec{"m1", []string{"A"}, time.Hour}, spec{"m2", []string{"A"}, 0},
		spec{"m3", []string{"B"}, 10 * time.Minute}, spec{"m4", []string{"C"}, 5 * time.Minute})
	if err := o.MarkDelivered(ctx, ids["m4"], 200, t0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		exclude []string
		next    func(map[int64]bool) (time.Time, bool, error)
		want    time.Duration
		ok      bool
	}{
		{"NextAttempt: earliest pending, even if blocked", nil,
			func(map[int64]bool) (time.Time, bool, error) { return o.NextAttempt(ctx) }, 0, true},
		{"NextDue skips blocked messages", nil,
			func(ex map[int64]bool) (time.Time, bool, error) { return o.NextDue(ctx, ex) }, 10 * time.Minute, true},
		{"NextDue skips excluded messages", []string{"m3"},
			func(ex map[int64]bool) (time.Time, bool, error) { return o.NextDue(ctx, ex) }, time.Hour, true},
		{"NextDue: all excluded or blocked", []string{"m3", "m1"},
			func(ex map[int64]bool) (time.Time, bool, error) { return o.NextDue(ctx, ex) }, 0, false},
	}
	for _, tc := range tests {
		ex := map[int64]bool{}
		for _, id := range tc.exclude {
			ex[ids[id]] = true
		}
		got, ok, err := tc.next(ex)
		if err != nil {
			t.Fatal(err)
		}
		want := time.Time{}
		if tc.ok {
			want = t0.Add(tc.want)
		}
		if ok != tc.ok || !got.Equal(want) {
			t.Errorf("%s: %v, %v; want %v, %v", tc.name, got, ok, want, tc.ok)
		}
	}
}

// TestQueryPlans checks that the hot queries use their indexes: no full scan
// of a table, no sorting.
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	// Give the planner statistics like a busy outbox's.
	msgs := make([]NewMessage, 2000)
	for i := range msgs {
		msgs[i] = msg(fmt.Sprintf("d-%d", i), int64(i), fmt.Sprintf("I%d", i%300), fmt.Sprintf("J%d", i%70))
	}
	ids := add(t, o, t0, msgs...)
	markDelivered(t, o, ids[0], ids[1499], t0)
	if _, err := o.w.ExecContext(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	queries := map[string]struct {
		query string
		args  []any
		index string
	}{
		"Due":            {dueQuery, []any{t0.UnixMilli()}, "messages_state"},
		"Due probe":      {dueProbeQuery, []any{t0.UnixMilli(), dueProbe + 1}, "messages_due"},
		"Due among":      {dueAmongQuery, []any{"[1600,1700,1800]"}, "INTEGER PRIMARY KEY"},
		"NextDue":        {nextDueQuery, nil, "messages_due"},
		"NextAttempt":    {nextAttemptQuery, nil, "messages_due"},
		"MarkDelivered":  {deliveredItemsQuery, []any{ids[0]}, "PRIMARY KEY"},
		"PruneDelivered": {pruneQuery, []any{t0.UnixMilli(), pruneBatch}, "messages_delivered"},
		"Prunable":       {prunableQuery, []any{t0.UnixMilli()}, "messages_delivered"},
		"messagesByID":   {messagesByIDQuery, []any{"[1,2,3]", true}, "INTEGER PRIMARY KEY"},
		"itemsByID":      {itemsByIDQuery, []any{"[1,2,3]"}, "PRIMARY KEY"},
		"ItemStates":     {itemStatesQuery, []any{`["I1","I2"]`}, "PRIMARY KEY"},
	}
	for name, q := range queries {
		rows, err := o.w.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q.query, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		for _, line := range plan {
			if strings.HasPrefix(line, "SCAN") && !strings.Contains(line, "INDEX") || strings.Contains(line, "TEMP B-TREE") {
				t.Errorf("%s: plan has %q:\n%s", name, line, text)
			}
		}
		if !strings.Contains(text, q.index) {
			t.Errorf("%s: plan does not use %s:\n%s", name, q.index, text)
		}
		if strings.HasPrefix(name, "Due") && name != "Due probe" && !strings.Contains(text, "message_items_pending") {
			t.Errorf("Due: plan does not use message_items_pending:\n%s", text)
		}
		t.Logf("%s:\n%s", name, text)
	}
}
