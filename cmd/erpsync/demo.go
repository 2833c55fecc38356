package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// demoStep is one scripted edit: what it does, the change, when the receiver
// holds it, and one line of what the receiver then holds.
type demoStep struct {
	what  string
	do    func() error
	check func(items map[string]receiver.Entry) bool
	shows func(items map[string]receiver.Entry) string
}

// script makes the demo's edits and shows each arriving verified.
func (c *DemoCommand) script(ctx context.Context, erp *erpnext.Site, rcv *receiver.Receiver) error {
	for _, s := range demoSteps(ctx, erp) {
		fmt.Fprintf(c.stdout, "==> %s\n", s.what)
		start := time.Now()
		if err := s.do(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := rcv.Wait(wctx, func(r *receiver.Receiver) bool { return s.check(r.Items(demoTenant)) })
		cancel()
		if err != nil {
			return fmt.Errorf("%s: the change did not arrive verified within 30s: %w", s.what, err)
		}
		fmt.Fprintf(c.stdout, "    arrived verified %s after the commit: %s\n", time.Since(start).Round(time.Millisecond), s.shows(rcv.Items(demoTenant)))
	}
	return nil
}

// Codes and names of the demo's own items.
const (
	demoNew      = "DEMO-NEW"
	demoRenamed  = "DEMO-CAFE"
	demoTemplate = "DEMO-TSHIRT"
	demoVariant  = "DEMO-TSHIRT-RED-M" // no price of its own
	demoPriced   = "DEMO-TSHIRT-BLUE-L"
	demoSelling  = erpnext.PriceListSelling
)

func demoSteps(ctx context.Context, erp *erpnext.Site) []demoStep {
	steps := []demoStep{
		{
			what: "price change: ITEM-00001 on Standard Selling to 24.50",
			do: func() error {
				return erp.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: demoSelling, Currency: "KES", Rate: "24.500000000"})
			},
			check: func(items map[string]receiver.Entry) bool { return hasPrice(items["ITEM-00001"], demoSelling, "24.5") },
			shows: func(map[string]receiver.Entry) string { return "ITEM-00001 prices Standard Selling at 24.5" },
		},
		{
			what: "stock change: ITEM-00002 in Stores - AC to 7",
			do: func() error {
				return erp.SetStock(ctx, "ITEM-00002", erpnext.Stock{Warehouse: erpnext.WarehouseStores, ActualQty: "7.000000000", ReservedQty: "0.000000000", ProjectedQty: "7.000000000"})
			},
			check: func(items map[string]receiver.Entry) bool {
				return hasStock(items["ITEM-00002"], erpnext.WarehouseStores, "7")
			},
			shows: func(map[string]receiver.Entry) string { return "ITEM-00002 has actual_qty 7 in Stores - AC" },
		},
		{
			what: "new item: DEMO-NEW \"Café <Deluxe> & Co\" with a price",
			do: func() error {
				err := erp.SaveItem(ctx, erpnext.Item{Code: demoNew, Name: "Café <Deluxe> & Co", Group: "Products",
					StockUOM: "Nos", Image: "/files/demo new.jpg", Barcodes: []erpnext.Barcode{{Barcode: "6001234500011", Type: "EAN"}}})
				if err != nil {
					return err
				}
				return erp.SetPrice(ctx, demoNew, erpnext.Price{PriceList: demoSelling, Currency: "KES", Rate: "1999.990000000"})
			},
			check: func(items map[string]receiver.Entry) bool {
				e, ok := items[demoNew]
				return ok && e.Op == "upsert" && hasPrice(e, demoSelling, "1999.99")
			},
			shows: func(items map[string]receiver.Entry) string {
				return fmt.Sprintf("%s upserted as %q at 1999.99", demoNew, items[demoNew].Item["item_name"])
			},
		},
		{
			what: "delete: ITEM-00003",
			do:   func() error { return erp.DeleteItem(ctx, "ITEM-00003") },
			check: func(items map[string]receiver.Entry) bool {
				e, ok := items["ITEM-00003"]
				return ok && e.Op == "delete"
			},
			shows: func(items map[string]receiver.Entry) string {
				return fmt.Sprintf("ITEM-00003 deleted (reason %v)", items["ITEM-00003"].Item["reason"])
			},
		},
	}
	return append(steps, demoStorefrontSteps(ctx, erp)...)
}

