package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
)

// rewriteSettings replaces old with new in the settings file, by writing a
// temporary file and renaming it over, as editors do.
func (e *e2e) rewriteSettings(t *testing.T, old, new string) {
	t.Helper()
	b, err := os.ReadFile(e.cfgPath)
	must(t, err)
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("settings do not contain %q", old)
	}
	tmp := e.cfgPath + ".tmp"
	must(t, os.WriteFile(tmp, bytes.Replace(b, []byte(old), []byte(new), 1), 0o600))
	must(t, os.Rename(tmp, e.cfgPath))
}

// TestReloadRotatesSecretWithoutLoss: a wrong secret pauses delivery; a
// reload with the right one resumes it, with nothing lost or dead. A reload of
// a broken file keeps the running settings.
func TestReloadRotatesSecretWithoutLoss(t *testing.T) {
	const n = 12
	e := newE2E(t, e2eOptions{items: n})
	wrong, err := signer.NewSecret()
	must(t, err)
	secretFile := filepath.Join(e.dir, "secret")
	right, err := os.ReadFile(secretFile)
	must(t, err)
	must(t, os.WriteFile(secretFile, []byte(wrong+"\n"), 0o600))
	e.start()
	waitLog(t, e, "HMAC rejected (401)")

	// A broken file: the error is returned and logged, the old settings stay.
	e.rewriteSettings(t, `timeout = "2s"`, `timeout = "2s"
bogus_key = 1`)
	if err := e.daemon.Reload(); err == nil || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("Reload of a file with an unknown key: %v, want an error naming it", err)
	}
	waitLog(t, e, "settings reload failed; the running settings stay in force")
	e.rewriteSettings(t, "\nbogus_key = 1", "")

	// The right secret, and a change that needs a restart.
	must(t, os.WriteFile(secretFile, right, 0o600))
	e.rewriteSettings(t, `page_size = 100`, `page_size = 200`)
	must(t, e.daemon.Reload())
	e.waitCount(n)
	waitLog(t, e, "applied=tenant.secret")
	waitLog(t, e, "keys=erp.page_size")
	if st := e.stats(); st.Dead != 0 {
		t.Errorf("%d messages dead after a secret rotation", st.Dead)
	}
	e.stop()
	e.assertMatchesDatabase()
	if strings.Contains(e.log(), wrong) || strings.Contains(e.log(), strings.TrimSpace(string(right))) {
		t.Error("a secret reached the log")
	}
}

// TestReconcileCatchesRenameAndRawSQL: ERPNext renames items and rewrites
// some prices without moving `modified`; polling cannot see that, a
// reconciliation sweep must.
func TestReconcileCatchesRenameAndRawSQL(t *testing.T) {
	ctx := context.Background()
	const n = 30
	e := newE2E(t, e2eOptions{items: n, seedAge: time.Hour, settings: "batch_size = 7"})
	e.start()
	e.waitCount(n)
	e.wait(t, "outbox drained", func(map[string]receiver.Entry) bool { return e.stats().Pending == 0 })

	must(t, e.site.RenameItem(ctx, "ITEM-00005", "RENAMED-5"))
	must(t, e.site.RawPriceUpdate(ctx, "ITEM-00006", "Standard Selling", "606.060000000"))
	e.exec("DELETE FROM `tabBin` WHERE item_code = 'ITEM-00007'") // a raw delete, no trace
	before := e.rcv.Stats()
	time.Sleep(300 * time.Millisecond) // several polls
	if after := e.rcv.Stats(); after.Items != before.Items {
		t.Fatalf("polling sent %d items for changes that do not move modified; the test no longer tests reconciliation", after.Items-before.Items)
	}

	e.daemon.Reconcile()
	e.wait(t, "reconciliation", func(items map[string]receiver.Entry) bool {
		_, renamed := items["RENAMED-5"]
		return renamed && items["ITEM-00005"].Op == "delete" &&
			price(items["ITEM-00006"], "Standard Selling") == json.Number("606.06") &&
			len(items["ITEM-00007"].Item["stock"].([]any)) == 0
	})
	waitLog(t, e, "reconciliation done")
	time.Sleep(200 * time.Millisecond)
	if sent := e.rcv.Stats().Items - before.Items; sent != 4 {
		t.Errorf("reconciliation sent %d item states, want exactly 4 (rename = delete + upsert, price, stock)", sent)
	}
	e.stop()
	e.assertMatchesDatabase()
	e.assertNoRejections()
}

