package site_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/signer"
)

// TestPipeline drives one running daemon through every kind of change an
// ERPNext site makes and checks each arrives, verified, as the whole item.
func TestPipeline(t *testing.T) {
	ctx := context.Background()
	const n = 120
	e := sitetest.New(t, sitetest.Options{Items: n, Settings: "batch_size = 10"})
	e.Start()
	e.WaitCount(n)
	if st := e.Rcv.Stats(); st.Accepted > n/10+2 {
		t.Errorf("initial sync took %d requests for %d items at batch_size 10", st.Accepted, n)
	}

	var lastMiss string
	var binItems []string // items with stock in Finished Goods, all changed by one UPDATE below
	rows, err := e.DB.QueryContext(ctx, "SELECT item_code FROM `tabBin` WHERE warehouse = 'Finished Goods - AC' AND item_code <> 'ITEM-00004'")
	must(t, err)
	for rows.Next() {
		var c string
		must(t, rows.Scan(&c))
		binItems = append(binItems, c)
	}
	rows.Close()
	if len(binItems) < 50 {
		t.Fatalf("only %d items have Finished Goods stock: the bulk case needs more", len(binItems))
	}

	tests := []struct {
		name   string
		change func(t *testing.T)
		done   func(items map[string]receiver.Entry) bool
	}{
		{
			name: "price change keeps exact decimals",
			change: func(t *testing.T) {
				must(t, e.Site.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "1234567.891000000"}))
				must(t, e.Site.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "99999999999.999999999"}))
			},
			done: func(items map[string]receiver.Entry) bool {
				e := items["ITEM-00001"]
				return sitetest.Price(e, "Standard Selling") == json.Number("1234567.891") && sitetest.Price(e, "Wholesale") == "99999999999.999999999"
			},
		},
		{
			name: "stock change",
			change: func(t *testing.T) {
				must(t, e.Site.SetStock(ctx, "ITEM-00002", erpnext.Stock{Warehouse: "Stores - AC", ActualQty: "7.250000000", ReservedQty: "1", ProjectedQty: "6.25"}))
			},
			done: func(items map[string]receiver.Entry) bool {
				return sitetest.Stock(items["ITEM-00002"], "Stores - AC") == json.Number("7.25")
			},
		},
		{
			name: "item update with non-ASCII and <>&",
			change: func(t *testing.T) {
				must(t, e.Site.SaveItem(ctx, erpnext.Item{Code: "ITEM-00003", Name: "Ньютон <Café> & 日本茶 😀", Group: "Products", StockUOM: "Nos",
					Description: `<div class="x">a & b</div>`, Barcodes: []erpnext.Barcode{{Barcode: "4006381333931", Type: "EAN"}}}))
			},
			done: func(items map[string]receiver.Entry) bool {
				return items["ITEM-00003"].Item["item_name"] == "Ньютон <Café> & 日本茶 😀"
			},
		},
		{
			name: "create",
			change: func(t *testing.T) {
				must(t, e.Site.SaveItem(ctx, erpnext.Item{Code: "NEW-<&>-1", Name: "New & shiny", Group: "Products", StockUOM: "Nos"}))
				must(t, e.Site.SetPrice(ctx, "NEW-<&>-1", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "0.100000000"}))
			},
			done: func(items map[string]receiver.Entry) bool {
				x, ok := items["NEW-<&>-1"]
				return ok && x.Op == "upsert" && sitetest.Price(x, "Standard Selling") == json.Number("0.1")
			},
		},
		{
			name:   "delete",
			change: func(t *testing.T) { must(t, e.Site.DeleteItem(ctx, "ITEM-00004")) },
			done:   func(items map[string]receiver.Entry) bool { return items["ITEM-00004"].Op == "delete" },
		},
		{
			name: "a transaction that commits after a later one with an earlier modified",
			change: func(t *testing.T) {
				var utc string
				must(t, e.DB.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(6)").Scan(&utc))
				now, _ := time.Parse("2006-01-02 15:04:05.000000", utc)
				loc, _ := time.LoadLocation(sitetest.TimeZone)
				early := now.In(loc).Add(-20 * time.Second).Format("2006-01-02 15:04:05.000000")
				slow, err := e.DB.BeginTx(ctx, nil)
				must(t, err)
				_, err = slow.ExecContext(ctx, "UPDATE `tabItem Price` SET price_list_rate = 5.5, modified = ? WHERE item_code = 'ITEM-00005' AND price_list = 'Standard Selling'", early)
				must(t, err)
				must(t, e.Site.SetPrice(ctx, "ITEM-00006", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "6.6"}))
				e.Wait(t, "the later transaction", func(items map[string]receiver.Entry) bool {
					return sitetest.Price(items["ITEM-00006"], "Standard Selling") == json.Number("6.6")
				})
				time.Sleep(200 * time.Millisecond) // several polls move the cursor past the early row
				must(t, slow.Commit())
			},
			done: func(items map[string]receiver.Entry) bool {
				return sitetest.Price(items["ITEM-00005"], "Standard Selling") == json.Number("5.5")
			},
		},
		{
			name: "many rows with the same modified",
			change: func(t *testing.T) {
				var utc string
				must(t, e.DB.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(6)").Scan(&utc))
				now, _ := time.Parse("2006-01-02 15:04:05.000000", utc)
				loc, _ := time.LoadLocation(sitetest.TimeZone)
				e.Exec("UPDATE `tabBin` SET actual_qty = 4242, modified = ? WHERE warehouse = 'Finished Goods - AC'",
					now.In(loc).Format("2006-01-02 15:04:05.000000"))
			},
			done: func(items map[string]receiver.Entry) bool {
				for _, code := range binItems {
					if got := sitetest.Stock(items[code], "Finished Goods - AC"); got != json.Number("4242") {
						lastMiss = fmt.Sprintf("%s: %v (%T)", code, got, got)
						return false
					}
				}
				return true
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.change(t)
			defer func() {
				if t.Failed() {
					t.Logf("last item not yet as expected: %s", lastMiss)
				}
			}()
			e.Wait(t, tc.name, tc.done)
		})
	}
	// Let a few more polls pass: nothing further must be sent.
	e.Wait(t, "outbox drained", func(map[string]receiver.Entry) bool { return e.Stats().Pending == 0 })
	before := e.Rcv.Stats()
	time.Sleep(300 * time.Millisecond)
	if after := e.Rcv.Stats(); after.Items != before.Items {
		t.Errorf("idle polls sent %d more items", after.Items-before.Items)
	}
	e.AssertMatchesDatabase()
	e.AssertNoRejections()
	st := e.Stats()
	if st.Dead != 0 || st.Pending != 0 {
		t.Errorf("outbox: %+v, want nothing dead or pending", st)
	}
	if rs := e.Rcv.Stats(); rs.Duplicates != 0 {
		t.Errorf("receiver saw %d duplicate deliveries", rs.Duplicates)
	}
	e.Stop()
	log := e.Log()
	for _, want := range []string{"HMAC signed", "HMAC accepted", "detected change", "initial sync done"} {
		if !strings.Contains(log, want) {
			t.Errorf("sync log has no %q line", want)
		}
	}
	if strings.Contains(log, e.Secret) || strings.Contains(log, "ro-pass-Secret9") {
		t.Error("the sync log contains the tenant secret or the database password")
	}
}

