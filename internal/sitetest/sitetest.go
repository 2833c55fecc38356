package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/mariadb"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
)

const (
	e2eTenant = "lighting_co_ke"
	e2eTZ     = "Asia/Kolkata"
)

// e2e is one ERPNext site in a real MariaDB, a verifying receiver on
// loopback, and a settings file for erpsync pointing at both.
type e2e struct {
	t       *testing.T
	db      *sql.DB // root connection, for edits
	dsn     string  // read-only user's DSN, as erpsync uses it
	site    *erpnext.Site
	rcv     *receiver.Receiver
	url     string
	dir     string
	cfgPath string
	logPath string
	secret  string

	daemon     *daemon // the running daemon, after start
	stopDaemon func() error
}

type e2eOptions struct {
	items    int
	seedAge  time.Duration // stamp the seeded rows this far in the past (beyond erp.overlap)
	settings string        // extra TOML lines appended to [ingest]
	fault    func(r *receiverRequest) (status int, handled bool)
}

type receiverRequest struct{ body []byte }

func newE2E(t *testing.T, o e2eOptions) *e2e {
	t.Helper()
	ctx := context.Background()
	rootDSN := mariadb.NewDatabase(t)
	db, err := sql.Open("mysql", rootDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := erpnext.CreateSchema(ctx, db, e2eTZ); err != nil {
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
	site, err := erpnext.NewSite(db, e2eTZ)
	if err != nil {
		t.Fatal(err)
	}
	if o.items > 0 {
		site.Now = func() time.Time { return time.Now().Add(-o.seedAge) }
		if err := site.Seed(ctx, o.items); err != nil {
			t.Fatal(err)
		}
		site.Now = time.Now
	}
	secret, err := signer.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := signer.DecodeSecret(secret)
	opts := receiver.Options{Tenants: map[string][]byte{e2eTenant: key}}
	if o.fault != nil {
		opts.Fault = func(r *http.Request, body []byte) (int, http.Header, bool) {
			status, handled := o.fault(&receiverRequest{body: body})
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
	e := &e2e{
		t: t, db: db, site: site, rcv: rcv, url: url, dir: t.TempDir(), secret: secret,
		dsn: fmt.Sprintf("%s:ro-pass-Secret9@tcp(%s)/%s", user, rootCfg.Addr, dbName),
	}
	e.cfgPath = filepath.Join(e.dir, "settings.toml")
	e.logPath = filepath.Join(e.dir, "log", "sync.log")
	if err := os.WriteFile(filepath.Join(e.dir, "secret"), []byte(secret+"\n"), 0o600); err != nil {
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

[outbox]
path = %q

[log]
file = %q
level = "debug"
`, e2eTenant, filepath.Join(e.dir, "secret"), url, o.settings, e.dsn, filepath.Join(e.dir, "outbox.db"), e.logPath)
	if err := os.WriteFile(e.cfgPath, []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if e.stopDaemon != nil {
			e.stopDaemon()
		}
		if t.Failed() {
			if b, err := os.ReadFile(e.logPath); err == nil {
				lines := strings.Split(string(b), "\n")
				t.Logf("last lines of the sync log:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	return e
}

// start runs the daemon in-process until stop.
func (e *e2e) start() {
	e.t.Helper()
	cfg, err := ReadConfig(e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	log, err := openSyncLog(cfg.Log, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	e.daemon = &daemon{cfg: cfg, logger: log.Logger, log: log, housekeepingEvery: 200 * time.Millisecond,
		ready: func() { close(ready) }}
	go func() {
		done <- e.daemon.Run(ctx)
		log.Close()
	}()
	select {
	case <-ready:
	case err := <-done:
		e.t.Fatalf("daemon stopped before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		e.t.Fatal("daemon not ready within 60s")
	}
	e.stopDaemon = func() error {
		cancel()
		select {
		case err := <-done:
			e.stopDaemon = nil
			return err
		case <-time.After(30 * time.Second):
			e.t.Fatal("daemon did not stop within 30s of its context ending")
			return nil
		}
	}
}

func (e *e2e) stop() {
	e.t.Helper()
	if err := e.stopDaemon(); err != nil {
		e.t.Fatalf("daemon stopped with an error: %v", err)
	}
}

// wait waits until cond holds for the receiver, up to 60s.
func (e *e2e) wait(t *testing.T, what string, cond func(items map[string]receiver.Entry) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.rcv.Wait(ctx, func(r *receiver.Receiver) bool { return cond(r.Items(e2eTenant)) }); err != nil {
		t.Fatalf("waiting for %s: %v (receiver stats %+v)", what, err, e.rcv.Stats())
	}
}

func (e *e2e) waitCount(n int) {
	e.t.Helper()
	e.wait(e.t, fmt.Sprintf("%d items", n), func(items map[string]receiver.Entry) bool { return len(items) >= n })
}

func (e *e2e) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.ExecContext(context.Background(), q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// stats opens the outbox as a second reader, like `erpsync status` would.
func (e *e2e) stats() outbox.Stats {
	e.t.Helper()
	ob, err := outbox.Open(context.Background(), filepath.Join(e.dir, "outbox.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer ob.Close()
	st, err := ob.Stats(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *e2e) log() string {
	b, _ := os.ReadFile(e.logPath)
	return string(b)
}

// assertMatchesDatabase compares the receiver's final state of every item with
// the whole item built from the database now: equal, nothing missing, deleted
// items deleted.
func (e *e2e) assertMatchesDatabase() {
	e.t.Helper()
	ctx := context.Background()
	det, err := detector.New(ctx, e.db, detector.Config{SiteURL: "https://erp.example.com"})
	if err != nil {
		e.t.Fatal(err)
	}
	var codes []string
	rows, err := e.db.QueryContext(ctx, "SELECT name FROM tabItem")
	if err != nil {
		e.t.Fatal(err)
	}
	for rows.Next() {
		var c string
		rows.Scan(&c)
		codes = append(codes, c)
	}
	rows.Close()
	got := e.rcv.Items(e2eTenant)
	built, err := det.Build(ctx, codes)
	if err != nil {
		e.t.Fatal(err)
	}
	present := map[string]bool{}
	for _, it := range built {
		present[it.Code] = true
		entry, ok := got[it.Code]
		if !ok {
			e.t.Errorf("item %s is in the database but never reached the receiver", it.Code)
			continue
		}
		if entry.Op != "upsert" {
			e.t.Errorf("item %s exists but the receiver's last state is %s", it.Code, entry.Op)
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
			e.t.Errorf("item %s differs:\nreceiver %s\ndatabase %s", it.Code, a, b)
		}
	}
	for code, entry := range got {
		if !present[code] && entry.Op != "delete" {
			e.t.Errorf("item %s no longer exists but the receiver's last state is %s", code, entry.Op)
		}
	}
}

// assertNoRejections fails if the receiver rejected any request.
func (e *e2e) assertNoRejections() {
	e.t.Helper()
	if st := e.rcv.Stats(); len(st.Rejected) > 0 {
		e.t.Errorf("the receiver rejected requests: %v", st.Rejected)
	}
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu     sync.Mutex
	b      strings.Builder
	writes int // calls of Write
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