// demoStorefrontSteps show what the storefront gets beyond the raw rows:
// selling prices only, effective prices inherited by variants, group
// warehouses, available quantities and renames.
func demoStorefrontSteps(ctx context.Context, erp *erpnext.Site) []demoStep {
	return []demoStep{
		{
			what: "prices: DEMO-NEW at 1200 on Standard Buying (not sent) and 1899.50 on Standard Selling",
			do: func() error {
				if err := erp.SetPrice(ctx, demoNew, erpnext.Price{PriceList: erpnext.PriceListBuying, Currency: "KES", Rate: "1200"}); err != nil {
					return err
				}
				return erp.SetPrice(ctx, demoNew, erpnext.Price{PriceList: demoSelling, Currency: "KES", Rate: "1899.5"})
			},
			check: func(items map[string]receiver.Entry) bool {
				e := items[demoNew]
				return hasPrice(e, demoSelling, "1899.5") && !hasPriceList(e, erpnext.PriceListBuying) &&
					fmt.Sprint(effective(e, demoSelling)["rate"]) == "1899.5"
			},
			shows: func(map[string]receiver.Entry) string {
				return "prices hold Standard Selling 1899.5 and no Standard Buying row; effective_prices quote 1899.5"
			},
		},
		{
			what: "variants: DEMO-TSHIRT (Colour, Size) at 1500 on Standard Selling; DEMO-TSHIRT-RED-M without a price of its own",
			do:   func() error { return demoTShirts(ctx, erp) },
			check: func(items map[string]receiver.Entry) bool {
				red, blue := items[demoVariant], items[demoPriced]
				return attributesAre(red, "Colour=Red, Size=M") && attributesAre(blue, "Colour=Blue, Size=L") &&
					fmt.Sprint(effective(red, demoSelling)["rate"]) == "1500" && effective(red, demoSelling)["inherited_from"] == demoTemplate &&
					fmt.Sprint(effective(blue, demoSelling)["rate"]) == "1650" && effective(blue, demoSelling)["inherited_from"] == nil
			},
			shows: func(items map[string]receiver.Entry) string {
				return fmt.Sprintf("%s is %s, Standard Selling 1500 inherited from %s (%s: its own 1650)",
					demoVariant, attributesOf(items[demoVariant]), demoTemplate, demoPriced)
			},
		},
		{
			what: "group warehouse: DEMO-NEW gets 10 in Stores - AC and 4 in Finished Goods - AC",
			do: func() error {
				for _, st := range []erpnext.Stock{{Warehouse: erpnext.WarehouseStores, ActualQty: "10"}, {Warehouse: erpnext.WarehouseFinished, ActualQty: "4"}} {
					if err := erp.SetStock(ctx, demoNew, st); err != nil {
						return err
					}
				}
				return nil
			},
			check: func(items map[string]receiver.Entry) bool {
				g, leaf := stockEntry(items[demoNew], erpnext.WarehouseAll), stockEntry(items[demoNew], erpnext.WarehouseStores)
				return g["is_group"] == true && fmt.Sprint(g["actual_qty"]) == "14" && leaf["is_group"] == false && fmt.Sprint(leaf["actual_qty"]) == "10"
			},
			shows: func(map[string]receiver.Entry) string {
				return "stock lists All Warehouses - AC (is_group) with actual_qty 14 (10 + 4) beside Stores - AC with 10"
			},
		},
		{
			what: "reservation: a Sales Order holds 3 of DEMO-NEW in Stores - AC",
			do:   func() error { return erp.ReserveStock(ctx, demoNew, erpnext.WarehouseStores, "3") },
			check: func(items map[string]receiver.Entry) bool {
				leaf, g := stockEntry(items[demoNew], erpnext.WarehouseStores), stockEntry(items[demoNew], erpnext.WarehouseAll)
				return fmt.Sprint(leaf["reserved_qty"]) == "3" && fmt.Sprint(leaf["available_qty"]) == "7" && fmt.Sprint(g["available_qty"]) == "11"
			},
			shows: func(map[string]receiver.Entry) string {
				return "Stores - AC: actual 10, reserved 3, available_qty 7; the group's available_qty 11"
			},
		},
		{
			what: "rename: DEMO-NEW to DEMO-CAFE",
			do:   func() error { return erp.RenameItem(ctx, demoNew, demoRenamed) },
			check: func(items map[string]receiver.Entry) bool {
				old, ok := items[demoNew]
				renamed, ok2 := items[demoRenamed]
				return ok && ok2 && old.Op == "delete" && old.Item["reason"] == "renamed" && old.Item["renamed_to"] == demoRenamed &&
					renamed.Op == "upsert" && hasPrice(renamed, demoSelling, "1899.5")
			},
			shows: func(map[string]receiver.Entry) string {
				return "DEMO-NEW deleted with reason renamed, renamed_to DEMO-CAFE; DEMO-CAFE upserted with its prices and stock"
			},
		},
	}
}

