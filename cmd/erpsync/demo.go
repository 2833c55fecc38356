package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/mariadb"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/signer"
	"github.com/orderweave/erpsync/site"
	"github.com/orderweave/erpsync/synclog"
)

// DemoCommand runs the whole pipeline on a throwaway MariaDB with sample
// ERPNext data and a local verifying receiver.
type DemoCommand struct{ stdio }

const demoTenant = "demo_shop"
const demoTimeZone = "Africa/Nairobi"

// Run starts MariaDB, seeds a site, starts a receiver and the daemon, makes a
// few edits and shows each one arriving verified, then follows changes until
// Ctrl-C or --for. It leaves nothing running and removes its files.
func (c *DemoCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("demo", c.stderr, c.Usage)
	runFor := fs.Duration("for", 0, "stop after this long (default: run until Ctrl-C)")
	items := fs.Int("items", 300, "sample items to create")
	keep := fs.Bool("keep", false, "keep the temporary directory (database, outbox, sync log) afterwards")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *items < 10 {
		return usageErrorf("--items must be at least 10")
	}
	if *runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *runFor)
		defer cancel()
	}
	out := c.stdout
	dir, err := os.MkdirTemp("", "erpsync-demo-")
	if err != nil {
		return fmt.Errorf("make a temporary directory: %w", err)
	}
	if *keep {
		defer fmt.Fprintf(out, "kept %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	fmt.Fprintln(out, "==> starting a throwaway MariaDB")
	srv, err := mariadb.Start(ctx, mariadb.Options{Dir: filepath.Join(dir, "mariadb")})
	if err != nil {
		return err
	}
	defer srv.Stop()

	erp, dsn, err := c.seedSite(ctx, srv, *items)
	if err != nil {
		return err
	}
	defer erp.DB.Close()

	secret, err := signer.NewSecret()
	if err != nil {
		return err
	}
	var live atomic.Bool // print accepted items only once the initial sync is through
	rcv, url, stopReceiver, err := startDemoReceiver(ctx, secret, out, &live)
	if err != nil {
		return err
	}
	defer stopReceiver()
	fmt.Fprintf(out, "==> receiver verifying signatures at %s\n", url)

	cfgPath := filepath.Join(dir, "settings.toml")
	if err := writeDemoSettings(cfgPath, dir, url, dsn, secret, filepath.Join(srv.Dir, "binlog")); err != nil {
		return err
	}
	cfg, err := config.Read(cfgPath)
	if err != nil {
		return err
	}
	log, err := synclog.Open(logOptions(cfg.Log), nil)
	if err != nil {
		return err
	}
	defer log.Close()
	fmt.Fprintf(out, "==> starting erpsync (settings %s, sync log %s)\n", cfgPath, cfg.Log.File)

	stopDaemon := startDemoDaemon(ctx, cfg.Sites[0], log)
	defer stopDaemon() // on an early return; stopping twice is fine

	start := time.Now()
	err = rcv.Wait(ctx, func(r *receiver.Receiver) bool { return len(r.Items(demoTenant)) >= *items })
	if err != nil {
		return demoStopped(ctx, fmt.Errorf("initial sync did not reach the receiver: %w (see %s)", err, cfg.Log.File))
	}
	st := rcv.Stats()
	fmt.Fprintf(out, "==> initial sync: %d items verified and accepted in %s (%d requests)\n",
		len(rcv.Items(demoTenant)), time.Since(start).Round(time.Millisecond), st.Accepted)
	live.Store(true)

	if err := c.script(ctx, erp, rcv); err != nil {
		return demoStopped(ctx, err)
	}
	fmt.Fprintf(out, "==> following changes. Edit the database yourself:\n      mariadb --host 127.0.0.1 --port %d --user root erpnext\n    and watch: tail -f %s | grep HMAC\n", srv.Port, cfg.Log.File)
	if *runFor > 0 {
		fmt.Fprintf(out, "    (stopping after %s; Ctrl-C stops earlier)\n", *runFor)
	} else {
		fmt.Fprintln(out, "    (Ctrl-C stops)")
	}
	<-ctx.Done()
	err = stopDaemon()
	fmt.Fprintln(out, "==> stopped; MariaDB, receiver and daemon shut down")
	return err
}

// startDemoReceiver serves a verifying receiver for the demo's tenant on
// loopback; what it accepts is printed once live is set.
func startDemoReceiver(ctx context.Context, secret string, out io.Writer, live *atomic.Bool) (*receiver.Receiver, string, func(), error) {
	key, err := signer.DecodeSecret(secret)
	if err != nil {
		return nil, "", nil, err
	}
	rcv := receiver.New(receiver.Options{
		Tenants: map[string][]byte{demoTenant: key},
		Out:     &gatedWriter{w: out, on: live, prefix: "    receiver: "},
		Logger:  slog.New(slog.NewTextHandler(&gatedWriter{w: out, on: live, prefix: "    receiver: "}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	url, wait, err := receiver.Serve(rctx, "127.0.0.1:0", rcv)
	if err != nil {
		cancel()
		return nil, "", nil, err
	}
	return rcv, url, func() { cancel(); wait() }, nil
}

// startDemoDaemon runs the site's pipeline until the returned stop is
// called; stop returns the pipeline's error. It is safe to call twice.
func startDemoDaemon(ctx context.Context, cfg *config.Site, log *synclog.Log) (stop func() error) {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- site.New(cfg, site.Options{Logger: log.Logger, Version: version}).Run(dctx) }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
}

// demoStopped turns a wait cut short by Ctrl-C or --for into a clean stop.
func demoStopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (c *DemoCommand) seedSite(ctx context.Context, srv *mariadb.Server, n int) (*erpnext.Site, string, error) {
	root, err := sql.Open("mysql", srv.RootDSN(""))
	if err != nil {
		return nil, "", err
	}
	defer root.Close()
	if _, err := root.ExecContext(ctx, "CREATE DATABASE erpnext CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return nil, "", fmt.Errorf("create the demo database: %w", err)
	}
	db, err := sql.Open("mysql", srv.RootDSN("erpnext"))
	if err != nil {
		return nil, "", err
	}
	if err := erpnext.CreateSchema(ctx, db, demoTimeZone); err != nil {
		db.Close()
		return nil, "", err
	}
	const user, password = "erpsync", "demo-readonly"
	if err := erpnext.CreateReadOnlyUser(ctx, db, "erpnext", user, password); err != nil {
		db.Close()
		return nil, "", err
	}
	erp, err := erpnext.NewSite(db, demoTimeZone)
	if err != nil {
		db.Close()
		return nil, "", err
	}
	start := time.Now()
	if err := erp.Seed(ctx, n); err != nil {
		db.Close()
		return nil, "", fmt.Errorf("seed sample items: %w", err)
	}
	fmt.Fprintf(c.stdout, "==> ERPNext schema and %d sample items (prices, stock, barcodes) loaded in %s; time zone %s\n",
		n, time.Since(start).Round(time.Millisecond), demoTimeZone)
	dsn := fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/erpnext", user, password, srv.Port)
	return erp, dsn, nil
}

// script makes the demo's edits and shows each arriving verified.
func (c *DemoCommand) script(ctx context.Context, erp *erpnext.Site, rcv *receiver.Receiver) error {
	steps := []struct {
		what  string
		code  string
		do    func() error
		check func(e receiver.Entry, ok bool) bool
	}{
		{
			what: "price change: ITEM-00001 on Standard Selling to 24.50",
			code: "ITEM-00001",
			do: func() error {
				return erp.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "24.500000000"})
			},
			check: func(e receiver.Entry, ok bool) bool { return ok && hasPrice(e, "Standard Selling", "24.5") },
		},
		{
			what: "stock change: ITEM-00002 in Stores - AC to 7",
			code: "ITEM-00002",
			do: func() error {
				return erp.SetStock(ctx, "ITEM-00002", erpnext.Stock{Warehouse: "Stores - AC", ActualQty: "7.000000000", ReservedQty: "0.000000000", ProjectedQty: "7.000000000"})
			},
			check: func(e receiver.Entry, ok bool) bool { return ok && hasStock(e, "Stores - AC", "7") },
		},
		{
			what: "new item: DEMO-NEW \"Café <Deluxe> & Co\" with a price",
			code: "DEMO-NEW",
			do: func() error {
				err := erp.SaveItem(ctx, erpnext.Item{Code: "DEMO-NEW", Name: "Café <Deluxe> & Co", Group: "Products",
					StockUOM: "Nos", Image: "/files/demo new.jpg", Barcodes: []erpnext.Barcode{{Barcode: "6001234500011", Type: "EAN"}}})
				if err != nil {
					return err
				}
				return erp.SetPrice(ctx, "DEMO-NEW", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "1999.990000000"})
			},
			check: func(e receiver.Entry, ok bool) bool {
				return ok && e.Op == "upsert" && hasPrice(e, "Standard Selling", "1999.99")
			},
		},
		{
			what:  "delete: ITEM-00003",
			code:  "ITEM-00003",
			do:    func() error { return erp.DeleteItem(ctx, "ITEM-00003") },
			check: func(e receiver.Entry, ok bool) bool { return ok && e.Op == "delete" },
		},
	}
	for _, s := range steps {
		fmt.Fprintf(c.stdout, "==> %s\n", s.what)
		start := time.Now()
		if err := s.do(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := rcv.Wait(wctx, func(r *receiver.Receiver) bool {
			e, ok := r.Items(demoTenant)[s.code]
			return s.check(e, ok)
		})
		cancel()
		if err != nil {
			return fmt.Errorf("%s: the change did not arrive verified within 30s: %w", s.what, err)
		}
		fmt.Fprintf(c.stdout, "    arrived verified %s after the commit\n", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func hasPrice(e receiver.Entry, list, rate string) bool {
	prices, _ := e.Item["prices"].([]any)
	for _, p := range prices {
		m, _ := p.(map[string]any)
		if m["price_list"] == list && fmt.Sprint(m["rate"]) == rate {
			return true
		}
	}
	return false
}

func hasStock(e receiver.Entry, warehouse, qty string) bool {
	stock, _ := e.Item["stock"].([]any)
	for _, s := range stock {
		m, _ := s.(map[string]any)
		if m["warehouse"] == warehouse && fmt.Sprint(m["actual_qty"]) == qty {
			return true
		}
	}
	return false
}

func writeDemoSettings(path, dir, url, dsn, secret, binlogDir string) error {
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("write demo secret: %w", err)
	}
	s := fmt.Sprintf(`# written by erpsync demo
[tenant]
id = %q
secret_file = %q

[ingest]
url = %q
batch_size = 50

[erp]
dsn = %q
poll_interval = "1s"
watch = %q
site_url = "https://erp.demo.example"

[outbox]
path = %q

[log]
file = %q
`, demoTenant, secretFile, url, dsn, binlogDir, filepath.Join(dir, "outbox.db"), filepath.Join(dir, "sync.log"))
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		return fmt.Errorf("write demo settings: %w", err)
	}
	return nil
}

// gatedWriter writes with a prefix, and only once on is set.
type gatedWriter struct {
	w      io.Writer
	on     *atomic.Bool
	prefix string
	mu     sync.Mutex
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	if !g.on.Load() {
		return len(p), nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := io.WriteString(g.w, g.prefix); err != nil {
		return 0, err
	}
	return g.w.Write(p)
}

// Usage prints help.
func (c *DemoCommand) Usage() {
	fmt.Fprint(c.stdout, `usage: erpsync demo [--for DURATION] [--items N] [--keep]

Runs the daemon's whole job on a self-contained default: a throwaway MariaDB
(Debian's mariadb-server must be installed; `+"`make demo`"+` installs it) with the
ERPNext schema and N sample items, a local receiver that verifies every
signature, and erpsync itself. It sends every item once, then edits a price
and a stock level, adds an item and deletes one, and shows each change
arriving verified. Stops on Ctrl-C or after --for, and leaves nothing behind.

Example:
	erpsync demo --for 60s
`)
}
