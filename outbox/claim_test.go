package outbox

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func claim(t *testing.T, o *Outbox, now time.Time, limit int) []Message {
	t.Helper()
	msgs, err := o.Claim(context.Background(), now, limit)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return msgs
}

func exposed(t *testing.T, o *Outbox, id int64) bool {
	t.Helper()
	m, err := o.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m.Exposed
}

// waitingIDs runs Waiting in its own Update and returns delivery ids by code.
func waitingIDs(t *testing.T, o *Outbox, codes ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := o.Update(context.Background(), func(tx *Tx) error {
		w, err := tx.Waiting(context.Background(), codes)
		for code, m := range w {
			out[code] = m.DeliveryID
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClaimHandsOutOnceAndMarksTheAttempt(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	ids := setup(t, o, spec{"m1", []string{"A"}, 0}, spec{"m2", []string{"A"}, 0}, spec{"m3", []string{"B"}, 0})
	got := claim(t, o, t0, 10)
	if !slices.Equal(deliveryIDs(got), []string{"m1", "m3"}) {
		t.Fatalf("Claim = %v, want m1 m3 (m2 waits behind m1)", deliveryIDs(got))
	}
	if again := claim(t, o, t0, 10); len(again) != 0 {
		t.Errorf("a second Claim handed out %v again", deliveryIDs(again))
	}
	if !exposed(t, o, ids["m1"]) || exposed(t, o, ids["m2"]) {
		t.Error("Claim must mark the claimed messages (only) as exposed")
	}
	if c := o.Claimed(); !c[ids["m1"]] || !c[ids["m3"]] || len(c) != 2 {
		t.Errorf("Claimed = %v", c)
	}
	// m1 refused (503): it counts as never sent again. m3 timed out: possibly received.
	must(t, o.MarkRefused(ctx, ids["m1"], 503, "unavailable", t0))
	must(t, o.MarkRetry(ctx, ids["m3"], 0, "timeout", t0))
	o.Release(ids["m1"], ids["m3"])
	if exposed(t, o, ids["m1"]) || !exposed(t, o, ids["m3"]) {
		t.Errorf("after MarkRefused / MarkRetry: m1 exposed %v (want false), m3 exposed %v (want true)", exposed(t, o, ids["m1"]), exposed(t, o, ids["m3"]))
	}
	got = claim(t, o, t0, 10)
	if !slices.Equal(deliveryIDs(got), []string{"m1", "m3"}) {
		t.Fatalf("after Release, Claim = %v, want m1 m3", deliveryIDs(got))
	}
	// A refusal after a possibly received attempt keeps it possibly received.
	must(t, o.MarkRefused(ctx, ids["m3"], 503, "unavailable", t0))
	if !exposed(t, o, ids["m3"]) {
		t.Error("MarkRefused forgot an earlier attempt that may have reached the receiver")
	}
	must(t, o.EndAttempt(ctx, ids["m1"], false))
	if exposed(t, o, ids["m1"]) {
		t.Error("EndAttempt(false) after a clean history must leave the message unexposed")
	}
	must(t, o.EndAttempt(ctx, ids["m1"], true))
	if !exposed(t, o, ids["m1"]) {
		t.Error("EndAttempt(true) must mark the message exposed")
	}
}

// TestClaimCutShortByCrash: an attempt whose end was never recorded (the
// process died) leaves the message possibly received.
func TestClaimCutShortByCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(context.Background(), path)
	must(t, err)
	ids := setup(t, o, spec{"m1", []string{"A"}, 0})
	claim(t, o, t0, 1)
	must(t, o.Close()) // no outcome recorded
	o = openTest(t, path)
	if !exposed(t, o, ids["m1"]) {
		t.Fatal("a message whose attempt was cut short is not exposed")
	}
	got := claim(t, o, t0, 1)
	must(t, o.MarkRefused(context.Background(), got[0].ID, 503, "unavailable", t0))
	if !exposed(t, o, ids["m1"]) {
		t.Error("a refusal after a cut-short attempt must keep the message exposed")
	}
	if w := waitingIDs(t, o, "A"); len(w) != 0 {
		t.Errorf("Waiting offered an exposed message: %v", w)
	}
}

func TestWaiting(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	ids := setup(t, o,
		spec{"m1", []string{"A", "B"}, 0},
		spec{"m2", []string{"A"}, 0}, // newest for A, behind m1
		spec{"m3", []string{"C"}, 0},
		spec{"m4", []string{"D"}, 0},
	)
	got := claim(t, o, t0, 10) // m1, m3, m4
	must(t, o.MarkRefused(ctx, ids["m3"], 503, "x", t0))
	must(t, o.MarkDelivered(ctx, ids["m4"], 200, t0))
	o.Release(ids["m3"], ids["m4"])
	if len(got) != 3 {
		t.Fatalf("claimed %v", deliveryIDs(got))
	}
	w := waitingIDs(t, o, "A", "B", "C", "D", "E")
	want := map[string]string{"A": "m2", "C": "m3"} // B: only in claimed m1; D: delivered; E: never queued
	if len(w) != len(want) || w["A"] != "m2" || w["C"] != "m3" {
		t.Errorf("Waiting = %v, want %v", w, want)
	}
}

func TestRewriteKeepsOrderAndNeverTouchesAMessageInFlight(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	ids := setup(t, o, spec{"m1", []string{"A", "B"}, time.Minute}, spec{"m2", []string{"B"}, 0}, spec{"m3", []string{"C"}, 0})
	err := o.Update(ctx, func(tx *Tx) error {
		w, err := tx.Waiting(ctx, []string{"A"})
		if err != nil {
			return err
		}
		m := w["A"]
		if m.DeliveryID != "m1" || len(m.Body) == 0 || len(m.Items) != 2 {
			t.Errorf("Waiting[A] = %+v", m)
		}
		n := msg("m1b", 2, "A")
		n.Items = append(n.Items, MessageItem{Code: "B", Version: 1, Op: "upsert"})
		return tx.Rewrite(ctx, m.ID, n, t0)
	})
	must(t, err)
	m, err := o.Get(ctx, ids["m1"])
	must(t, err)
	if m.DeliveryID != "m1b" || m.Items[0].Version != 2 || !m.NextAttemptAt.Equal(t0.Add(time.Minute)) || m.Exposed {
		t.Errorf("rewritten message = %+v", m)
	}
	if _, err := o.GetByDeliveryID(ctx, "m1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old delivery id still stored: %v", err)
	}
	// m2 still waits behind the rewritten m1 (B), which is not due yet.
	if got := claim(t, o, t0, 10); !slices.Equal(deliveryIDs(got), []string{"m3"}) {
		t.Errorf("Claim = %v, want m3", deliveryIDs(got))
	}
	// m3 is claimed: Rewrite and DropMessage refuse it.
	err = o.Update(ctx, func(tx *Tx) error { return tx.Rewrite(ctx, ids["m3"], msg("m3b", 2, "C"), t0) })
	if !errors.Is(err, ErrWrongState) {
		t.Errorf("Rewrite of a claimed message: %v", err)
	}
	err = o.Update(ctx, func(tx *Tx) error { return tx.DropMessage(ctx, ids["m3"]) })
	if !errors.Is(err, ErrWrongState) {
		t.Errorf("DropMessage of a claimed message: %v", err)
	}
	must(t, o.MarkRetry(ctx, ids["m3"], 0, "timeout", t0))
	o.Release(ids["m3"])
	err = o.Update(ctx, func(tx *Tx) error { return tx.Rewrite(ctx, ids["m3"], msg("m3b", 2, "C"), t0) })
	if !errors.Is(err, ErrWrongState) {
		t.Errorf("Rewrite of an exposed message: %v", err)
	}
	must(t, o.Update(ctx, func(tx *Tx) error { return tx.DropMessage(ctx, ids["m2"]) }))
	if _, err := o.Get(ctx, ids["m2"]); !errors.Is(err, ErrNotFound) {
		t.Errorf("dropped message still there: %v", err)
	}
}

// TestClaimWaitsForARewritingTransaction: what Waiting returned is not handed
// out before the transaction ends, so a message is never both rewritten and
// delivered under its old delivery id.
func TestClaimWaitsForARewritingTransaction(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	ids := setup(t, o, spec{"m1", []string{"A"}, 0})
	inTx := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- o.Update(ctx, func(tx *Tx) error {
			if _, err := tx.Waiting(ctx, []string{"A"}); err != nil {
				return err
			}
			close(inTx)
			<-release
			return tx.Rewrite(ctx, ids["m1"], msg("m1b", 2, "A"), t0)
		})
	}()
	<-inTx
	claimed := make(chan []Message, 1)
	go func() {
		msgs, _ := o.Claim(ctx, t0, 10)
		claimed <- msgs
	}()
	select {
	case msgs := <-claimed:
		t.Fatalf("Claim returned %v while a transaction was rewriting", deliveryIDs(msgs))
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	must(t, <-done)
	if got := <-claimed; !slices.Equal(deliveryIDs(got), []string{"m1b"}) {
		t.Errorf("Claim after the rewrite = %v, want m1b", deliveryIDs(got))
	}
}

func TestExpedite(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	ids := setup(t, o, spec{"m1", []string{"A"}, time.Hour}, spec{"m2", []string{"B"}, -time.Minute}, spec{"m3", []string{"C"}, time.Minute})
	must(t, o.MarkDelivered(ctx, ids["m2"], 200, t0))
	n, err := o.Expedite(ctx, t0)
	must(t, err)
	if n != 2 {
		t.Errorf("Expedite moved %d messages, want 2", n)
	}
	if got := claim(t, o, t0, 10); !slices.Equal(deliveryIDs(got), []string{"m1", "m3"}) {
		t.Errorf("due after Expedite: %v", deliveryIDs(got))
	}
}

func TestSplit(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	ids := setup(t, o, spec{"m1", []string{"A", "B", "C"}, 0}, spec{"m2", []string{"A"}, 0}, spec{"m3", []string{"D", "E"}, 0})
	var seen map[string]bool
	// A part holding A (newer in m2) is refused, and nothing changes.
	err := o.Split(ctx, ids["m1"], t0, func(superseded map[string]bool) ([]NewMessage, error) {
		seen = superseded
		return []NewMessage{msg("p1", 1, "A", "B"), msg("p2", 1, "C")}, nil
	})
	if !errors.Is(err, ErrWrongState) {
		t.Fatalf("Split with a superseded item in a part: %v", err)
	}
	if len(seen) != 1 || !seen["A"] {
		t.Errorf("superseded = %v, want A", seen)
	}
	if _, err := o.Get(ctx, ids["m1"]); err != nil {
		t.Fatalf("message gone after a failed Split: %v", err)
	}
	must(t, o.Split(ctx, ids["m1"], t0, func(map[string]bool) ([]NewMessage, error) {
		return []NewMessage{msg("p1", 1, "B"), msg("p2", 1, "C")}, nil
	}))
	if got := claim(t, o, t0, 10); !slices.Equal(deliveryIDs(got), []string{"m2", "m3", "p1", "p2"}) {
		t.Errorf("due after Split = %v", deliveryIDs(got))
	}
	// No parts: the message goes.
	must(t, o.Split(ctx, ids["m3"], t0, func(map[string]bool) ([]NewMessage, error) { return nil, nil }))
	if _, err := o.Get(ctx, ids["m3"]); !errors.Is(err, ErrNotFound) {
		t.Errorf("message split into nothing still there: %v", err)
	}
}

// TestMigrateFromVersion1: messages attempted before exposure existed count
// as possibly received, and every body is kept when bodies move to a table of
// their own.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	db, err := sql.Open("sqlite", "file:"+path)
	must(t, err)
	_, err = db.Exec(migrations()[0] + `
		PRAGMA application_id = 1701998707; PRAGMA user_version = 1;
		INSERT INTO messages (delivery_id, body, attempts, next_attempt_at, created_at, updated_at) VALUES
			('new', 'body of new', 0, 1, 1, 1), ('tried', 'body of tried', 3, 1, 1, 1);
		INSERT INTO message_items (message_id, seq, item_code, version, op) VALUES (1, 0, 'A', 1, 'upsert'), (2, 0, 'B', 1, 'upsert');`)
	must(t, err)
	must(t, db.Close())
	o := openTest(t, path)
	if w := waitingIDs(t, o, "A", "B"); len(w) != 1 || w["A"] != "new" {
		t.Errorf("Waiting after migration = %v, want only A in the never-attempted message", w)
	}
	m, err := o.GetByDeliveryID(ctx, "tried")
	must(t, err)
	if !m.Exposed {
		t.Error("a message attempted before the migration is not exposed")
	}
	for _, id := range []string{"new", "tried"} {
		m, err := o.GetByDeliveryID(ctx, id)
		must(t, err)
		if string(m.Body) != "body of "+id {
			t.Errorf("body of %s after migration = %q", id, m.Body)
		}
	}
	// A message stored before the migration can still be rewritten (it
	// never was attempted), and reads back its new body.
	w, err := o.GetByDeliveryID(ctx, "new")
	must(t, err)
	must(t, o.Update(ctx, func(tx *Tx) error {
		if _, err := tx.Waiting(ctx, []string{"A"}); err != nil {
			return err
		}
		return tx.Rewrite(ctx, w.ID, NewMessage{DeliveryID: "new-2", Body: []byte("rewritten"),
			Items: []MessageItem{{Code: "A", Version: 2, Op: "upsert"}}}, t0)
	}))
	if m, err := o.GetByDeliveryID(ctx, "new-2"); err != nil || string(m.Body) != "rewritten" {
		t.Errorf("rewritten message: body %q, %v", m.Body, err)
	}
	id := add(t, o, t0, msg("after", 1, "C"))[0]
	if m, err := o.Get(ctx, id); err != nil || len(m.Body) == 0 {
		t.Errorf("message stored after the migration: body %q, %v", m.Body, err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestEndAttemptsGivesBackUnsentClaims: messages claimed but never sent go
// back as they were, in one call; a message that may have been received
// before keeps that.
func TestEndAttemptsGivesBackUnsentClaims(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	ids := setup(t, o, spec{"m1", []string{"A"}, 0}, spec{"m2", []string{"B"}, 0}, spec{"m3", []string{"C"}, 0})
	claim(t, o, t0, 10)
	must(t, o.MarkRetry(ctx, ids["m3"], 0, "timeout", t0)) // m3: possibly received
	o.Release(ids["m3"])
	claim(t, o, t0, 10)
	must(t, o.EndAttempts(ctx, []int64{ids["m1"], ids["m2"], ids["m3"]}, false))
	o.Release(ids["m1"], ids["m2"], ids["m3"])
	for name, want := range map[string]bool{"m1": false, "m2": false, "m3": true} {
		if got := exposed(t, o, ids[name]); got != want {
			t.Errorf("%s exposed = %v after EndAttempts(false), want %v", name, got, want)
		}
	}
	if w := waitingIDs(t, o, "A", "B", "C"); len(w) != 2 || w["A"] != "m1" || w["B"] != "m2" {
		t.Errorf("Waiting = %v, want m1 and m2 open to coalescing again", w)
	}
	must(t, o.EndAttempts(ctx, nil, false))
}

// TestMarkDeliveredBatch: one transaction stores every accepted delivery; a
// message no longer pending is skipped, not an error, and the others are
// stored.
func TestMarkDeliveredBatch(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	ids := setup(t, o, spec{"m1", []string{"A"}, 0}, spec{"m2", []string{"B"}, 0}, spec{"m3", []string{"C"}, 0})
	claim(t, o, t0, 10)
	must(t, o.MarkDead(ctx, ids["m2"], 422, "poison", t0)) // an operator's doing, say
	skipped, err := o.MarkDeliveredBatch(ctx, []Accepted{{ID: ids["m1"], Status: 200}, {ID: ids["m2"], Status: 200}, {ID: ids["m3"], Status: 202}}, t0)
	must(t, err)
	if !slices.Equal(skipped, []int64{ids["m2"]}) {
		t.Errorf("skipped = %v, want [m2's id %d]", skipped, ids["m2"])
	}
	for name, want := range map[string]State{"m1": Delivered, "m2": Dead, "m3": Delivered} {
		m, err := o.Get(ctx, ids[name])
		must(t, err)
		if m.State != want || (want == Delivered && (m.Attempts != 1 || !m.DeliveredAt.Equal(t0))) {
			t.Errorf("%s: state %s attempts %d delivered_at %v; want %s", name, m.State, m.Attempts, m.DeliveredAt, want)
		}
	}
	if m, _ := o.Get(ctx, ids["m3"]); m.LastStatus != 202 {
		t.Errorf("m3 last status %d, want 202", m.LastStatus)
	}
	if skipped, err := o.MarkDeliveredBatch(ctx, nil, t0); err != nil || len(skipped) != 0 {
		t.Errorf("empty batch: %v, %v", skipped, err)
	}
}

func TestAddClaimedMessage(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openTest(t, path)
	ids := setup(t, o, spec{"old", []string{"B"}, 0})

	// Rolled back: nothing stored, nothing claimed.
	errStop := errors.New("stop")
	err := o.Update(ctx, func(tx *Tx) error {
		if _, err := tx.AddClaimedMessage(ctx, msg("gone", 1, "A"), t0); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Update = %v, want errStop", err)
	}
	if c := o.Claimed(); len(c) != 0 {
		t.Fatalf("a rolled back AddClaimedMessage left claims %v", c)
	}

	var got Message
	err = o.Update(ctx, func(tx *Tx) error {
		var err error
		got, err = tx.AddClaimedMessage(ctx, msg("fresh", 1, "A"), t0)
		if err == nil && o.claimed[got.ID] { // the transaction holds claimMu
			t.Error("the claim exists before Update committed")
		}
		return err
	})
	must(t, err)
	if got.DeliveryID != "fresh" || got.State != Pending || !got.Exposed || len(got.Body) == 0 || len(got.Items) != 1 || got.ID <= ids["old"] {
		t.Errorf("AddClaimedMessage returned %+v", got)
	}
	if !o.Claimed()[got.ID] {
		t.Error("not claimed after commit")
	}
	if !exposed(t, o, got.ID) {
		t.Error("stored without the attempt's mark: a crash during its attempt would let it be rewritten")
	}
	if c := claim(t, o, t0, 10); !slices.Equal(deliveryIDs(c), []string{"old"}) {
		t.Errorf("Claim = %v, want only old (fresh is claimed already)", deliveryIDs(c))
	}

	// The process dies during the attempt: the next process hands the
	// message out with its delivery id, as possibly received.
	o2 := openTest(t, path)
	c := claim(t, o2, t0, 10)
	if !slices.Equal(deliveryIDs(c), []string{"old", "fresh"}) || !c[1].Exposed {
		t.Errorf("after a restart Claim = %v (exposed %v), want old fresh, fresh exposed", deliveryIDs(c), len(c) == 2 && c[1].Exposed)
	}
}

func TestPendingItems(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	ids := setup(t, o, spec{"m1", []string{"A", "B"}, 0}, spec{"m2", []string{"C"}, 0}, spec{"m3", []string{"D"}, 0}, spec{"m4", []string{"E"}, 0})
	claim(t, o, t0, 10)
	must(t, o.MarkDelivered(ctx, ids["m2"], 200, t0))
	must(t, o.MarkDead(ctx, ids["m3"], 422, "refused", t0))
	must(t, o.MarkRetry(ctx, ids["m4"], 0, "timeout", t0))
	var got map[string]bool
	must(t, o.Update(ctx, func(tx *Tx) error {
		var err error
		got, err = tx.PendingItems(ctx, []string{"A", "B", "C", "D", "E", "F"})
		return err
	}))
	want := map[string]bool{"A": true, "B": true, "E": true} // m1 claimed, m4 to retry; m2 delivered, m3 dead, F never queued
	if !maps.Equal(got, want) {
		t.Errorf("PendingItems = %v, want %v", got, want)
	}
}

// TestMarkDeliveredBatchRecordsItems: either way MarkDeliveredBatch stores a
// group (all pending, or one of them no longer), each delivered message's
// items get their delivered version and no longer count as pending.
func TestMarkDeliveredBatchRecordsItems(t *testing.T) {
	for _, tt := range []struct {
		name    string
		deadOne bool
	}{{"all pending", false}, {"one no longer pending", true}} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			o := openTest(t, "")
			var ids []int64
			must(t, o.Update(ctx, func(tx *Tx) error {
				for i, codes := range [][]string{{"A", "B"}, {"C"}, {"D"}} {
					for _, c := range codes {
						if err := tx.PutItemState(ctx, ItemState{Code: c, Version: 7, Hash: "h" + c}); err != nil {
							return err
						}
					}
					id, err := tx.AddMessage(ctx, msg(fmt.Sprint("m", i), 7, codes...), t0)
					ids = append(ids, id)
					if err != nil {
						return err
					}
				}
				return nil
			}))
			claim(t, o, t0, 10)
			if tt.deadOne {
				must(t, o.MarkDead(ctx, ids[2], 422, "poison", t0))
			}
			skipped, err := o.MarkDeliveredBatch(ctx, []Accepted{{ID: ids[0], Status: 200}, {ID: ids[1], Status: 202}, {ID: ids[2], Status: 200}}, t0)
			must(t, err)
			wantDelivered := map[string]int64{"A": 7, "B": 7, "C": 7, "D": 7}
			if tt.deadOne {
				wantDelivered["D"] = 0
				if !slices.Equal(skipped, []int64{ids[2]}) {
					t.Errorf("skipped = %v, want [%d]", skipped, ids[2])
				}
			} else if len(skipped) != 0 {
				t.Errorf("skipped = %v, want none", skipped)
			}
			for code, want := range wantDelivered {
				st, _, err := o.ItemState(ctx, code)
				must(t, err)
				if st.DeliveredVersion != want || (want != 0 && st.DeliveredHash != "h"+code) {
					t.Errorf("item %s: delivered version %d hash %q, want %d", code, st.DeliveredVersion, st.DeliveredHash, want)
				}
			}
			var pending map[string]bool
			must(t, o.Update(ctx, func(tx *Tx) error {
				pending, err = tx.PendingItems(ctx, []string{"A", "B", "C", "D"})
				return err
			}))
			if len(pending) != 0 {
				t.Errorf("pending after delivery: %v", pending)
			}
			if m, _ := o.Get(ctx, ids[1]); m.State != Delivered || m.LastStatus != 202 || m.Attempts != 1 {
				t.Errorf("message with status 202: %+v", m)
			}
		})
	}
}

// TestBodySizes: bodies of every size come back byte for byte from each way
// of reading a message, after a rewrite to another size, and after the
// message was delivered; small ones stay in the message's row, large ones go
// to message_bodies.
func TestBodySizes(t *testing.T) {
	ctx := context.Background()
	body := func(n int, fill byte) []byte { return bytes.Repeat([]byte{fill}, n) }
	tests := []struct {
		name          string
		size, rewrite int // rewrite 0: not rewritten
		separate      bool
	}{
		{name: "small", size: 40},
		{name: "largest inline", size: inlineBody},
		{name: "just over", size: inlineBody + 1, separate: true},
		{name: "batch of 100", size: 50_000, separate: true},
		{name: "small rewritten large", size: 40, rewrite: 50_000, separate: true},
		{name: "large rewritten small", size: 50_000, rewrite: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := openTest(t, "")
			m := msg("m1", 1, "A")
			m.Body = body(tt.size, 'a')
			id := add(t, o, t0, m)[0]
			want := m.Body
			if tt.rewrite > 0 {
				want = body(tt.rewrite, 'b')
				must(t, o.Update(ctx, func(tx *Tx) error {
					if _, err := tx.Waiting(ctx, []string{"A"}); err != nil {
						return err
					}
					return tx.Rewrite(ctx, id, NewMessage{DeliveryID: "m1-2", Body: want, Items: m.Items}, t0)
				}))
			}
			var rows int
			must(t, o.r.QueryRowContext(ctx, `SELECT count(*) FROM message_bodies WHERE message_id = ?`, id).Scan(&rows))
			if (rows == 1) != tt.separate {
				t.Errorf("%d rows in message_bodies, want the body there: %v", rows, tt.separate)
			}
			got, err := o.Get(ctx, id)
			must(t, err)
			if !bytes.Equal(got.Body, want) {
				t.Errorf("Get: body of %d bytes, want %d", len(got.Body), len(want))
			}
			claimed := claim(t, o, t0, 10)
			if len(claimed) != 1 || !bytes.Equal(claimed[0].Body, want) {
				t.Fatalf("Claim: %d messages, want 1 with the body of %d bytes", len(claimed), len(want))
			}
			must(t, o.MarkDelivered(ctx, id, 200, t0))
			if got, err := o.Get(ctx, id); err != nil || !bytes.Equal(got.Body, want) {
				t.Errorf("after delivery: body of %d bytes, %v; want %d", len(got.Body), err, len(want))
			}
		})
	}
}
