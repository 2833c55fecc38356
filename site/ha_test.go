package site_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/metrics"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/site"
)

// haHost is one erpsync "host" of TestHAClocksDiffer: a pipeline of the
// site with its own outbox and clock.
type haHost struct {
	p       *site.Pipeline
	reg     *metrics.Registry
	log     *sitetest.LockedBuffer
	outbox  string
	stop    context.CancelFunc
	stopped chan error
}

func startHAHost(t *testing.T, cfgPath, outboxPath string, skew time.Duration) *haHost {
	t.Helper()
	cfg, err := config.Read(cfgPath)
	must(t, err)
	sc := cfg.Sites[0]
	sc.Outbox.Path = outboxPath
	if !sc.HA.Enabled {
		t.Fatal("ha.enabled is not set")
	}
	h := &haHost{reg: metrics.New(), log: &sitetest.LockedBuffer{}, outbox: outboxPath, stopped: make(chan error, 1)}
	h.p = site.New(sc, site.Options{
		Logger: slog.New(slog.NewTextHandler(h.log, nil)), Metrics: site.NewMetrics(h.reg, "test"),
		Now: func() time.Time { return time.Now().Add(skew) }, HousekeepingEvery: 200 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go func() { h.stopped <- h.p.Run(ctx) }()
	t.Cleanup(func() { h.halt(t) })
	return h
}

func (h *haHost) halt(t *testing.T) {
	t.Helper()
	if h.stop == nil {
		return
	}
	h.stop()
	h.stop = nil
	select {
	case err := <-h.stopped:
		if err != nil {
			t.Errorf("pipeline stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("pipeline did not stop within 30s")
	}
}

func (h *haHost) metric(series string) string {
	var b strings.Builder
	if _, err := h.reg.WriteTo(&b); err != nil {
		return ""
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

func (h *haHost) state(t *testing.T) (site.HAState, bool) {
	t.Helper()
	ob, err := outbox.Open(context.Background(), h.outbox)
	must(t, err)
	defer ob.Close()
	st, ok, err := site.ReadHAState(context.Background(), ob)
	must(t, err)
	return st, ok
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHAClocksDiffer runs the site with ha.enabled on two "hosts" whose
// clocks differ by an hour, and hands it over from the first to the second
// and back. Each change after a takeover must reach the receiver, and the
// versions the second host gives out must follow the database server's
// clock rather than its own: from a clock an hour behind, they would be
// below the ones the first host sent and the receiver would ignore them as
// older; from one an hour ahead, the first host's after it takes the site
// back would be (the test's clock skew moves the outbox's times too, which
// delivery schedules by the real clock, so it puts the second host behind).
func TestHAClocksDiffer(t *testing.T) {
	ctx := context.Background()
	const n = 60
	e := sitetest.New(t, sitetest.Options{Items: n, Settings: "batch_size = 10"})
	f, err := os.OpenFile(e.CfgPath, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString("\n[ha]\nenabled = true\n")
	must(t, err)
	must(t, f.Close())
	aOutbox, bOutbox := filepath.Join(e.Dir, "a.db"), filepath.Join(e.Dir, "b.db")
	const active = `erpsync_ha_active{site="default"}`

	a := startHAHost(t, e.CfgPath, aOutbox, 0)
	waitFor(t, "a active", 15*time.Second, func() bool { return a.metric(active) == "1" })
	e.WaitCount(n)
	b := startHAHost(t, e.CfgPath, bOutbox, -time.Hour)
	waitFor(t, "b standing by", 15*time.Second, func() bool { st, ok := b.state(t); return ok && st.Role == "standby" && st.ActiveHost != "" })
	if st, ok := a.state(t); !ok || st.Role != "active" || st.ActiveHost == "" || time.Since(st.Since) > time.Minute {
		t.Errorf("a's recorded state %+v (%v), want active since just now, with its host", st, ok)
	}
	if v := b.metric(active); v != "0" {
		t.Errorf("b's erpsync_ha_active = %q, want 0", v)
	}
	if v := b.metric(`erpsync_site_up{site="default"}`); v != "1" {
		t.Errorf("b's erpsync_site_up = %q, want 1: standing by is not down", v)
	}

	// change changes ten items and waits until the receiver has them, with
	// versions from the server's clock.
	change := func(round int) {
		t.Helper()
		var serverUS int64
		must(t, e.DB.QueryRow("SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))").Scan(&serverUS))
		for i := 1; i <= 10; i++ {
			e.Exec("UPDATE `tabItem` SET `description` = ?, `modified` = ? WHERE `name` = ?",
				fmt.Sprintf("round %d", round), e.Site.Format(time.Now()), fmt.Sprintf("ITEM-%05d", i))
		}
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		err := e.Rcv.Wait(ctx, func(r *receiver.Receiver) bool {
			items := r.Items(sitetest.Tenant)
			for i := 1; i <= 10; i++ {
				if items[fmt.Sprintf("ITEM-%05d", i)].Item["description"] != fmt.Sprintf("round %d", round) {
					return false
				}
			}
			return true
		})
		if err != nil {
			t.Fatalf("round %d never reached the receiver: %v (receiver stats %+v)", round, err, e.Rcv.Stats())
		}
		for code, it := range e.Rcv.Items(sitetest.Tenant) {
			if it.Item["description"] == fmt.Sprintf("round %d", round) && it.Version < serverUS-50_000 {
				t.Errorf("round %d: %s has version %d, below the server's clock %d when the round began: not from the server's clock",
					round, code, it.Version, serverUS)
			}
		}
	}
	change(1)

	a.halt(t)
	stopped := time.Now()
	waitFor(t, "b active", 15*time.Second, func() bool { return b.metric(active) == "1" })
	t.Logf("b took over %s after a stopped", time.Since(stopped).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // past the floor b's takeover set: its versions must follow the clock
	if _, ok := a.state(t); ok {
		t.Error("a's outbox still records a role after it stopped")
	}
	if st, ok := b.state(t); !ok || st.Role != "active" {
		t.Errorf("b's recorded state %+v (%v), want active", st, ok)
	}
	if v := b.metric(`erpsync_ha_active_since_timestamp_seconds{site="default"}`); v == "" || v == "0" {
		t.Errorf("b's erpsync_ha_active_since_timestamp_seconds = %q", v)
	}
	change(2)

	a = startHAHost(t, e.CfgPath, aOutbox, 0)
	waitFor(t, "a standing by", 15*time.Second, func() bool { st, ok := a.state(t); return ok && st.Role == "standby" })
	b.halt(t)
	stopped = time.Now()
	waitFor(t, "a active again", 15*time.Second, func() bool { return a.metric(active) == "1" })
	t.Logf("a took over %s after b stopped", time.Since(stopped).Round(time.Millisecond))
	change(3)
	waitFor(t, "a's backlog delivered", 30*time.Second, func() bool {
		ob, err := outbox.Open(ctx, aOutbox)
		must(t, err)
		defer ob.Close()
		st, err := ob.Stats(ctx)
		must(t, err)
		return st.Pending == 0
	})
	e.AssertMatchesDatabase()
	if !strings.Contains(a.log.String(), "active for site default") || !strings.Contains(a.log.String(), "taking over") {
		t.Errorf("a did not log its takeover:\n%s", a.log.String())
	}
}

// TestHATakeoverRequeuesLeftovers: states a host queued and could not
// deliver before it stopped being active (here the receiver refused them)
// are still in its outbox when it takes the site back, with versions older
// than the ones the other host sent meanwhile. They must go out again with
// new versions, never as they are: the receiver would get an older state of
// those items after a newer one.
func TestHATakeoverRequeuesLeftovers(t *testing.T) {
	ctx := context.Background()
	const n = 30
	var refuse atomic.Bool
	e := sitetest.New(t, sitetest.Options{Items: n, Settings: "batch_size = 5", Fault: func([]byte) (int, bool) {
		if refuse.Load() {
			return http.StatusServiceUnavailable, true
		}
		return 0, false
	}})
	f, err := os.OpenFile(e.CfgPath, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString("\n[ha]\nenabled = true\n")
	must(t, err)
	must(t, f.Close())
	aOutbox, bOutbox := filepath.Join(e.Dir, "a.db"), filepath.Join(e.Dir, "b.db")
	const active = `erpsync_ha_active{site="default"}`
	change := func(round, from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			e.Exec("UPDATE `tabItem` SET `description` = ?, `modified` = ? WHERE `name` = ?",
				fmt.Sprintf("round %d", round), e.Site.Format(time.Now()), fmt.Sprintf("ITEM-%05d", i))
		}
	}
	pending := func(path string) int64 {
		ob, err := outbox.Open(ctx, path)
		must(t, err)
		defer ob.Close()
		st, err := ob.Stats(ctx)
		must(t, err)
		return st.Pending
	}

	a := startHAHost(t, e.CfgPath, aOutbox, 0)
	waitFor(t, "a active", 15*time.Second, func() bool { return a.metric(active) == "1" })
	e.WaitCount(n)
	refuse.Store(true)
	change(1, 1, 20) // a queues them and cannot deliver
	waitFor(t, "a's round 1 queued", 10*time.Second, func() bool { return pending(aOutbox) > 0 && strings.Count(a.log.String(), "detected change") >= 20 })
	b := startHAHost(t, e.CfgPath, bOutbox, 0)
	waitFor(t, "b standing by", 15*time.Second, func() bool { st, ok := b.state(t); return ok && st.Role == "standby" })
	a.halt(t)
	refuse.Store(false)
	waitFor(t, "b active", 15*time.Second, func() bool { return b.metric(active) == "1" })
	e.Wait(t, "round 1 from b", func(items map[string]receiver.Entry) bool {
		return items["ITEM-00020"].Item["description"] == "round 1"
	})
	change(2, 1, 10) // only the first half changes again: a's round 1 states of 11..20 stay current
	e.Wait(t, "round 2 from b", func(items map[string]receiver.Entry) bool {
		return items["ITEM-00010"].Item["description"] == "round 2"
	})

	if pending(aOutbox) == 0 {
		t.Fatal("a's outbox holds nothing from its term: the case tests nothing")
	}
	a = startHAHost(t, e.CfgPath, aOutbox, 0)
	waitFor(t, "a standing by", 15*time.Second, func() bool { st, ok := a.state(t); return ok && st.Role == "standby" })
	staleBefore := e.Rcv.Stats().Stale
	b.halt(t)
	waitFor(t, "a active again", 15*time.Second, func() bool { return a.metric(active) == "1" })
	waitFor(t, "a's outbox delivered", 30*time.Second, func() bool { return pending(aOutbox) == 0 })
	if stale := e.Rcv.Stats().Stale - staleBefore; stale != 0 {
		t.Errorf("a sent %d item states older than ones the receiver held (left from its last term, not queued again)", stale)
	}
	e.AssertMatchesDatabase()
	if !strings.Contains(a.log.String(), "requeued=") {
		t.Errorf("a did not log what it queued again at takeover:\n%s", grepLog(a.log.String(), "taking over"))
	}
}

func grepLog(log, sub string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestHASitesShareOneLockConnection: 20 sites with ha.enabled on one
// database server in one process (site.Servers, as erp.sites runs them)
// hold their named locks on one connection of the server's shared pool, so
// that MariaDB never sees more than 10 connections of erpsync's user while
// they start, take their locks, sync and deliver a change each.
func TestHASitesShareOneLockConnection(t *testing.T) {
	ctx := context.Background()
	const n, items = 20, 5
	envs := make([]*sitetest.Env, n)
	for i := range envs {
		envs[i] = sitetest.New(t, sitetest.Options{Items: items})
	}
	root, err := mysql.ParseDSN(envs[0].DSN)
	must(t, err)
	const user, password = "erpsync_ha_shared", "ha-shared-Pa55word"
	var lockNames []string
	pipelines := make([]*site.Pipeline, n)
	servers := site.NewServers(nil)
	for i, e := range envs {
		cfg, err := mysql.ParseDSN(e.DSN)
		must(t, err)
		must(t, erpnext.CreateReadOnlyUser(ctx, e.DB, cfg.DBName, user, password))
		e.RewriteSettings(t, fmt.Sprintf("dsn = %q", e.DSN), fmt.Sprintf("dsn = \"%s:%s@tcp(%s)/%s\"", user, password, root.Addr, cfg.DBName))
		f, err := os.OpenFile(e.CfgPath, os.O_APPEND|os.O_WRONLY, 0)
		must(t, err)
		_, err = f.WriteString("\n[ha]\nenabled = true\n")
		must(t, err)
		must(t, f.Close())
		c, err := config.Read(e.CfgPath)
		must(t, err)
		sc := c.Sites[0]
		sc.Name = fmt.Sprintf("site%02d", i)
		if !sc.HA.Enabled {
			t.Fatal("ha.enabled is not set")
		}
		name, err := site.LockName(sc)
		must(t, err)
		lockNames = append(lockNames, name)
		pipelines[i] = site.New(sc, site.Options{Servers: servers})
	}

	// Count erpsync's connections as the server sees them, from the start.
	counter := envs[0].DB
	stop := make(chan struct{})
	counted := make(chan struct{})
	most, samples := 0, 0
	go func() {
		defer close(counted)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			var c int
			if err := counter.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", user).Scan(&c); err != nil {
				t.Errorf("count connections: %v", err)
				return
			}
			most, samples = max(most, c), samples+1
		}
	}()

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, n)
	defer func() {
		cancel()
		for range n {
			<-done
		}
	}()
	for i, p := range pipelines {
		go func() {
			if err := p.Run(runCtx); err != nil {
				t.Errorf("site %d: %v", i, err)
			}
			done <- struct{}{}
		}()
	}
	for _, e := range envs {
		e.WaitCount(items)
	}
	for _, e := range envs {
		must(t, e.Site.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "3.33"}))
	}
	for _, e := range envs {
		e.Wait(t, "the site's change", func(items map[string]receiver.Entry) bool {
			return sitetest.Price(items["ITEM-00001"], "Wholesale") == json.Number("3.33")
		})
	}
	close(stop)
	<-counted

	holders := map[int64]int{}
	for _, name := range lockNames {
		var id sql.NullInt64
		must(t, counter.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", name).Scan(&id))
		holders[id.Int64]++
	}
	if len(holders) != 1 || holders[0] != 0 {
		t.Errorf("the %d sites' locks are held by connections %v (id: locks), want all by one", n, holders)
	}
	t.Logf("%d sites with ha.enabled: at most %d connections in %d samples", n, most, samples)
	if samples < 10 {
		t.Fatalf("only %d samples of the connection count", samples)
	}
	if most > 10 {
		t.Errorf("%d sites with ha.enabled on one server used up to %d connections, want at most 10", n, most)
	}
}

// TestHATakeoverSendsWhatTheSnapshotCannot: a standby that never ran takes
// over a site whose receiver holds every item, sent by the other host. What
// changed in the overlap window just before its start (while no host was
// active) must reach the receiver, though its initial sync reads only the
// items that exist and are selected: a delete, a rename (the old code's
// delete) and an item the settings no longer select. Before, the start
// cursors counted the window's rows as read by the snapshot, and these
// three stayed in the shop.
func TestHATakeoverSendsWhatTheSnapshotCannot(t *testing.T) {
	ctx := context.Background()
	const n = 20
	e := sitetest.New(t, sitetest.Options{Items: n, Settings: "batch_size = 5", ERP: "sales_items_only = true"})
	f, err := os.OpenFile(e.CfgPath, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString("\n[ha]\nenabled = true\n")
	must(t, err)
	must(t, f.Close())
	const active = `erpsync_ha_active{site="default"}`

	a := startHAHost(t, e.CfgPath, filepath.Join(e.Dir, "a.db"), 0)
	waitFor(t, "a active", 15*time.Second, func() bool { return a.metric(active) == "1" })
	e.WaitCount(n)
	a.halt(t)
	must(t, e.Site.DeleteItem(ctx, "ITEM-00003"))
	must(t, e.Site.RenameItem(ctx, "ITEM-00004", "ITEM-R0004"))
	e.Exec("UPDATE `tabItem` SET `is_sales_item` = 0, `modified` = ? WHERE `name` = 'ITEM-00005'", e.Site.Format(time.Now()))

	b := startHAHost(t, e.CfgPath, filepath.Join(e.Dir, "b.db"), 0)
	waitFor(t, "b active", 15*time.Second, func() bool { return b.metric(active) == "1" })
	e.Wait(t, "the delete, the rename and the deselection from b", func(items map[string]receiver.Entry) bool {
		return items["ITEM-00003"].Op == "delete" && items["ITEM-00004"].Op == "delete" &&
			items["ITEM-R0004"].Op == "upsert" && items["ITEM-00005"].Op == "delete"
	})
	for code, reason := range map[string]string{"ITEM-00003": "deleted", "ITEM-00004": "renamed", "ITEM-00005": "deselected"} {
		if got := e.Rcv.Items(sitetest.Tenant)[code].Item["reason"]; got != reason {
			t.Errorf("%s: reason %v, want %s", code, got, reason)
		}
	}
	if !strings.Contains(b.log.String(), "initial_sync_done=false") {
		t.Errorf("b did not take over with its initial sync to do:\n%s", grepLog(b.log.String(), "taking over"))
	}
}
