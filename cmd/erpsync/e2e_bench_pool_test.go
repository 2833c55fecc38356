package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
)

// TestBenchSitesSharePool: the sites of erp.sites on one database server
// share one connection pool, so that however many sites there are, MariaDB
// sees at most 10 connections of erpsync's user while they all sync (their
// first snapshot at once, then a change on each).
func TestBenchSitesSharePool(t *testing.T) {
	ctx := context.Background()
	const n, items = 16, 30
	sites := make([]benchSite, n)
	for i := range sites {
		sites[i] = benchSite{fmt.Sprintf("s%02d.example.com", i), sitetest.New(t, sitetest.Options{Items: items})}
	}
	root, err := mysql.ParseDSN(sites[0].e.DSN)
	must(t, err)
	const user, password = "erpsync_pool", "pool-ro-Pa55word"
	bench, dir := t.TempDir(), t.TempDir()
	for _, s := range sites {
		cfg, err := mysql.ParseDSN(s.e.DSN)
		must(t, err)
		must(t, erpnext.CreateReadOnlyUser(ctx, s.e.DB, cfg.DBName, user, password))
		s.writeSiteConfig(t, bench, true)
	}
	cfgPath := writeBenchSitesSettings(t, dir, user, password, root.Addr, bench, "")

	// Count erpsync's connections as the server sees them, from the start.
	counter := sites[0].e.DB
	stop := make(chan struct{})
	var wg sync.WaitGroup
	most, samples := 0, 0
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			c, err := userConnections(ctx, counter, user)
			if err != nil {
				t.Errorf("count connections: %v", err)
				return
			}
			most, samples = max(most, c), samples+1
		}
	})

	cmd := exec.Command(erpsyncBinary(t), "run", "--config", cfgPath)
	var stderr sitetest.LockedBuffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	for _, s := range sites {
		s.e.WaitCount(items)
	}
	for _, s := range sites {
		must(t, s.e.Site.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "4.44"}))
	}
	for _, s := range sites {
		s.e.Wait(t, "the site's change", func(items map[string]receiver.Entry) bool {
			return sitetest.Price(items["ITEM-00001"], "Wholesale") == json.Number("4.44")
		})
	}
	close(stop)
	wg.Wait()
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	for _, s := range sites {
		s.e.AssertMatchesDatabase()
	}
	t.Logf("%d sites: at most %d connections of %s in %d samples", n, most, user, samples)
	if most == 0 {
		t.Fatalf("no connection of %s seen in %d samples", user, samples)
	}
	if most > 10 {
		t.Errorf("MariaDB saw %d connections of %s from %d sites; want at most 10 (one shared pool)", most, user, n)
	}
}

// userConnections is how many connections of user the server has now.
func userConnections(ctx context.Context, db *sql.DB, user string) (int, error) {
	var c int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", user).Scan(&c)
	return c, err
}
