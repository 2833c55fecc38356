package site_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/site"
)

// TestUpdateTimeFacts pins what the server probe relies on, on the real
// MariaDB: UPDATE_TIME of a polled table moves when a transaction that wrote
// it commits, not before, and not on a rollback; a late commit moves it to
// the second the transaction started, not to the commit's.
func TestUpdateTimeFacts(t *testing.T) {
	ctx := context.Background()
	e := sitetest.New(t, sitetest.Options{Items: 3})
	var db string
	must(t, e.DB.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&db))
	read := func() string {
		t.Helper()
		u, err := detector.ReadUpdateTimes(ctx, e.DB, []string{db})
		must(t, err)
		return u.Updated[db].Latest
	}
	seconds := func() { time.Sleep(1100 * time.Millisecond) }

	seconds()
	before := read()
	tx, err := e.DB.BeginTx(ctx, nil)
	must(t, err)
	_, err = tx.ExecContext(ctx, "UPDATE `tabItem` SET `modified` = ? WHERE name = 'ITEM-00001'", e.Site.Format(time.Now()))
	must(t, err)
	seconds()
	if got := read(); got != before {
		t.Errorf("UPDATE_TIME moved before the commit: %q -> %q", before, got)
	}
	var commitSecond string
	must(t, e.DB.QueryRowContext(ctx, "SELECT NOW()").Scan(&commitSecond))
	must(t, tx.Commit())
	late := read()
	if late <= before || late >= commitSecond {
		t.Errorf("UPDATE_TIME after a late commit = %q, want after %q (before the write) and before the commit's second %q", late, before, commitSecond)
	}

	seconds()
	tx, err = e.DB.BeginTx(ctx, nil)
	must(t, err)
	_, err = tx.ExecContext(ctx, "UPDATE `tabBin` SET `actual_qty` = `actual_qty` + 1")
	must(t, err)
	must(t, tx.Rollback())
	if got := read(); got != late {
		t.Errorf("UPDATE_TIME after a rollback = %q, want it unchanged at %q", got, late)
	}
}

// TestChangeMarkFacts pins what the probe's change mark relies on, on the
// real MariaDB: it stays put while nothing is written (reads, the probe's
// own information_schema query, named locks), and moves with a statement
// that writes a row and again with its transaction's commit.
func TestChangeMarkFacts(t *testing.T) {
	ctx := context.Background()
	e := sitetest.New(t, sitetest.Options{Items: 3})
	var db string
	must(t, e.DB.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&db))
	mark := func() string {
		t.Helper()
		m, err := detector.ReadChangeMark(ctx, e.DB)
		must(t, err)
		return m
	}
	// The server's background work after the seed (purge, statistics)
	// settles within seconds.
	deadline := time.Now().Add(30 * time.Second)
	last := mark()
	for time.Sleep(time.Second); mark() != last; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Fatal("the change mark kept moving for 30 s on an idle server")
		}
		last = mark()
	}
	for _, q := range []string{
		"SELECT COUNT(*) FROM `tabItem Price`",
		"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'tabItem'",
		"SELECT GET_LOCK('erpsync:test', 0) + RELEASE_LOCK('erpsync:test')",
	} {
		var n int
		must(t, e.DB.QueryRowContext(ctx, q).Scan(&n))
		if got := mark(); got != last {
			t.Errorf("%s moved the change mark %s -> %s", q, last, got)
			last = got
		}
	}
	conn, err := e.DB.Conn(ctx)
	must(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "BEGIN")
	must(t, err)
	_, err = conn.ExecContext(ctx, "UPDATE `tabBin` SET `actual_qty` = `actual_qty` + 1 LIMIT 1")
	must(t, err)
	written := mark()
	if written == last {
		t.Errorf("a written row left the change mark at %s", last)
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	must(t, err)
	if got := mark(); got == written {
		t.Errorf("a commit left the change mark at %s", got)
	}
}

// TestServerProbeWakesOnlyTheChangedSite: sites on one database server, one
// pipeline each, sharing one probe (site.Servers): while nothing changes they
// do not poll every erp.poll_interval; a change on one site wakes that site
// alone, which delivers it. With erp.watch, the binary log says which site
// changed and no site's tables are probed.
func TestServerProbeWakesOnlyTheChangedSite(t *testing.T) {
	for _, watch := range []bool{false, true} {
		name := "poll"
		if watch {
			name = "watch"
		}
		t.Run(name, func(t *testing.T) { probeWakesOnlyTheChangedSite(t, watch) })
	}
}

