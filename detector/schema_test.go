package detector_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

// TestSharedPoolQualifiesTables: a Detector given its site's Schema works on
// a pool whose connections are in another database (information_schema, as
// the pool the sites of a database server share): snapshots, polls and
// reference checks equal those of a Detector on the site's own DSN, and two
// sites on the one pool each read their own tables.
func TestSharedPoolQualifiesTables(t *testing.T) {
	ctx := context.Background()
	a, b := newFixture(t, detector.Config{}), newFixture(t, detector.Config{})
	if err := a.site.Seed(ctx, 12); err != nil {
		t.Fatal(err)
	}
	if err := b.site.Seed(ctx, 7); err != nil {
		t.Fatal(err)
	}
	pool, err := detector.OpenServer(mariadbtest.NewDatabase(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	var in string
	if err := pool.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&in); err != nil || in != "information_schema" {
		t.Fatalf("the shared pool is in %q (%v), want information_schema", in, err)
	}
	tests := []struct {
		name string
		sel  detector.Selection
	}{
		{"everything", detector.Selection{}},
		{"groups, lists and warehouses", detector.Selection{ItemGroups: []string{"Products"}, PriceLists: []string{"Standard Selling", "Ghost"},
			Warehouses: []string{"All Warehouses - AC", erpnext.WarehouseStores, "Nowhere"}, Brands: []string{"Nobrand"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			own := newDetector(t, a.db, detector.Config{Selection: tc.sel, PageSize: 5})
			shared := newDetector(t, pool, detector.Config{Selection: tc.sel, PageSize: 5, Schema: schemaOf(t, a.db)})
			if got, want := snapshot(t, shared), snapshot(t, own); got != want {
				t.Errorf("snapshot on the shared pool:\n%s\nwant (own pool):\n%s", got, want)
			}
			gotRefs, err := shared.CheckReferences(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantRefs, err := own.CheckReferences(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(gotRefs) != fmt.Sprint(wantRefs) {
				t.Errorf("references on the shared pool %v, want %v", gotRefs, wantRefs)
			}
		})
	}
	other := newDetector(t, pool, detector.Config{Schema: schemaOf(t, b.db)})
	if got, want := snapshot(t, other), snapshot(t, newDetector(t, b.db, detector.Config{})); got != want || strings.Count(got, "\n") != 7 {
		t.Errorf("site b on the shared pool:\n%s\nwant its 7 items:\n%s", got, want)
	}

	// Polls: every kind of change, seen alike.
	own := newDetector(t, a.db, detector.Config{})
	shared := newDetector(t, pool, detector.Config{Schema: schemaOf(t, a.db)})
	ownCur, err := own.StartCursors(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	sharedCur, err := shared.StartCursors(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, change := range []func() error{
		func() error {
			return a.site.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "42.5"})
		},
		func() error {
			return a.site.SetStock(ctx, "ITEM-00002", erpnext.Stock{Warehouse: erpnext.WarehouseStores, ActualQty: "3", ReservedQty: "0", ProjectedQty: "3"})
		},
		func() error { return a.site.AttachFile(ctx, "ITEM-00003", "/files/a.jpg", false) },
		func() error { return a.site.PublishWebsiteItem(ctx, "ITEM-00004") },
		func() error { return a.site.RenameItem(ctx, "ITEM-00005", "ITEM-RENAMED") },
		func() error { return a.site.DeleteItem(ctx, "ITEM-00006") },
		func() error { return a.site.DeletePrice(ctx, "ITEM-00007", "Standard Selling") },
	} {
		if err := change(); err != nil {
			t.Fatal(err)
		}
	}
	var ownPoll, sharedPoll strings.Builder
	if _, err = own.Poll(ctx, ownCur, record(&ownPoll)); err != nil {
		t.Fatal(err)
	}
	if _, err = shared.Poll(ctx, sharedCur, record(&sharedPoll)); err != nil {
		t.Fatal(err)
	}
	if sharedPoll.String() != ownPoll.String() || !strings.Contains(ownPoll.String(), "ITEM-RENAMED") {
		t.Errorf("poll on the shared pool:\n%s\nwant (own pool):\n%s", sharedPoll.String(), ownPoll.String())
	}
	tz, err := shared.SiteTimeZone(ctx)
	if err != nil || tz != siteTZ {
		t.Errorf("SiteTimeZone on the shared pool = %q, %v; want %s", tz, err, siteTZ)
	}
}

func newDetector(t *testing.T, db *sql.DB, cfg detector.Config) *detector.Detector {
	t.Helper()
	d, err := detector.New(context.Background(), db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func schemaOf(t *testing.T, db *sql.DB) string {
	t.Helper()
	var s string
	if err := db.QueryRowContext(context.Background(), "SELECT DATABASE()").Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshot is every item of d, one line each: code and canonical content.
func snapshot(t *testing.T, d *detector.Detector) string {
	t.Helper()
	var b strings.Builder
	if err := d.Snapshot(context.Background(), "", record(&b)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// record writes each item emitted as a line of b.
func record(b *strings.Builder) detector.EmitFunc {
	return func(_ context.Context, batch detector.Batch) error {
		for _, it := range batch.Items {
			var content []byte
			if it.Content != nil {
				content = it.Content.Append(nil)
			}
			fmt.Fprintf(b, "%s deleted=%v problem=%v %s\n", it.Code, it.Deleted, it.Problem, bytes.TrimSpace(content))
		}
		return nil
	}
}