// TestRestartResumesWithoutGapOrResend stops the daemon, changes items while
// it is down, and starts it again: exactly those changes are sent, and the
// initial sync is not repeated.
func TestRestartResumesWithoutGapOrResend(t *testing.T) {
	ctx := context.Background()
	const n = 80
	e := sitetest.New(t, sitetest.Options{Items: n})
	e.Start()
	e.WaitCount(n)
	e.Wait(t, "outbox drained", func(map[string]receiver.Entry) bool { return e.Stats().Pending == 0 })
	e.Stop()
	before := e.Rcv.Stats()

	must(t, e.Site.SetPrice(ctx, "ITEM-00010", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "10.01"}))
	must(t, e.Site.SetStock(ctx, "ITEM-00011", erpnext.Stock{Warehouse: "Stores - AC", ActualQty: "11", ReservedQty: "0", ProjectedQty: "11"}))
	must(t, e.Site.DeleteItem(ctx, "ITEM-00012"))

	e.Start()
	e.Wait(t, "the three changes made while stopped", func(items map[string]receiver.Entry) bool {
		return sitetest.Price(items["ITEM-00010"], "Standard Selling") == json.Number("10.01") &&
			sitetest.Stock(items["ITEM-00011"], "Stores - AC") == json.Number("11") &&
			items["ITEM-00012"].Op == "delete"
	})
	time.Sleep(500 * time.Millisecond)
	after := e.Rcv.Stats()
	if sent := after.Items - before.Items; sent != 3 {
		t.Errorf("after the restart %d item states were sent, want exactly the 3 changed ones", sent)
	}
	e.Stop()
	if c := strings.Count(e.Log(), "initial sync done"); c != 1 {
		t.Errorf("the initial sync ran %d times, want once", c)
	}
	e.AssertMatchesDatabase()
	e.AssertNoRejections()
}

// TestWrongSecretPausesWithoutLoss: a 401 pauses delivery and keeps every
// message; delivery resumes by itself once the receiver accepts the secret.
func TestWrongSecretPausesWithoutLoss(t *testing.T) {
	const n = 15
	e := sitetest.New(t, sitetest.Options{Items: n})
	right, _ := signer.DecodeSecret(e.Secret)
	e.Rcv.SetTenant(sitetest.Tenant, []byte("a-completely-different-secret-of-32-bytes!"))
	e.Start()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(e.Log(), "HMAC rejected (401)") {
		if time.Now().After(deadline) {
			t.Fatal("no HMAC rejected (401) line in the sync log")
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := e.Stats()
	if st.Dead != 0 || st.Delivered != 0 || st.Pending == 0 {
		t.Fatalf("after a 401 the outbox is %+v: want every message still pending", st)
	}
	if !strings.Contains(e.Log(), "check the tenant secret and the clock") {
		t.Error("the 401 line does not say what to check")
	}
	e.Rcv.SetTenant(sitetest.Tenant, right)
	e.WaitCount(n)
	e.Stop()
	e.AssertMatchesDatabase()
	if st := e.Stats(); st.Dead != 0 {
		t.Errorf("%d messages were dead-lettered for an auth failure", st.Dead)
	}
}

// TestPoisonItemDeadLettered: a 422 dead-letters that message with the
// response kept; every other item is delivered.
func TestPoisonItemDeadLettered(t *testing.T) {
	const n = 20
	e := sitetest.New(t, sitetest.Options{Items: n, Fault: func(body []byte) (int, bool) {
		if strings.Contains(string(body), `"item_code":"ITEM-00007"`) {
			return 422, true
		}
		return 0, false
	}})
	e.Start()
	e.WaitCount(n - 1)
	e.Wait(t, "the poison message dead-lettered", func(map[string]receiver.Entry) bool { return e.Stats().Dead == 1 })
	if _, ok := e.Rcv.Items(sitetest.Tenant)["ITEM-00007"]; ok {
		t.Error("the rejected item reached the receiver's state")
	}
	e.Stop()
	if !strings.Contains(e.Log(), "422") {
		t.Error("the sync log does not mention the 422")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
