package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openTest(t testing.TB, path string) *Outbox {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "outbox.db")
	}
	o, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := o.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return o
}

// msg builds a message holding the given items, each at version v.
func msg(id string, v int64, codes ...string) NewMessage {
	m := NewMessage{DeliveryID: id, Body: []byte(`{"delivery_id":"` + id + `"}`)}
	for _, c := range codes {
		m.Items = append(m.Items, MessageItem{Code: c, Version: v, Op: "upsert"})
	}
	return m
}

// add stores messages in one Update at now and returns their ids.
func add(t testing.TB, o *Outbox, now time.Time, msgs ...NewMessage) []int64 {
	t.Helper()
	var ids []int64
	err := o.Update(context.Background(), func(tx *Tx) error {
		ids = ids[:0]
		for _, m := range msgs {
			id, err := tx.AddMessage(context.Background(), m, now)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	return ids
}

func stats(t testing.TB, o *Outbox) Stats {
	t.Helper()
	s, err := o.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

func TestOpenMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "outbox.db")
	_, err := Open(context.Background(), path)
	if err == nil {
		t.Fatal("Open succeeded in a missing directory")
	}
	for _, want := range []string{path, "does not exist", "outbox.path"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open created the directory: %v", err)
	}
}

func TestOpenEmptyPath(t *testing.T) {
	if _, err := Open(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "outbox.path") {
		t.Fatalf("Open(\"\") = %v, want an error naming outbox.path", err)
	}
}

func TestOpenCreatesPrivateWALFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openTest(t, path)
	add(t, o, t0, msg("d-1", 1, "A"))

	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(p), mode)
		}
	}
	pragmas := map[string]string{"journal_mode": "wal", "synchronous": "1", "foreign_keys": "1", "busy_timeout": "10000", "wal_autocheckpoint": "0"}
	for name, want := range pragmas {
		var got string
		if err := o.w.QueryRowContext(context.Background(), "PRAGMA "+name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("writer PRAGMA %s = %s, want %s", name, got, want)
		}
	}
	var v int
	if err := o.r.QueryRowContext(context.Background(), "PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion {
		t.Errorf("user_version = %d, %v; want %d", v, err, SchemaVersion)
	}
	if n := len(migrations()); n != SchemaVersion {
		t.Errorf("%d migration steps, SchemaVersion %d", n, SchemaVersion)
	}
}

func TestOpenPathNeedingURIEscapes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd?name#with%chars.db")
	o := openTest(t, path)
	add(t, o, t0, msg("d-1", 1, "A"))
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("outbox not at the given path: %v", err)
	}
}

func TestOpenRejectsForeignFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	other := filepath.Join(dir, "other.db")
	db, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE x (y)"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	newer := filepath.Join(dir, "newer.db")
	o := openTest(t, newer)
	if _, err := o.w.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion+1)); err != nil {
		t.Fatal(err)
	}

	text := filepath.Join(dir, "text.db")
	if err := os.WriteFile(text, []byte(strings.Repeat("not a database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ path, want string }{
		{other, "not an erpsync outbox"},
		{newer, "newer than this erpsync"},
		{text, text},
	} {
		o, err := Open(ctx, tc.path)
		if err == nil {
			o.Close()
			t.Errorf("Open(%s) succeeded", filepath.Base(tc.path))
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("Open(%s) = %v, want it to name the path and say %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	add(t, o, t0, msg("d-1", 1, "A"))
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = openTest(t, path)
	m, err := o.GetByDeliveryID(ctx, "d-1")
	if err != nil || m.State != Pending || len(m.Items) != 1 {
		t.Fatalf("after reopen: %+v, %v", m, err)
	}
}

func TestUpdateIsAtomic(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	tests := []struct {
		name string
		fn   func(tx *Tx) error
		want error
	}{
		{"fn error", func(tx *Tx) error { return boom }, boom},
		{"bad message after good ones", func(tx *Tx) error {
			if _, err := tx.AddMessage(ctx, msg("d-x", 2, "B"), t0); err != nil {
				return err
			}
			_, err := tx.AddMessage(ctx, NewMessage{DeliveryID: "d-y"}, t0) // empty body
			return err
		}, nil},
		{"duplicate delivery id", func(tx *Tx) error {
			_, err := tx.AddMessage(ctx, msg("d-1", 2, "B"), t0)
			return err
		}, nil},
		{"version going down", func(tx *Tx) error {
			return tx.PutItemState(ctx, ItemState{Code: "A", Version: 0, Hash: "h0"})
		}, nil},
		{"fn goes on after a failed AddMessage", func(tx *Tx) error {
			tx.AddMessage(ctx, msg("d-1", 2, "B"), t0) // duplicate delivery id, error ignored
			return nil
		}, nil},
		{"canceled context", nil, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := openTest(t, "")
			ctx := context.Background()
			if err := o.Update(ctx, func(tx *Tx) error {
				if _, err := tx.AddMessage(ctx, msg("d-1", 1, "A"), t0); err != nil {
					return err
				}
				if err := tx.PutItemState(ctx, ItemState{Code: "A", Version: 1, Hash: "h1"}); err != nil {
					return err
				}
				return tx.SetCursor(ctx, Cursor{Source: "item", Modified: "m1", Name: "A"})
			}); err != nil {
				t.Fatal(err)
			}

			fn := tc.fn
			uctx := ctx
			if fn == nil { // cancel in the middle of fn
				var cancel context.CancelFunc
				uctx, cancel = context.WithCancel(ctx)
				fn = func(tx *Tx) error {
					cancel()
					return nil
				}
			}
			err := o.Update(uctx, func(tx *Tx) error {
				if _, err := tx.AddMessage(ctx, msg("d-2", 2, "A"), t0); err != nil {
					return err
				}
				if err := tx.PutItemState(ctx, ItemState{Code: "A", Version: 2, Hash: "h2"}); err != nil {
					return err
				}
				if err := tx.SetCursor(ctx, Cursor{Source: "item", Modified: "m2", Name: "A"}); err != nil {
					return err
				}
				if err := tx.SetCursor(ctx, Cursor{Source: "bin", Modified: "b2"}); err != nil {
					return err
				}
				if err := tx.SetMeta(ctx, "initial_sync", "done"); err != nil {
					return err
				}
				return fn(tx)
			})
			if err == nil {
				t.Fatal("Update succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Update error %v, want %v", err, tc.want)
			}

			if s := stats(t, o); s.Pending != 1 {
				t.Errorf("%d pending messages, want 1", s.Pending)
			}
			if _, err := o.GetByDeliveryID(ctx, "d-2"); !errors.Is(err, ErrNotFound) {
				t.Errorf("d-2 stored: %v", err)
			}
			cur, err := o.Cursors(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := (map[string]Cursor{"item": {"item", "m1", "A"}}); fmt.Sprint(cur) != fmt.Sprint(want) {
				t.Errorf("cursors %v, want %v", cur, want)
			}
			if st, _, _ := o.ItemState(ctx, "A"); st.Version != 1 || st.Hash != "h1" {
				t.Errorf("item A %+v, want version 1", st)
			}
			if _, ok, _ := o.Meta(ctx, "initial_sync"); ok {
				t.Error("meta stored")
			}
			// The outbox still works.
			add(t, o, t0, msg("d-3", 3, "A"))
		})
	}
}

func TestUpdatePanicStoresNothing(t *testing.T) {
	o := openTest(t, "")
	ctx := context.Background()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic not propagated")
			}
		}()
		o.Update(ctx, func(tx *Tx) error {
			tx.AddMessage(ctx, msg("d-1", 1, "A"), t0)
			panic("boom")
		})
	}()
	if s := stats(t, o); s.Pending != 0 {
		t.Errorf("%d pending after panic", s.Pending)
	}
	add(t, o, t0, msg("d-2", 1, "A")) // the write connection was released
}

func TestAddMessageValidates(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	tests := []struct {
		name string
		m    NewMessage
		want string
	}{
		{"empty delivery id", NewMessage{Body: []byte("x")}, "empty delivery id"},
		{"empty body", NewMessage{DeliveryID: "d"}, "empty body"},
		{"empty item code", NewMessage{DeliveryID: "d", Body: []byte("x"), Items: []MessageItem{{Version: 1, Op: "upsert"}}}, "empty item code"},
		{"empty op", NewMessage{DeliveryID: "d", Body: []byte("x"), Items: []MessageItem{{Code: "A", Version: 1}}}, "empty op"},
		{"item twice", msg("d", 1, "A", "B", "A"), "appears twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := o.Update(ctx, func(tx *Tx) error {
				_, err := tx.AddMessage(ctx, tc.m, t0)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), o.Path()) {
				t.Errorf("AddMessage = %v, want an error naming the path and saying %q", err, tc.want)
			}
		})
	}
}