func probeWakesOnlyTheChangedSite(t *testing.T, watch bool) {
	ctx := context.Background()
	const n = 4
	envs := make([]*sitetest.Env, n)
	for i := range envs {
		envs[i] = sitetest.New(t, sitetest.Options{Items: 3})
	}
	// One server-wide read-only user, as erp.sites uses.
	root, err := mysql.ParseDSN(envs[0].DSN)
	must(t, err)
	const user, password = "erpsync_probe", "probe-ro-Pa55word"
	// The DEBUG log says what brought each step and which sites each probe
	// woke, and why: printed when a site polled more often than it should.
	logs := &sitetest.LockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	servers := site.NewServers(logger)
	pipelines := make([]*site.Pipeline, n)
	schemas := make([]string, n)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, n)
	defer func() {
		cancel()
		for range n {
			<-done
		}
	}()
	for i, e := range envs {
		cfg, err := mysql.ParseDSN(e.DSN)
		must(t, err)
		schemas[i] = cfg.DBName
		must(t, erpnext.CreateReadOnlyUser(ctx, e.DB, cfg.DBName, user, password))
		e.RewriteSettings(t, fmt.Sprintf("dsn = %q", e.DSN), fmt.Sprintf("dsn = \"%s:%s@tcp(%s)/%s\"", user, password, root.Addr, cfg.DBName))
		e.RewriteSettings(t, `poll_interval = "50ms"`, `poll_interval = "100ms"`)
		if watch {
			var base string
			must(t, e.DB.QueryRowContext(ctx, "SELECT @@log_bin_basename").Scan(&base))
			e.RewriteSettings(t, `poll_interval = "100ms"`, `poll_interval = "100ms"
watch = "`+filepath.Dir(base)+`"
watch_debounce = "2ms"`)
		}
		c, err := config.Read(e.CfgPath)
		must(t, err)
		sc := c.Sites[0]
		sc.Name = fmt.Sprintf("site%d", i)
		pipelines[i] = site.New(sc, site.Options{Servers: servers, Logger: logger.With("site", sc.Name)})
		go func() {
			if err := pipelines[i].Run(runCtx); err != nil {
				t.Errorf("site %d: %v", i, err)
			}
			done <- struct{}{}
		}()
	}
	for _, e := range envs {
		e.WaitCount(3)
	}
	// Idle: polls at start (the first probe, then every probe while the
	// seeded rows are recent: hotFor), then none, where a 100 ms poll
	// interval would make 20 a site.
	time.Sleep(5 * time.Second)
	polls := func() []int64 {
		out := make([]int64, n)
		for i, p := range pipelines {
			out[i] = p.Polls()
		}
		return out
	}
	idle, idleLog := polls(), len(logs.String())
	probes, skipped, _ := servers.ProbeCounts()
	time.Sleep(2 * time.Second)
	afterIdle, changeLog := polls(), len(logs.String())
	for i := range n {
		if d := afterIdle[i] - idle[i]; d > 1 {
			t.Errorf("site %d polled %d times in 2 s without a change (polls %v -> %v); what woke the sites:\n%s", i, d, idle, afterIdle, wakes(logs.String()[idleLog:]))
		}
	}
	// Idle, the probe reads the change mark only: about 20 probes in 2 s,
	// of which at most a couple read the sites' tables (a site's own
	// safety-net poll writes nothing).
	probes2, skipped2, logged2 := servers.ProbeCounts()
	switch full, saved := probes2-probes, skipped2-skipped; {
	case !watch && (full > 2 || saved < 5):
		t.Errorf("idle for 2 s: %d full probes and %d saved by the change mark, want at most 2 and at least 5", full, saved)
	case watch && (full > 0 || logged2 < 5):
		t.Errorf("idle for 2 s with erp.watch: %d full probes, %d reads of the binary log; want 0 and at least 5", full, logged2)
	}

	must(t, envs[2].Site.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "2.22"}))
	envs[2].Wait(t, "the changed site's price", func(items map[string]receiver.Entry) bool {
		return sitetest.Price(items["ITEM-00001"], "Wholesale") == json.Number("2.22")
	})
	time.Sleep(1500 * time.Millisecond)
	after := polls()
	var report []string
	for i := range n {
		d := after[i] - afterIdle[i]
		report = append(report, fmt.Sprintf("site%d +%d", i, d))
		if i == 2 && d == 0 {
			t.Errorf("the changed site did not poll")
		}
		if i != 2 && d > 1 {
			t.Errorf("site %d polled %d times after a change on site 2 alone; what woke the sites:\n%s", i, d, wakes(logs.String()[changeLog:]))
		}
	}
	t.Logf("polls after a change on site2: %s", strings.Join(report, ", "))
	// A site's own safety-net poll may fall in this time; the probe must
	// wake none but the changed site, also none whose tables changed at
	// the start (hot then, long cooled since).
	for i, schema := range schemas {
		if woke := wakes(logs.String()[changeLog:]); i != 2 && strings.Contains(woke, " "+schema+"=") {
			t.Errorf("the probe woke site %d after a change on site 2 alone:\n%s", i, woke)
		}
	}
	if probes3, _, _ := servers.ProbeCounts(); watch && probes3 != probes2 {
		t.Errorf("with erp.watch, the change ran %d full probes: the binary log should have named the site", probes3-probes2)
	}
}

// wakes returns the lines of a DEBUG sync log that say what brought a
// detection step and which sites a probe woke.
func wakes(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="detection step"`) || strings.Contains(l, `msg="server probe woke sites"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
