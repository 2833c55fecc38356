package outbox

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"
)

// TestDueItems: the items whose change date has come, in code order and
// pages, without deleted items; SetChangesOn moves an item's date without
// a new state, and a new state replaces it.
func TestDueItems(t *testing.T) {
	ctx := context.Background()
	o := openTest(t, "")
	must(t, o.Update(ctx, func(tx *Tx) error {
		return tx.PutItemStates(ctx, []ItemState{
			{Code: "A", Version: 1, Hash: "a", ChangesOn: "2026-12-03"},
			{Code: "B", Version: 1, Hash: "b", ChangesOn: "2026-12-02"},
			{Code: "C", Version: 1, Hash: "c", ChangesOn: "2026-12-04"},
			{Code: "D", Version: 1, Hash: "d"},
			{Code: "E", Version: 1, Hash: deletedHashForTest, Deleted: true, ChangesOn: "2026-12-01"},
			{Code: "F", Version: 1, Hash: "f", ChangesOn: "2026-11-30"},
		})
	}))
	tests := []struct {
		date, after string
		limit       int
		want        []string
	}{
		{"2026-12-01", "", 10, []string{"F"}},
		{"2026-12-03", "", 10, []string{"A", "B", "F"}},
		{"2026-12-03", "", 2, []string{"A", "B"}},
		{"2026-12-03", "B", 2, []string{"F"}},
		{"2026-12-31", "", 10, []string{"A", "B", "C", "F"}},
		{"2026-11-01", "", 10, nil},
	}
	for _, tc := range tests {
		got, err := o.DueItems(ctx, tc.date, tc.after, tc.limit)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("DueItems(%s, after %q, %d) = %v, %v; want %v", tc.date, tc.after, tc.limit, got, err, tc.want)
		}
	}
	must(t, o.Update(ctx, func(tx *Tx) error {
		if err := tx.SetChangesOn(ctx, map[string]string{"A": "", "C": "2026-12-02", "NEVER": "2026-12-01"}); err != nil {
			return err
		}
		return tx.PutItemStates(ctx, []ItemState{{Code: "F", Version: 2, Hash: "f2"}})
	}))
	if got, err := o.DueItems(ctx, "2026-12-03", "", 10); err != nil || !slices.Equal(got, []string{"B", "C"}) {
		t.Errorf("after SetChangesOn: DueItems = %v, %v; want [B C]", got, err)
	}
	if st, ok, err := o.ItemState(ctx, "C"); err != nil || !ok || st.ChangesOn != "2026-12-02" || st.Version != 1 {
		t.Errorf("item C = %+v, %v, %v", st, ok, err)
	}
	if _, ok, _ := o.ItemState(ctx, "NEVER"); ok {
		t.Error("SetChangesOn created a state for an item never queued")
	}
}

const deletedHashForTest = "deleted"

// TestMigrateChangesOnFromVersion4: an outbox of version 4 keeps its item
// states, and none is due until its next state says when.
func TestMigrateChangesOnFromVersion4(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	db, err := sql.Open("sqlite", "file:"+path)
	must(t, err)
	steps := migrations()
	_, err = db.Exec(steps[0] + steps[1] + steps[2] + steps[3] + `
		PRAGMA application_id = 1701998707; PRAGMA user_version = 4;
		INSERT INTO items (item_code, version, hash, deleted, queued_at) VALUES ('A', 3, 'ha', 0, 1);`)
	must(t, err)
	must(t, db.Close())
	o := openTest(t, path)
	if st, ok, err := o.ItemState(ctx, "A"); err != nil || !ok || st.Version != 3 || st.Hash != "ha" || st.ChangesOn != "" {
		t.Errorf("item A after migration: %+v, %v, %v", st, ok, err)
	}
	if due, err := o.DueItems(ctx, "9999-12-31", "", 10); err != nil || len(due) != 0 {
		t.Errorf("DueItems after migration = %v, %v; want none", due, err)
	}
}