// demoTShirts makes the template DEMO-TSHIRT, prices it, and makes two
// variants, one priced. The template is priced before the variants exist, so
// that their first state already inherits its price.
func demoTShirts(ctx context.Context, erp *erpnext.Site) error {
	err := erp.SaveItem(ctx, erpnext.Item{Code: demoTemplate, Name: "Demo T-shirt", Group: "Products", StockUOM: "Nos", HasVariants: true,
		Attributes: []erpnext.Attribute{{Attribute: "Colour"}, {Attribute: "Size"}}})
	if err != nil {
		return err
	}
	if err := erp.SetPrice(ctx, demoTemplate, erpnext.Price{PriceList: demoSelling, Currency: "KES", Rate: "1500"}); err != nil {
		return err
	}
	for _, v := range []struct{ code, colour, size string }{{demoVariant, "Red", "M"}, {demoPriced, "Blue", "L"}} {
		err := erp.SaveItem(ctx, erpnext.Item{Code: v.code, Name: "Demo T-shirt " + v.colour + " " + v.size, Group: "Products", StockUOM: "Nos",
			VariantOf: demoTemplate, Attributes: []erpnext.Attribute{{Attribute: "Colour", Value: v.colour}, {Attribute: "Size", Value: v.size}}})
		if err != nil {
			return err
		}
	}
	return erp.SetPrice(ctx, demoPriced, erpnext.Price{PriceList: demoSelling, Currency: "KES", Rate: "1650"})
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

// hasPriceList reports whether e has a price row of list.
func hasPriceList(e receiver.Entry, list string) bool {
	prices, _ := e.Item["prices"].([]any)
	for _, p := range prices {
		if m, _ := p.(map[string]any); m["price_list"] == list {
			return true
		}
	}
	return false
}

// effective is e's effective price in list (nil when none).
func effective(e receiver.Entry, list string) map[string]any {
	all, _ := e.Item["effective_prices"].(map[string]any)
	m, _ := all[list].(map[string]any)
	return m
}

// attributesOf renders e's attributes as "Colour=Red, Size=M".
func attributesOf(e receiver.Entry) string {
	attrs, _ := e.Item["attributes"].([]any)
	var parts []string
	for _, a := range attrs {
		m, _ := a.(map[string]any)
		parts = append(parts, fmt.Sprintf("%v=%v", m["attribute"], m["value"]))
	}
	return strings.Join(parts, ", ")
}

func attributesAre(e receiver.Entry, want string) bool { return attributesOf(e) == want }

// stockEntry is e's stock entry of warehouse (nil when none).
func stockEntry(e receiver.Entry, warehouse string) map[string]any {
	stock, _ := e.Item["stock"].([]any)
	for _, s := range stock {
		if m, _ := s.(map[string]any); m["warehouse"] == warehouse {
			return m
		}
	}
	return nil
}

func hasStock(e receiver.Entry, warehouse, qty string) bool {
	m := stockEntry(e, warehouse)
	return m != nil && fmt.Sprint(m["actual_qty"]) == qty
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
warehouses = [%q, %q]

[outbox]
path = %q

[log]
file = %q
`, demoTenant, secretFile, url, dsn, binlogDir, erpnext.WarehouseAll, erpnext.WarehouseStores, filepath.Join(dir, "outbox.db"), filepath.Join(dir, "sync.log"))
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		return fmt.Errorf("write demo settings: %w", err)
	}
	return nil
}

// gatedWriter writes every line with a prefix, and only once on is set.
type gatedWriter struct {
	w      io.Writer
	on     *atomic.Bool
	prefix string
	mu     sync.Mutex
	mid    bool // the last write ended inside a line
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	if !g.on.Load() {
		return len(p), nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var b []byte
	for rest := p; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		if !g.mid {
			b = append(b, g.prefix...)
		}
		b = append(b, line...)
		g.mid = line[len(line)-1] != '\n'
		rest = rest[len(line):]
	}
	if _, err := g.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Usage prints help.
func (c *DemoCommand) Usage() {
	fmt.Fprint(c.stdout, `usage: erpsync demo [--for DURATION] [--items N] [--keep]

Runs the daemon's whole job on a self-contained default: a throwaway MariaDB
(Debian's mariadb-server must be installed; `+"`make demo`"+` installs it) with the
ERPNext schema and N sample items, a local receiver that verifies every
signature, and erpsync itself. It sends every item once, then edits a price
and a stock level, adds an item and deletes one; adds a buying price (not
sent) beside a selling one, a template with variants (one inheriting the
template's price), stock in a group warehouse, a Sales Order reservation
(available quantity), and renames an item; and shows each change arriving
verified. Stops on Ctrl-C or after --for, and leaves nothing behind.

Example:
	erpsync demo --for 60s
`)
}
