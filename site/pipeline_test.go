package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/signer"
)

func price(e receiver.Entry, list string) any {
	prices, _ := e.Item["prices"].([]any)
	for _, p := range prices {
		m, _ := p.(map[string]any)
		if m["price_list"] == list {
			return m["rate"]
		}
	}
	return nil
}

func stockOf(e receiver.Entry, warehouse string) any {
	stock, _ := e.Item["stock"].([]any)
	for _, s := range stock {
		m, _ := s.(map[string]any)
		if m["warehouse"] == warehouse {
			return m["actual_qty"]
		}
	}
	return nil
}

// TestPipeline drives one running daemon through every kind of change an
// ERPNext site makes and checks each arrives, verified, as the whole item.
func TestPipeline(t *testing.T) {
	ctx := context.Background()
	const n = 120
	e := newE2E(t, e2eOptions{items: n, settings: "batch_size = 10"})
	e.start()
	e.waitCount(n)
	if st := e.rcv.Stats(); st.Accepted > n/10+2 {
		t.Errorf("initial sync took %d requests for %d items at batch_size 10", st.Accepted, n)
	}

	var lastMiss string
	var binItems []string // items with stock in Finished Goods, all changed by one UPDATE below
	rows, err := e.db.QueryContext(ctx, "SELECT item_code FROM `tabBin` WHERE warehouse = 'Finished Goods - AC' AND item_code <> 'ITEM-00004'")
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
				must(t, e.site.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "1234567.891000000"}))
				must(t, e.site.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "99999999999.999999999"}))
			},
			done: func(items map[string]receiver.Entry) bool {
				e := items["ITEM-00001"]
				return price(e, "Standard Selling") == json.Number("1234567.891") && price(e, "Wholesale") == "99999999999.999999999"
			},
		},
		{
			name: "stock change",
			change: func(t *testing.T) {
				must(t, e.site.SetStock(ctx, "ITEM-00002", erpnext.Stock{Warehouse: "Stores - AC", ActualQty: "7.250000000", ReservedQty: "1", ProjectedQty: "6.25"}))
			},
			done: func(items map[string]receiver.Entry) bool {
				return stockOf(items["ITEM-00002"], "Stores - AC") == json.Number("7.25")
			},
		},
		{
			name: "item update with non-ASCII and <>&",
			change: func(t *testing.T) {
				must(t, e.site.SaveItem(ctx, erpnext.Item{Code: "ITEM-00003", Name: "Ньютон <Café> & 日本茶 😀", Group: "Products", StockUOM: "Nos",
					Description: `<div class="x">a & b</div>`, Barcodes: []erpnext.Barcode{{Barcode: "4006381333931", Type: "EAN"}}}))
			},
			done: func(items map[string]receiver.Entry) bool {
				return items["ITEM-00003"].Item["item_name"] == "Ньютон <Café> & 日本茶 😀"
			},
		},
		{
			name: "create",
			change: func(t *testing.T) {
				must(t, e.site.SaveItem(ctx, erpnext.Item{Code: "NEW-<&>-1", Name: "New & shiny", Group: "Products", StockUOM: "Nos"}))
				must(t, e.site.SetPrice(ctx, "NEW-<&>-1", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "0.100000000"}))
			},
			done: func(items map[string]receiver.Entry) bool {
				x, ok := items["NEW-<&>-1"]
				return ok && x.Op == "upsert" && price(x, "Standard Selling") == json.Number("0.1")
			},
		},
		{
			name:   "delete",
			change: func(t *testing.T) { must(t, e.site.DeleteItem(ctx, "ITEM-00004")) },
			done:   func(items map[string]receiver.Entry) bool { return items["ITEM-00004"].Op == "delete" },
		},
		{
			name: "a transaction that commits after a later one with an earlier modified",
			change: func(t *testing.T) {
				var utc string
				must(t, e.db.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(6)").Scan(&utc))
				now, _ := time.Parse("2006-01-02 15:04:05.000000", utc)
				loc, _ := time.LoadLocation(e2eTZ)
				early := now.In(loc).Add(-20 * time.Second).Format("2006-01-02 15:04:05.000000")
				slow, err := e.db.BeginTx(ctx, nil)
				must(t, err)
				_, err = slow.ExecContext(ctx, "UPDATE `tabItem Price` SET price_list_rate = 5.5, modified = ? WHERE item_code = 'ITEM-00005' AND price_list = 'Standard Selling'", early)
				must(t, err)
				must(t, e.site.SetPrice(ctx, "ITEM-00006", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "6.6"}))
				e.wait(t, "the later transaction", func(items map[string]receiver.Entry) bool {
					return price(items["ITEM-00006"], "Standard Selling") == json.Number("6.6")
				})
				time.Sleep(200 * time.Millisecond) // several polls move the cursor past the early row
				must(t, slow.Commit())
			},
			done: func(items map[string]receiver.Entry) bool {
				return price(items["ITEM-00005"], "Standard Selling") == json.Number("5.5")
			},
		},
		{
			name: "many rows with the same modified",
			change: func(t *testing.T) {
				var utc string
				must(t, e.db.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(6)").Scan(&utc))
				now, _ := time.Parse("2006-01-02 15:04:05.000000", utc)
				loc, _ := time.LoadLocation(e2eTZ)
				e.exec("UPDATE `tabBin` SET actual_qty = 4242, modified = ? WHERE warehouse = 'Finished Goods - AC'",
					now.In(loc).Format("2006-01-02 15:04:05.000000"))
			},
			done: func(items map[string]receiver.Entry) bool {
				for _, code := range binItems {
					if got := stockOf(items[code], "Finished Goods - AC"); got != json.Number("4242") {
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
			e.wait(t, tc.name, tc.done)
		})
	}
	// Let a few more polls pass: nothing further must be sent.
	e.wait(t, "outbox drained", func(map[string]receiver.Entry) bool { return e.stats().Pending == 0 })
	before := e.rcv.Stats()
	time.Sleep(300 * time.Millisecond)
	if after := e.rcv.Stats(); after.Items != before.Items {
		t.Errorf("idle polls sent %d more items", after.Items-before.Items)
	}
	e.assertMatchesDatabase()
	e.assertNoRejections()
	st := e.stats()
	if st.Dead != 0 || st.Pending != 0 {
		t.Errorf("outbox: %+v, want nothing dead or pending", st)
	}
	if rs := e.rcv.Stats(); rs.Duplicates != 0 {
		t.Errorf("receiver saw %d duplicate deliveries", rs.Duplicates)
	}
	e.stop()
	log := e.log()
	for _, want := range []string{"HMAC signed", "HMAC accepted", "detected change", "initial sync done"} {
		if !strings.Contains(log, want) {
			t.Errorf("sync log has no %q line", want)
		}
	}
	if strings.Contains(log, e.secret) || strings.Contains(log, "ro-pass-Secret9") {
		t.Error("the sync log contains the tenant secret or the database password")
	}
}

// TestRestartResumesWithoutGapOrResend stops the daemon, changes items while
// it is down, and starts it again: exactly those changes are sent, and the
// initial sync is not repeated.
func TestRestartResumesWithoutGapOrResend(t *testing.T) {
	ctx := context.Background()
	const n = 80
	e := newE2E(t, e2eOptions{items: n})
	e.start()
	e.waitCount(n)
	e.wait(t, "outbox drained", func(map[string]receiver.Entry) bool { return e.stats().Pending == 0 })
	e.stop()
	before := e.rcv.Stats()

	must(t, e.site.SetPrice(ctx, "ITEM-00010", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: "10.01"}))
	must(t, e.site.SetStock(ctx, "ITEM-00011", erpnext.Stock{Warehouse: "Stores - AC", ActualQty: "11", ReservedQty: "0", ProjectedQty: "11"}))
	must(t, e.site.DeleteItem(ctx, "ITEM-00012"))

	e.start()
	e.wait(t, "the three changes made while stopped", func(items map[string]receiver.Entry) bool {
		return price(items["ITEM-00010"], "Standard Selling") == json.Number("10.01") &&
			stockOf(items["ITEM-00011"], "Stores - AC") == json.Number("11") &&
			items["ITEM-00012"].Op == "delete"
	})
	time.Sleep(500 * time.Millisecond)
	after := e.rcv.Stats()
	if sent := after.Items - before.Items; sent != 3 {
		t.Errorf("after the restart %d item states were sent, want exactly the 3 changed ones", sent)
	}
	e.stop()
	if c := strings.Count(e.log(), "initial sync done"); c != 1 {
		t.Errorf("the initial sync ran %d times, want once", c)
	}
	e.assertMatchesDatabase()
	e.assertNoRejections()
}

