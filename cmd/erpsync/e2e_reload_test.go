package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/signer"
)

// TestRunBinarySignals: SIGHUP reopens the log file after logrotate moved it
// and reloads the settings; SIGUSR1 starts a reconciliation.
func TestRunBinarySignals(t *testing.T) {
	ctx := context.Background()
	const n = 10
	e := sitetest.New(t, sitetest.Options{Items: n})
	cmd := exec.Command(erpsyncBinary(t), "run", "--config", e.CfgPath)
	var stderr sitetest.LockedBuffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	e.WaitCount(n)

	must(t, os.Rename(e.LogPath, e.LogPath+".1"))
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	e.WaitLog(t, "settings reloaded: nothing changed")

	must(t, e.Site.RawPriceUpdate(ctx, "ITEM-00003", "Wholesale", "3.030000000"))
	must(t, cmd.Process.Signal(syscall.SIGUSR1))
	e.Wait(t, "reconciliation after SIGUSR1", func(items map[string]receiver.Entry) bool {
		return sitetest.Price(items["ITEM-00003"], "Wholesale") == json.Number("3.03")
	})
	e.WaitLog(t, "reconciliation done")

	// Saving the settings file reloads it without a signal.
	e.RewriteSettings(t, `level = "debug"`, `level = "info"`)
	e.WaitLog(t, "applied=log.level")
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
}

// TestRunBinaryNotifiesSystemd: under systemd (Type=notify, WatchdogSec) the
// daemon says READY=1 once the database and outbox are open, feeds the
// watchdog, brackets a reload with RELOADING=1/READY=1 and says STOPPING=1.
func TestRunBinaryNotifiesSystemd(t *testing.T) {
	e := sitetest.New(t, sitetest.Options{Items: 5})
	sock, msgs := notifySocket(t)
	cmd := exec.Command(erpsyncBinary(t), "run", "--config", e.CfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	must(t, cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	expect := func(prefix string) {
		t.Helper()
		expectNotify(t, msgs, prefix)
	}
	expect("READY=1")
	e.WaitCount(5)
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
	e := sitetest.New(t, sitetest.Options{Items: n})
	b, err := os.ReadFile(e.CfgPath)
	must(t, err)
	must(t, os.WriteFile(e.CfgPath, append(b, []byte("\n[metrics]\nlisten = \"127.0.0.1:0\"\n")...), 0o600))
	cmd := exec.Command(erpsyncBinary(t), "run", "--config", e.CfgPath)
	must(t, cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	e.WaitCount(n)
	e.WaitLog(t, "serving Prometheus metrics")
	var url string
	for _, line := range strings.Split(e.Log(), "\n") {
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

// TestRunBinaryRotatesSecretFile: replacing tenant.secret_file, as the
// README's rotation steps do (a new file renamed over the old one), applies
// the new secret without a signal or restart: the deliveries that the old
// secret got refused go through, nothing lost or dead.
func TestRunBinaryRotatesSecretFile(t *testing.T) {
	const n = 10
	e := sitetest.New(t, sitetest.Options{Items: n})
	secretFile := filepath.Join(e.Dir, "secret")
	right, err := os.ReadFile(secretFile)
	must(t, err)
	wrong, err := signer.NewSecret()
	must(t, err)
	must(t, os.WriteFile(secretFile, []byte(wrong+"\n"), 0o600))
	cmd := exec.Command(erpsyncBinary(t), "run", "--config", e.CfgPath)
	var stderr sitetest.LockedBuffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	e.WaitLog(t, "HMAC rejected (401)")

	must(t, os.WriteFile(secretFile+".new", right, 0o600))
	must(t, os.Rename(secretFile+".new", secretFile))
	e.WaitCount(n)
	e.WaitLog(t, "applied=tenant.secret")
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	if st := e.Stats(); st.Dead != 0 || st.Pending != 0 {
		t.Errorf("after the rotation: %d dead, %d pending, want none", st.Dead, st.Pending)
	}
	e.AssertMatchesDatabase()
	for _, out := range []string{e.Log(), stderr.String()} {
		if strings.Contains(out, wrong) || strings.Contains(out, strings.TrimSpace(string(right))) {
			t.Error("a secret reached the log")
		}
	}
}

// notifySocket listens where a systemd service's $NOTIFY_SOCKET points, and
// returns its path and the messages that arrive.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 1000)
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
	return sock, msgs
}

// expectNotify waits up to 30s for a message that starts with prefix and
// returns it.
func expectNotify(t *testing.T, msgs <-chan string, prefix string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m := <-msgs:
			if strings.HasPrefix(m, prefix) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s from the daemon on $NOTIFY_SOCKET", prefix)
		}
	}
}