func TestItemStates(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	const n = 1200 // more than one IN list
	codes := make([]string, 0, n+1)
	err := o.Update(ctx, func(tx *Tx) error {
		for i := range n {
			code := fmt.Sprintf("ITEM-%04d", i)
			codes = append(codes, code)
			if err := tx.PutItemState(ctx, ItemState{Code: code, Version: int64(i), Hash: "h" + code, Deleted: i%3 == 0}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	codes = append(codes, "MISSING")
	var got map[string]ItemState
	err = o.Update(ctx, func(tx *Tx) error {
		got, err = tx.ItemStates(ctx, codes)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d states, want %d", len(got), n)
	}
	if _, ok := got["MISSING"]; ok {
		t.Error("MISSING present")
	}
	for i, code := range codes[:n] {
		want := ItemState{Code: code, Version: int64(i), Hash: "h" + code, Deleted: i%3 == 0}
		g := got[code]
		if g.QueuedAt.IsZero() {
			t.Errorf("%s: no QueuedAt", code)
		}
		g.QueuedAt = time.Time{}
		if g != want {
			t.Fatalf("%s: %+v, want %+v", code, g, want)
		}
	}

	// Equal versions are allowed, lower ones are not, and the state is kept.
	err = o.Update(ctx, func(tx *Tx) error {
		return tx.PutItemState(ctx, ItemState{Code: "ITEM-0005", Version: 5, Hash: "again"})
	})
	if err != nil {
		t.Errorf("same version: %v", err)
	}
	err = o.Update(ctx, func(tx *Tx) error {
		return tx.PutItemState(ctx, ItemState{Code: "ITEM-0005", Version: 4, Hash: "older"})
	})
	if err == nil || !strings.Contains(err.Error(), "lower than the stored version 5") {
		t.Errorf("lower version: %v", err)
	}
	if s, ok, err := o.ItemState(ctx, "ITEM-0005"); err != nil || !ok || s.Hash != "again" || s.Version != 5 {
		t.Errorf("ItemState = %+v, %v, %v", s, ok, err)
	}
	if _, ok, err := o.ItemState(ctx, "MISSING"); ok || err != nil {
		t.Errorf("ItemState(MISSING) = %v, %v", ok, err)
	}
}

func TestCursorsAndMeta(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	if c, err := o.Cursors(ctx); err != nil || len(c) != 0 {
		t.Fatalf("Cursors = %v, %v", c, err)
	}
	steps := []struct {
		set  []Cursor
		meta map[string]string
	}{
		{[]Cursor{{"item", "2026-01-01 10:00:00.000001", "A"}, {"bin", "2026-01-01", "B"}}, map[string]string{"initial_sync": "after:A"}},
		{[]Cursor{{"item", "2026-01-02", "Z"}}, map[string]string{"initial_sync": "done", "other": ""}},
	}
	want := map[string]Cursor{}
	wantMeta := map[string]string{}
	for i, st := range steps {
		err := o.Update(ctx, func(tx *Tx) error {
			for _, c := range st.set {
				if err := tx.SetCursor(ctx, c); err != nil {
					return err
				}
			}
			for k, v := range st.meta {
				if err := tx.SetMeta(ctx, k, v); err != nil {
					return err
				}
				if got, ok, err := tx.Meta(ctx, k); err != nil || !ok || got != v {
					return fmt.Errorf("tx.Meta(%s) = %q, %v, %v", k, got, ok, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.set {
			want[c.Source] = c
		}
		for k, v := range st.meta {
			wantMeta[k] = v
		}
		got, err := o.Cursors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("step %d: cursors %v, want %v", i, got, want)
		}
		for k, v := range wantMeta {
			if got, ok, err := o.Meta(ctx, k); err != nil || !ok || got != v {
				t.Errorf("step %d: Meta(%s) = %q, %v, %v; want %q", i, k, got, ok, err, v)
			}
		}
	}
	if _, ok, err := o.Meta(ctx, "nope"); ok || err != nil {
		t.Errorf("Meta(nope) = %v, %v", ok, err)
	}
	err := o.Update(ctx, func(tx *Tx) error { return tx.SetCursor(ctx, Cursor{}) })
	if err == nil {
		t.Error("SetCursor with an empty source succeeded")
	}
}

// TestSecondOutboxReadsWhileFirstWrites opens the file twice, as the daemon
// and `erpsync status` would, and has both write and read at once.
func TestSecondOutboxReadsWhileFirstWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	daemon := openTest(t, path)
	status := openTest(t, path)

	const updates, perUpdate = 100, 5
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	done := make(chan struct{})
	wg.Add(1)
	go func() { // the detector
		defer wg.Done()
		defer close(done)
		for i := range updates {
			err := daemon.Update(ctx, func(tx *Tx) error {
				for j := range perUpdate {
					n := i*perUpdate + j
					if _, err := tx.AddMessage(ctx, msg(fmt.Sprintf("d-%d", n), int64(n), fmt.Sprintf("I%d", n%17)), t0); err != nil {
						return err
					}
				}
				return tx.SetCursor(ctx, Cursor{Source: "item", Modified: fmt.Sprint(i)})
			})
			if err != nil {
				errs <- fmt.Errorf("daemon update %d: %w", i, err)
				return
			}
		}
	}()
	wg.Add(1)
	go func() { // a second writer on the other handle: the other process's writes wait, not fail
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			msgs, err := status.Due(ctx, t0, 10, nil)
			if err != nil {
				errs <- err
				return
			}
			for _, m := range msgs {
				if err := status.MarkDelivered(ctx, m.ID, 200, t0); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	reads := 0
	var last Stats
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		s, err := status.Stats(ctx)
		if err != nil {
			t.Fatalf("Stats while writing: %v", err)
		}
		total, lastTotal := s.Pending+s.Delivered+s.Dead, last.Pending+last.Delivered+last.Dead
		if total < lastTotal || s.Delivered < last.Delivered || total%perUpdate != 0 {
			t.Fatalf("Stats went from %+v to %+v", last, s)
		}
		last = s
		reads++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := stats(t, status)
	if s.Pending+s.Delivered != updates*perUpdate {
		t.Errorf("final stats %+v, want %d messages", s, updates*perUpdate)
	}
	if reads < 2 {
		t.Errorf("only %d reads while writing", reads)
	}
	t.Logf("%d Stats reads while writing; final %+v", reads, s)
}

// TestReadOnlyFile: when the file cannot be written, Update fails and the
// outbox is unchanged.
func TestReadOnlyFile(t *testing.T) {
	ctx := context.Background()
	var dir string
	if os.Geteuid() == 0 {
		// Root writes through chmod 0400; run the writer as nobody instead.
		var err error
		dir, err = os.MkdirTemp("", "outbox-readonly-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
	} else {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "outbox.db")
	o, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	add(t, o, t0, msg("d-1", 1, "A"))
	if err := o.Update(ctx, func(tx *Tx) error { return tx.SetCursor(ctx, Cursor{Source: "item", Modified: "m1"}) }); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}

	if os.Geteuid() == 0 {
		out := runAsNobody(t, dir, path)
		t.Logf("child running as uid 65534:\n%s", out)
		for _, want := range []string{"update failed: ", "mark failed: ", "stats ok"} {
			if !strings.Contains(out, want) {
				t.Errorf("child output lacks %q:\n%s", want, out)
			}
		}
	} else {
		ro, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("Open on a read-only file: %v (reading must still work)", err)
		}
		err = ro.Update(ctx, func(tx *Tx) error {
			if _, err := tx.AddMessage(ctx, msg("d-2", 2, "A"), t0); err != nil {
				return err
			}
			return tx.SetCursor(ctx, Cursor{Source: "item", Modified: "m2"})
		})
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Update on a read-only file = %v, want an error naming the path", err)
		}
		t.Logf("Update on a read-only file: %v", err)
		if err := ro.MarkDelivered(ctx, 1, 200, t0); err == nil {
			t.Error("MarkDelivered on a read-only file succeeded")
		}
		if s := stats(t, ro); s.Pending != 1 {
			t.Errorf("Stats on a read-only file: %+v", s)
		}
		ro.Close()
	}

	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("the read-only file changed")
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	o = openTest(t, path)
	if s := stats(t, o); s.Pending != 1 || s.Delivered != 0 {
		t.Errorf("after the read-only run: %+v, want 1 pending", s)
	}
	if c, err := o.Cursors(ctx); err != nil || c["item"].Modified != "m1" {
		t.Errorf("cursor after the read-only run: %v, %v", c, err)
	}
}

// TestManyRowsAtOnce: item states and message items go in chunks of rows per
// statement; every count across the chunk sizes stores every row, in order,
// and a state whose version went down fails the whole transaction, naming
// the item.
func TestManyRowsAtOnce(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{1, 3, 4, 5, 17, 300, 345} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			o := openTest(t, "")
			states := make([]ItemState, n)
			m := NewMessage{DeliveryID: "m", Body: []byte("b")}
			for i := range states {
				code := fmt.Sprintf("I%04d", i)
				states[i] = ItemState{Code: code, Version: int64(10 + i), Hash: "h" + code, Deleted: i%7 == 0}
				m.Items = append(m.Items, MessageItem{Code: code, Version: int64(10 + i), Op: "upsert"})
			}
			var id int64
			must(t, o.Update(ctx, func(tx *Tx) error {
				if err := tx.PutItemStates(ctx, states); err != nil {
					return err
				}
				var err error
				id, err = tx.AddMessage(ctx, m, t0)
				return err
			}))
			codes := make([]string, n)
			for i, s := range states {
				codes[i] = s.Code
			}
			var got map[string]ItemState
			must(t, o.Update(ctx, func(tx *Tx) error {
				var err error
				got, err = tx.ItemStates(ctx, codes)
				return err
			}))
			for _, s := range states {
				if g := got[s.Code]; g.Version != s.Version || g.Hash != s.Hash || g.Deleted != s.Deleted {
					t.Fatalf("state of %s = %+v, want %+v", s.Code, g, s)
				}
			}
			stored, err := o.Get(ctx, id)
			must(t, err)
			if !slices.Equal(stored.Items, m.Items) {
				t.Errorf("message items: %d stored, want %d in order", len(stored.Items), len(m.Items))
			}

			// One version lower, in the middle: nothing of the batch is stored.
			newer := slices.Clone(states)
			for i := range newer {
				newer[i].Version += 100
			}
			newer[n/2].Version = 1
			err = o.Update(ctx, func(tx *Tx) error { return tx.PutItemStates(ctx, newer) })
			if err == nil || !strings.Contains(err.Error(), "put item state "+newer[n/2].Code+": version 1 is lower") {
				t.Fatalf("PutItemStates with a lower version = %v", err)
			}
			must(t, o.Update(ctx, func(tx *Tx) error {
				var err error
				got, err = tx.ItemStates(ctx, codes)
				return err
			}))
			if g := got[states[0].Code]; g.Version != states[0].Version {
				t.Errorf("after the failed batch, %s is at version %d, want %d", states[0].Code, g.Version, states[0].Version)
			}
		})
	}
}