// TestWrongSecretPausesWithoutLoss: a 401 pauses delivery and keeps every
// message; delivery resumes by itself once the receiver accepts the secret.
func TestWrongSecretPausesWithoutLoss(t *testing.T) {
	const n = 15
	e := newE2E(t, e2eOptions{items: n})
	right, _ := signer.DecodeSecret(e.secret)
	e.rcv.SetTenant(e2eTenant, []byte("a-completely-different-secret-of-32-bytes!"))
	e.start()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(e.log(), "HMAC rejected (401)") {
		if time.Now().After(deadline) {
			t.Fatal("no HMAC rejected (401) line in the sync log")
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := e.stats()
	if st.Dead != 0 || st.Delivered != 0 || st.Pending == 0 {
		t.Fatalf("after a 401 the outbox is %+v: want every message still pending", st)
	}
	if !strings.Contains(e.log(), "check the tenant secret and the clock") {
		t.Error("the 401 line does not say what to check")
	}
	e.rcv.SetTenant(e2eTenant, right)
	e.waitCount(n)
	e.stop()
	e.assertMatchesDatabase()
	if st := e.stats(); st.Dead != 0 {
		t.Errorf("%d messages were dead-lettered for an auth failure", st.Dead)
	}
}

// TestPoisonItemDeadLettered: a 422 dead-letters that message with the
// response kept; every other item is delivered.
func TestPoisonItemDeadLettered(t *testing.T) {
	const n = 20
	e := newE2E(t, e2eOptions{items: n, fault: func(r *receiverRequest) (int, bool) {
		if strings.Contains(string(r.body), `"item_code":"ITEM-00007"`) {
			return 422, true
		}
		return 0, false
	}})
	e.start()
	e.waitCount(n - 1)
	e.wait(t, "the poison message dead-lettered", func(map[string]receiver.Entry) bool { return e.stats().Dead == 1 })
	if _, ok := e.rcv.Items(e2eTenant)["ITEM-00007"]; ok {
		t.Error("the rejected item reached the receiver's state")
	}
	e.stop()
	if !strings.Contains(e.log(), "422") {
		t.Error("the sync log does not mention the 422")
	}
}

// TestRunBinarySIGTERM runs `erpsync run` and `erpsync receive` as processes,
// as users do: every request is verified by `erpsync receive`, and SIGTERM
// stops the daemon cleanly.
func TestRunBinarySIGTERM(t *testing.T) {
	const n = 25
	e := newE2E(t, e2eOptions{items: n})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	l.Close()
	recv := exec.Command(binPath, "receive", "--listen", addr, "--tenant", e2eTenant+"=@"+filepath.Join(e.dir, "secret"))
	recvOut, err := recv.StdoutPipe()
	must(t, err)
	var recvErr lockedBuffer
	recv.Stderr = &recvErr
	must(t, recv.Start())
	defer func() { recv.Process.Kill(); recv.Wait() }()
	accepted := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(recvOut)
		for sc.Scan() {
			accepted <- sc.Text()
		}
		close(accepted)
	}()
	cfg, err := os.ReadFile(e.cfgPath)
	must(t, err)
	must(t, os.WriteFile(e.cfgPath, []byte(strings.Replace(string(cfg), e.url, "http://"+addr+"/ingest", 1)), 0o600))

	cmd := exec.Command(binPath, "run", "--config", e.cfgPath)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()

	items := map[string]string{}
	waitLines := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for !cond() {
			select {
			case line, ok := <-accepted:
				if !ok {
					t.Fatalf("erpsync receive exited; stderr:\n%s", recvErr.String())
				}
				f := strings.Fields(line)
				for _, kv := range f {
					if code, ok := strings.CutPrefix(kv, "item="); ok {
						items[code] = line
					}
				}
			case <-deadline:
				t.Fatalf("waiting for %s: have %d items; receive stderr:\n%s\nrun stderr:\n%.3000s", what, len(items), recvErr.String(), stderr.String())
			}
		}
	}
	waitLines("the initial sync", func() bool { return len(items) == n })
	first := items["ITEM-00002"]
	must(t, e.site.SetPrice(context.Background(), "ITEM-00002", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "2.02"}))
	waitLines("a price change", func() bool { return items["ITEM-00002"] != first })

	must(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("erpsync run exited with %v after SIGTERM; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("erpsync run did not exit within 20s of SIGTERM")
	}
	if strings.Contains(recvErr.String(), "level=WARN") {
		t.Errorf("erpsync receive rejected requests:\n%s", recvErr.String())
	}
	for _, out := range []string{e.log(), stderr.String()} {
		if !strings.Contains(out, "HMAC accepted") || !strings.Contains(out, "erpsync stopped") {
			t.Errorf("log output lacks HMAC accepted / erpsync stopped:\n%.2000s", out)
		}
		if strings.Contains(out, e.secret) {
			t.Error("the secret reached the log")
		}
	}
}

// TestRunRefusesBadSettings: a bad setting stops start-up with the reason and
// exit code 1.
func TestRunRefusesBadSettings(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/settings.toml"
	must(t, os.WriteFile(path, []byte("[tenant]\nid = \"acme\"\nsecret = \"c2hvcnQ=\"\n[ingest]\nurl = \"http://example.com/x\"\n"), 0o600))
	cmd := exec.Command(binPath, "run", "--config", path)
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
		t.Fatalf("exit %d, err %v, want exit 1", code, err)
	}
	for _, want := range []string{path, "tenant.secret", "ingest.url", "erp.dsn"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not name %q:\n%s", want, out)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
