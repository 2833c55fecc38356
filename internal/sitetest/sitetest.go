// Package sitetest is the end-to-end harness of erpsync's tests: one ERPNext
// site in a real MariaDB (mariadbtest), a verifying receiver on loopback, a
// settings file pointing at both, and the site's pipeline run in process.
// Tests that run the erpsync binary use the same Env with the binary instead
// of Start.
package sitetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
	"github.com/orderweave/erpsync/internal/metrics"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
	"github.com/orderweave/erpsync/site"
	"github.com/orderweave/erpsync/synclog"
)

// Tenant and TimeZone are the harness site's tenant and time zone.
const (
	Tenant   = "lighting_co_ke"
	TimeZone = "Asia/Kolkata"
)

// Env is one ERPNext site in a real MariaDB, a verifying receiver on
// loopback, and a settings file for erpsync pointing at both.
type Env struct {
	T       *testing.T
	DB      *sql.DB // root connection, for edits
	DSN     string  // read-only user's DSN, as erpsync uses it
	Site    *erpnext.Site
	Rcv     *receiver.Receiver
	URL     string // the receiver's ingest URL
	Dir     string // the test's directory: settings, secret, outbox, log
	CfgPath string
	LogPath string
	Secret  string

	// Servers and Name, when set before Start, make the site poll as one
	// of erp.sites does: woken by this server probe, with a safety net,
	// under this name.
	Servers *site.Servers
	Name    string

	Pipeline *site.Pipeline    // the running pipeline, after Start
	Registry *metrics.Registry // the pipeline's metrics, after Start
	log      *synclog.Log      // its sync log
	stop     func() error
}

// Options shape an Env.
type Options struct {
	Items    int           // items seeded before erpsync starts
	SeedAge  time.Duration // stamp the seeded rows this far in the past (beyond erp.overlap)
	Settings string        // extra TOML lines appended to [ingest]
	// Fault, when set, answers requests whose headers, tenant and timestamp
	// check out, before the receiver verifies their signature and body
	// (handled true), or lets them through.
	Fault func(body []byte) (status int, handled bool)
	// RootDSN is the database to use (mariadbtest.NewServer); empty: a new
	// database on the shared test server.
	RootDSN string
	// ERP is extra TOML lines appended to [erp].
	ERP string
}

