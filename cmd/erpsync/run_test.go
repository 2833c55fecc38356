package main

import (
	"bufio"
	"context"
	"encoding/json"
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
	"github.com/orderweave/erpsync/internal/sitetest"
)

// TestRunBinarySIGTERM runs `erpsync run` and `erpsync receive` as processes,
// as users do: every request is verified by `erpsync receive`, and SIGTERM
// stops the daemon cleanly.
func TestRunBinarySIGTERM(t *testing.T) {
	const n = 25
	e := sitetest.New(t, sitetest.Options{Items: n})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	l.Close()
	recv := exec.Command(erpsyncBinary(t), "receive", "--listen", addr, "--tenant", sitetest.Tenant+"=@"+filepath.Join(e.Dir, "secret"))
	recvOut, err := recv.StdoutPipe()
	must(t, err)
	var recvErr sitetest.LockedBuffer
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
	cfg, err := os.ReadFile(e.CfgPath)
	must(t, err)
	must(t, os.WriteFile(e.CfgPath, []byte(strings.Replace(string(cfg), e.URL, "http://"+addr+"/ingest", 1)), 0o600))

	cmd := exec.Command(erpsyncBinary(t), "run", "--config", e.CfgPath)
	var stderr sitetest.LockedBuffer
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
	must(t, e.Site.SetPrice(context.Background(), "ITEM-00002", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "2.02"}))
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
	for _, out := range []string{e.Log(), stderr.String()} {
		if !strings.Contains(out, "HMAC accepted") || !strings.Contains(out, "erpsync stopped") {
			t.Errorf("log output lacks HMAC accepted / erpsync stopped:\n%.2000s", out)
		}
		if strings.Contains(out, e.Secret) {
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
	cmd := exec.Command(erpsyncBinary(t), "run", "--config", path)
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

// TestSecondRunOnOneOutboxRefuses: a second `erpsync run` on the outbox a
// running one delivers from exits with an error that says so and how to fix
// it; the first goes on.
func TestSecondRunOnOneOutboxRefuses(t *testing.T) {
	const n = 5
	e := sitetest.New(t, sitetest.Options{Items: n})
	first := exec.Command(erpsyncBinary(t), "run", "--config", e.CfgPath)
	must(t, first.Start())
	defer func() { first.Process.Signal(syscall.SIGTERM); first.Wait() }()
	e.WaitCount(n)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, erpsyncBinary(t), "run", "--config", e.CfgPath)
	out, err := second.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the second erpsync run did not exit within 30 s:\n%s", out)
	}
	if err == nil || !strings.Contains(string(out), "another erpsync run is using outbox") || !strings.Contains(string(out), "systemctl stop erpsync") {
		t.Fatalf("second erpsync run: %v, want an exit with the reason and the fix:\n%s", err, out)
	}
	must(t, e.Site.SetPrice(context.Background(), "ITEM-00001", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "5.55"}))
	e.Wait(t, "the first run's next delivery", func(items map[string]receiver.Entry) bool {
		return sitetest.Price(items["ITEM-00001"], "Wholesale") == json.Number("5.55")
	})
}
