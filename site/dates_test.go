package site_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/mariadb"
	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/site"
)

// TestSiteMidnightSendsDueItems: the database server's clock (libfaketime)
// crosses the site's midnight while erpsync runs. An item whose selling price
// ends today and another that starts tomorrow, and an item whose end of life
// is tomorrow, are sent again within seconds of midnight with no row
// changing; an item with no date ahead is not. erpsync's own clock is the
// host's and never crosses it: the date comes from the database.
//
// "probed" is a site of erp.sites, which polls only when the server probe
// sees its tables change, or on its safety net (30 s or more): its next
// own poll, by its name, comes well after midnight, and it polls at
// midnight all the same.
func TestSiteMidnightSendsDueItems(t *testing.T) {
	t.Run("polls", func(t *testing.T) { t.Parallel(); siteMidnight(t, false) })
	t.Run("probed", func(t *testing.T) { t.Parallel(); siteMidnight(t, true) })
}

func siteMidnight(t *testing.T, probed bool) {
	ctx := context.Background()
	loc, err := time.LoadLocation(sitetest.TimeZone)
	must(t, err)
	// 25 s before the site's midnight, on the host's date (UTC).
	y, m, d := time.Now().UTC().Date()
	midnight := time.Date(y, m, d, 0, 0, 0, 0, loc).AddDate(0, 0, 1)
	today, tomorrow := midnight.AddDate(0, 0, -1).Format(time.DateOnly), midnight.Format(time.DateOnly)
	dsn := mariadbtest.NewServer(t, mariadb.Options{Env: mariadbtest.FakeTimeEnv(t, midnight.Add(-25*time.Second))})
	e := sitetest.New(t, sitetest.Options{RootDSN: dsn})
	if probed {
		// A name whose own polls (every 30 s, at the phase of this host's
		// clock that the name gives) come no sooner than 8 s after the
		// database's clock crosses midnight.
		var dbUTC string
		must(t, e.DB.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(6)").Scan(&dbUTC))
		at, err := time.Parse("2006-01-02 15:04:05.000000", dbUTC)
		must(t, err)
		hostMidnight := midnight.Add(-at.Sub(time.Now()))
		after := func(name string) time.Duration {
			every := site.SafetyNetMin
			next := every - time.Duration((hostMidnight.UnixNano()-int64(site.SafetyOffset(every, name)))%int64(every))
			return next % every
		}
		for i := 0; e.Name == "" || after(e.Name) < 8*time.Second || after(e.Name) > 25*time.Second; i++ {
			e.Name = fmt.Sprintf("midnight%d", i)
		}
		e.Servers = site.NewServers(nil)
	}
	var dbNow string
	must(t, e.DB.QueryRowContext(ctx, "SELECT CONVERT_TZ(UTC_TIMESTAMP(), '+00:00', '+05:30')").Scan(&dbNow))
	if dbNow[:10] != today {
		t.Fatalf("the database's clock reads %s (site time), want %s: libfaketime did not move it", dbNow, today)
	}
	for _, code := range []string{"DUE-PRICE", "DUE-EOL", "STEADY"} {
		must(t, e.Site.SaveItem(ctx, erpnext.Item{Code: code, Name: code, Group: "Products", StockUOM: "Nos"}))
	}
	now := e.Site.Format(time.Now())
	price := func(name, code, rate string, from, upto any) {
		e.Exec("INSERT INTO `tabItem Price` (name, creation, modified, modified_by, owner, item_code, uom, price_list, selling, currency, price_list_rate, valid_from, valid_upto) "+
			"VALUES (?, ?, ?, 'Administrator', 'Administrator', ?, 'Nos', 'Standard Selling', 1, 'KES', ?, ?, ?)", name, now, now, code, rate, from, upto)
	}
	price("p-ends", "DUE-PRICE", "100", nil, today)
	price("p-starts", "DUE-PRICE", "80", tomorrow, nil)
	price("p-eol", "DUE-EOL", "50", nil, nil)
	price("p-steady", "STEADY", "10", nil, nil)
	e.Exec("UPDATE `tabItem` SET end_of_life = ? WHERE name = 'DUE-EOL'", tomorrow)

	e.Start()
	rate := func(it receiver.Entry) any {
		ep, _ := it.Item["effective_prices"].(map[string]any)
		p, _ := ep["Standard Selling"].(map[string]any)
		return p["rate"]
	}
	e.Wait(t, "the three items, today's prices", func(items map[string]receiver.Entry) bool {
		return len(items) == 3 && rate(items["DUE-PRICE"]) == json.Number("100")
	})
	before := e.Rcv.Items(sitetest.Tenant)
	e.Wait(t, "tomorrow's price after the site's midnight", func(items map[string]receiver.Entry) bool {
		return rate(items["DUE-PRICE"]) == json.Number("80") && items["DUE-EOL"].Version > before["DUE-EOL"].Version
	})
	var dbUTC string
	must(t, e.DB.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(3)").Scan(&dbUTC))
	at, err := time.Parse("2006-01-02 15:04:05.000", dbUTC)
	must(t, err)
	if late := at.Sub(midnight); late > 4*time.Second {
		t.Errorf("tomorrow's price arrived %v after the site's midnight (database clock), want within 4 s", late.Round(time.Millisecond))
	}
	e.WaitLog(t, "the site's date changed")
	time.Sleep(500 * time.Millisecond)
	after := e.Rcv.Items(sitetest.Tenant)
	if after["STEADY"].Version != before["STEADY"].Version {
		t.Errorf("STEADY was sent again at midnight (version %d -> %d); nothing of it changes on %s", before["STEADY"].Version, after["STEADY"].Version, tomorrow)
	}
	e.Stop()
	e.AssertNoRejections()
}