// New makes an Env for t; everything it starts ends with the test.
func New(t *testing.T, o Options) *Env {
	t.Helper()
	ctx := context.Background()
	rootDSN := o.RootDSN
	if rootDSN == "" {
		rootDSN = mariadbtest.NewDatabase(t)
	}
	db, err := sql.Open("mysql", rootDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := erpnext.CreateSchema(ctx, db, TimeZone); err != nil {
		t.Fatal(err)
	}
	var dbName string
	if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	user := "ro_" + fmt.Sprint(time.Now().UnixNano()%1e9)
	if err := erpnext.CreateReadOnlyUser(ctx, db, dbName, user, "ro-pass-Secret9"); err != nil {
		t.Fatal(err)
	}
	site, err := erpnext.NewSite(db, TimeZone)
	if err != nil {
		t.Fatal(err)
	}
	if o.Items > 0 {
		site.Now = func() time.Time { return time.Now().Add(-o.SeedAge) }
		if err := site.Seed(ctx, o.Items); err != nil {
			t.Fatal(err)
		}
		site.Now = time.Now
	}
	secret, err := signer.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := signer.DecodeSecret(secret)
	opts := receiver.Options{Tenants: map[string][]byte{Tenant: key}}
	if o.Fault != nil {
		opts.Fault = func(r *http.Request, body []byte) (int, http.Header, bool) {
			status, handled := o.Fault(body)
			return status, nil, handled
		}
	}
	rcv := receiver.New(opts)
	rctx, cancel := context.WithCancel(ctx)
	url, wait, err := receiver.Serve(rctx, "127.0.0.1:0", rcv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); wait() })

	rootCfg, err := mysql.ParseDSN(rootDSN)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{
		T: t, DB: db, Site: site, Rcv: rcv, URL: url, Dir: t.TempDir(), Secret: secret,
		DSN: fmt.Sprintf("%s:ro-pass-Secret9@tcp(%s)/%s", user, rootCfg.Addr, dbName),
	}
	e.CfgPath = filepath.Join(e.Dir, "settings.toml")
	e.LogPath = filepath.Join(e.Dir, "log", "sync.log")
	if err := os.WriteFile(filepath.Join(e.Dir, "secret"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	settings := fmt.Sprintf(`[tenant]
id = %q
secret_file = %q

[ingest]
url = %q
timeout = "2s"
retry_max_wait = "2s"
%s

[erp]
dsn = %q
poll_interval = "50ms"
page_size = 100
site_url = "https://erp.example.com"
%s

[outbox]
path = %q

[log]
file = %q
level = "debug"
`, Tenant, filepath.Join(e.Dir, "secret"), url, o.Settings, e.DSN, o.ERP, filepath.Join(e.Dir, "outbox.db"), e.LogPath)
	if err := os.WriteFile(e.CfgPath, []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
		if t.Failed() {
			if b, err := os.ReadFile(e.LogPath); err == nil {
				lines := strings.Split(string(b), "\n")
				t.Logf("last lines of the sync log:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	return e
}

// Start runs the site's pipeline in process, as `erpsync run` would with
// this settings file, until Stop or the end of the test. It returns once the
// pipeline has its database and outbox open.
func (e *Env) Start() {
	e.T.Helper()
	cfg, err := config.Read(e.CfgPath)
	if err != nil {
		e.T.Fatal(err)
	}
	log, err := synclog.Open(synclog.Options{File: cfg.Log.File, Level: cfg.Log.Level, Format: cfg.Log.Format}, nil)
	if err != nil {
		e.T.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	e.log = log
	e.Registry = metrics.New()
	sc := cfg.Sites[0]
	if e.Name != "" {
		sc.Name = e.Name
	}
	e.Pipeline = site.New(sc, site.Options{Logger: log.Logger, HousekeepingEvery: 200 * time.Millisecond,
		Ready: func() { close(ready) }, Metrics: site.NewMetrics(e.Registry, "test"), Servers: e.Servers})
	go func() {
		done <- e.Pipeline.Run(ctx)
		log.Close()
	}()
	select {
	case <-ready:
	case err := <-done:
		e.T.Fatalf("pipeline stopped before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		e.T.Fatal("pipeline not ready within 60s")
	}
	e.stop = func() error {
		cancel()
		select {
		case err := <-done:
			e.stop = nil
			return err
		case <-time.After(30 * time.Second):
			e.T.Fatal("pipeline did not stop within 30s of its context ending")
			return nil
		}
	}
}

// Stop stops the pipeline Start started and fails the test if it stopped
// with an error.
func (e *Env) Stop() {
	e.T.Helper()
	if err := e.stop(); err != nil {
		e.T.Fatalf("pipeline stopped with an error: %v", err)
	}
}

// Reload reads the settings file again and applies its site to the running
// pipeline, as `erpsync run` does on SIGHUP: a file with an error keeps the
// running settings, logs why and returns the error.
func (e *Env) Reload() error {
	cfg, err := config.Read(e.CfgPath)
	if err != nil {
		e.log.Error("settings reload failed; the running settings stay in force", "err", err)
		return err
	}
	if err := e.log.SetLevel(cfg.Log.Level); err != nil {
		return err
	}
	return e.Pipeline.Apply(cfg.Sites[0])
}

// RewriteSettings replaces old with new in the settings file, by writing a
// temporary file and renaming it over, as editors do.
func (e *Env) RewriteSettings(t *testing.T, old, new string) {
	t.Helper()
	b, err := os.ReadFile(e.CfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("settings do not contain %q", old)
	}
	tmp := e.CfgPath + ".tmp"
	if err := os.WriteFile(tmp, bytes.Replace(b, []byte(old), []byte(new), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, e.CfgPath); err != nil {
		t.Fatal(err)
	}
}

// WaitLog waits up to 30s for the sync log to contain want.
func (e *Env) WaitLog(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(e.Log(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the sync log never said %q; it holds:\n%s", want, e.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Wait waits until cond holds for the receiver, up to 60s.
func (e *Env) Wait(t *testing.T, what string, cond func(items map[string]receiver.Entry) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.Rcv.Wait(ctx, func(r *receiver.Receiver) bool { return cond(r.Items(Tenant)) }); err != nil {
		t.Fatalf("waiting for %s: %v (receiver stats %+v)", what, err, e.Rcv.Stats())
	}
}

// WaitCount waits until the receiver holds at least n items.
func (e *Env) WaitCount(n int) {
	e.T.Helper()
	e.Wait(e.T, fmt.Sprintf("%d items", n), func(items map[string]receiver.Entry) bool { return len(items) >= n })
}

// Exec runs a statement as root on the site database.
func (e *Env) Exec(q string, args ...any) {
	e.T.Helper()
	if _, err := e.DB.ExecContext(context.Background(), q, args...); err != nil {
		e.T.Fatalf("%s: %v", q, err)
	}
}

// Stats opens the outbox as a second reader, like `erpsync status` would.
func (e *Env) Stats() outbox.Stats {
	e.T.Helper()
	ob, err := outbox.Open(context.Background(), filepath.Join(e.Dir, "outbox.db"))
	if err != nil {
		e.T.Fatal(err)
	}
	defer ob.Close()
	st, err := ob.Stats(context.Background())
	if err != nil {
		e.T.Fatal(err)
	}
	return st
}

// Log returns the sync log so far.
func (e *Env) Log() string {
	b, _ := os.ReadFile(e.LogPath)
	return string(b)
}

// Metric is the value of the series whose exposition line starts with
// series (name and labels, as `erpsync_site_up{site="default"}`), "" when
// there is none.
func (e *Env) Metric(series string) string {
	var b strings.Builder
	if _, err := e.Registry.WriteTo(&b); err != nil {
		e.T.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// AssertMatchesDatabase compares the receiver's final state of every item with
// the whole item built from the database now: equal, nothing missing, deleted
// items deleted.
func (e *Env) AssertMatchesDatabase() {
	e.T.Helper()
	ctx := context.Background()
	det, err := detector.New(ctx, e.DB, detector.Config{SiteURL: "https://erp.example.com"})
	if err != nil {
		e.T.Fatal(err)
	}
	var codes []string
	rows, err := e.DB.QueryContext(ctx, "SELECT name FROM tabItem")
	if err != nil {
		e.T.Fatal(err)
	}
	for rows.Next() {
		var c string
		rows.Scan(&c)
		codes = append(codes, c)
	}
	rows.Close()
	got := e.Rcv.Items(Tenant)
	built, err := det.Build(ctx, codes)
	if err != nil {
		e.T.Fatal(err)
	}
	present := map[string]bool{}
	for _, it := range built {
		present[it.Code] = true
		entry, ok := got[it.Code]
		if !ok {
			e.T.Errorf("item %s is in the database but never reached the receiver", it.Code)
			continue
		}
		if entry.Op != "upsert" {
			e.T.Errorf("item %s exists but the receiver's last state is %s", it.Code, entry.Op)
			continue
		}
		recv := map[string]any{}
		for k, v := range entry.Item {
			if k != "op" && k != "version" {
				recv[k] = v
			}
		}
		a, _ := signer.Canonical(recv)
		b := it.Content.Append(nil)
		if string(a) != string(b) {
			e.T.Errorf("item %s differs:\nreceiver %s\ndatabase %s", it.Code, a, b)
		}
	}
	for code, entry := range got {
		if !present[code] && entry.Op != "delete" {
			e.T.Errorf("item %s no longer exists but the receiver's last state is %s", code, entry.Op)
		}
	}
}

// AssertNoRejections fails if the receiver rejected any request.
func (e *Env) AssertNoRejections() {
	e.T.Helper()
	if st := e.Rcv.Stats(); len(st.Rejected) > 0 {
		e.T.Errorf("the receiver rejected requests: %v", st.Rejected)
	}
}

// LockedBuffer collects a process's output while the test reads it.
type LockedBuffer struct {
	mu     sync.Mutex
	b      strings.Builder
	writes int // calls of Write
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Price is the rate of item entry e in price list list, nil when it has none.
func Price(e receiver.Entry, list string) any {
	prices, _ := e.Item["prices"].([]any)
	for _, p := range prices {
		m, _ := p.(map[string]any)
		if m["price_list"] == list {
			return m["rate"]
		}
	}
	return nil
}

// Stock is the quantity of item entry e in warehouse warehouse, nil when it has none.
func Stock(e receiver.Entry, warehouse string) any {
	stock, _ := e.Item["stock"].([]any)
	for _, s := range stock {
		m, _ := s.(map[string]any)
		if m["warehouse"] == warehouse {
			return m["actual_qty"]
		}
	}
	return nil
}

// ContentFields is an item's content as a map (numbers as json.Number), for
// tests that build an expected entry field by field.
func ContentFields(it detector.Item) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(it.Content.Append(nil)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("item %s: %w", it.Code, err)
	}
	return m, nil
}

// ContentHash is the content hash the outbox stores for an item with these
// fields: the sha256 of their canonical JSON without `modified`, base64
// without padding.
func ContentHash(fields map[string]any) (string, error) {
	c := make(map[string]any, len(fields))
	for k, v := range fields {
		if k != "modified" {
			c[k] = v
		}
	}
	b, err := signer.Canonical(c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return base64.RawStdEncoding.EncodeToString(sum[:]), nil
}