// TestRunBinarySignals: SIGHUP reopens the log file after logrotate moved it
// and reloads the settings; SIGUSR1 starts a reconciliation.
func TestRunBinarySignals(t *testing.T) {
	ctx := context.Background()
	const n = 10
	e := newE2E(t, e2eOptions{items: n})
	cmd := exec.Command(binPath, "run", "--config", e.cfgPath)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	e.waitCount(n)

	must(t, os.Rename(e.logPath, e.logPath+".1"))
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	waitLog(t, e, "settings reloaded: nothing changed")

	must(t, e.site.RawPriceUpdate(ctx, "ITEM-00003", "Wholesale", "3.030000000"))
	must(t, cmd.Process.Signal(syscall.SIGUSR1))
	e.wait(t, "reconciliation after SIGUSR1", func(items map[string]receiver.Entry) bool {
		return price(items["ITEM-00003"], "Wholesale") == json.Number("3.03")
	})
	waitLog(t, e, "reconciliation done")

	// Saving the settings file reloads it without a signal.
	e.rewriteSettings(t, `level = "debug"`, `level = "info"`)
	waitLog(t, e, "applied=log.level")
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
}

// TestWatchSettingsSurvivesRenameAndRecreate: the settings watcher sees a
// write, an editor's save-by-rename, and a remove followed by a new file.
func TestWatchSettingsSurvivesRenameAndRecreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "settings.toml")
	must(t, os.WriteFile(path, []byte("a = 1\n"), 0o600))
	var reloads atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- watchSettings(ctx, path, 50*time.Millisecond, func() { reloads.Add(1) }) }()
	time.Sleep(100 * time.Millisecond)
	waitReloads := func(want int32, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for reloads.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d reloads, want %d", what, reloads.Load(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	steps := []struct {
		what string
		do   func()
	}{
		{"write in place", func() { must(t, os.WriteFile(path, []byte("a = 2\n"), 0o600)) }},
		{"save by rename", func() {
			must(t, os.WriteFile(path+".swp", []byte("a = 3\n"), 0o600))
			must(t, os.Rename(path+".swp", path))
		}},
		{"remove and recreate", func() {
			must(t, os.Remove(path))
			time.Sleep(100 * time.Millisecond)
			must(t, os.WriteFile(path, []byte("a = 4\n"), 0o600))
		}},
		{"a burst of writes is one reload", func() {
			for i := 0; i < 10; i++ {
				must(t, os.WriteFile(path, []byte("a = 5"+strings.Repeat(" ", i)+"\n"), 0o600))
			}
		}},
	}
	for i, s := range steps {
		s.do()
		waitReloads(int32(i+1), s.what)
	}
	time.Sleep(200 * time.Millisecond)
	// The burst of ten writes must have been debounced (on a loaded machine
	// it may split in two, never in ten).
	got := reloads.Load()
	if got > int32(len(steps))+1 {
		t.Errorf("%d reloads for %d changes: the burst was not debounced", got, len(steps))
	}
	must(t, os.WriteFile(filepath.Join(dir, "other.toml"), []byte("x"), 0o600))
	time.Sleep(200 * time.Millisecond)
	if reloads.Load() != got {
		t.Errorf("a write to another file in the directory reloaded the settings")
	}
	cancel()
	must(t, <-done)
}

// TestHousekeepingPrunesAndAlarms: delivered messages older than the
// retention go, dead letters stay; a backlog past the threshold raises one
// alarm (repeated only after alarmRepeat) and its end is logged.
func TestHousekeepingPrunesAndAlarms(t *testing.T) {
	ctx := context.Background()
	ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
	must(t, err)
	defer ob.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []int64
	must(t, ob.Update(ctx, func(tx *outbox.Tx) error {
		for i, code := range []string{"A", "B", "C", "D"} {
			id, err := tx.AddMessage(ctx, outbox.NewMessage{DeliveryID: "d-" + code, Body: []byte("{}"),
				Items: []outbox.MessageItem{{Code: code, Version: int64(i + 1), Op: "upsert"}}}, t0)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	}))
	must(t, ob.MarkDelivered(ctx, ids[0], 200, t0))
	must(t, ob.MarkDead(ctx, ids[1], 422, "bad", t0))

	var logBuf lockedBuffer
	now := t0.Add(8 * 24 * time.Hour)
	d := &daemon{
		cfg:    &Config{Outbox: OutboxConfig{Retention: 7 * 24 * time.Hour, AlarmPending: 1, AlarmAge: time.Hour}},
		logger: slog.New(slog.NewTextHandler(&logBuf, nil)),
		now:    func() time.Time { return now },
	}
	alarmed := d.housekeep(ctx, ob, time.Time{})
	st, err := ob.Stats(ctx)
	must(t, err)
	if st.Delivered != 0 || st.Dead != 1 || st.Pending != 2 {
		t.Fatalf("after pruning: %+v, want 0 delivered, 1 dead, 2 pending", st)
	}
	if alarmed.IsZero() || strings.Count(logBuf.String(), "backlog alarm") != 1 {
		t.Fatalf("no alarm for 2 pending over a threshold of 1:\n%s", logBuf.String())
	}
	now = now.Add(time.Minute)
	alarmed = d.housekeep(ctx, ob, alarmed)
	if strings.Count(logBuf.String(), "backlog alarm") != 1 {
		t.Error("the alarm repeated within alarmRepeat")
	}
	now = now.Add(alarmRepeat)
	alarmed = d.housekeep(ctx, ob, alarmed)
	if strings.Count(logBuf.String(), "backlog alarm") != 2 {
		t.Error("a persisting alarm was not repeated after alarmRepeat")
	}
	must(t, ob.MarkDelivered(ctx, ids[2], 200, now))
	must(t, ob.MarkDelivered(ctx, ids[3], 200, now))
	if alarmed = d.housekeep(ctx, ob, alarmed); !alarmed.IsZero() || !strings.Contains(logBuf.String(), "back to normal") {
		t.Errorf("the end of the backlog was not logged:\n%s", logBuf.String())
	}
}

func waitLog(t *testing.T, e *e2e, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(e.log(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the sync log", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunBinaryNotifiesSystemd: under systemd (Type=notify, WatchdogSec) the
// daemon says READY=1 once the database and outbox are open, feeds the
// watchdog, brackets a reload with RELOADING=1/READY=1 and says STOPPING=1.
func TestRunBinaryNotifiesSystemd(t *testing.T) {
	e := newE2E(t, e2eOptions{items: 5})
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	must(t, err)
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	cmd := exec.Command(binPath, "run", "--config", e.cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	must(t, cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	expect := func(prefix string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.HasPrefix(m, prefix) {
					return
				}
			case <-deadline:
				t.Fatalf("no %s from the daemon on $NOTIFY_SOCKET", prefix)
			}
		}
	}
	expect("READY=1")
	e.waitCount(5)
	expect("WATCHDOG=1")
	expect("WATCHDOG=1")
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	expect("RELOADING=1")
	expect("READY=1")
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	expect("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// TestRunBinaryServesMetrics: metrics.listen serves Prometheus metrics on
// loopback while the daemon runs.
func TestRunBinaryServesMetrics(t *testing.T) {
	const n = 6
	e := newE2E(t, e2eOptions{items: n})
	b, err := os.ReadFile(e.cfgPath)
	must(t, err)
	must(t, os.WriteFile(e.cfgPath, append(b, []byte("\n[metrics]\nlisten = \"127.0.0.1:0\"\n")...), 0o600))
	cmd := exec.Command(binPath, "run", "--config", e.cfgPath)
	must(t, cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	e.waitCount(n)
	waitLog(t, e, "serving Prometheus metrics")
	var url string
	for _, line := range strings.Split(e.log(), "\n") {
		if i := strings.Index(line, "url=http://"); i >= 0 && strings.Contains(line, "Prometheus") {
			url = strings.Fields(line[i+4:])[0]
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text := string(body)
		wants := []string{
			`erpsync_items_queued_total{site="default",source="snapshot"} 6`,
			`erpsync_backlog_messages{site="default"} 0`,
			`erpsync_deliveries_total{site="default",outcome="delivered"}`,
			`erpsync_last_success_timestamp_seconds{site="default"}`,
			`erpsync_build_info{version=`,
		}
		missing := ""
		for _, w := range wants {
			if !strings.Contains(text, w) {
				missing = w
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %s:\n%s", missing, text)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
