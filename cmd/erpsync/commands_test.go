package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/signer"
)

// Secrets that no output may hold: the PROTOCOL.md reference secret (it
// decodes to the ASCII text "erpsync-reference-secret-32bytes", which makes a
// leaked key easy to spot), a DSN password, and secrets of the wrong shape.
const (
	ctRefSecret   = "ZXJwc3luYy1yZWZlcmVuY2Utc2VjcmV0LTMyYnl0ZXM="
	ctRefKeyText  = "erpsync-reference-secret-32bytes"
	ctDSNPassword = "Dsn-Pa55word-xyz"
	ctDSN         = "erpsync:" + ctDSNPassword + "@tcp(127.0.0.1:3306)/_1bd3e0294da19198"
	ctShortSecret = "MTIzNDU2Nzg5MGFiY2RlZg==" // 16 bytes
	ctNotBase64   = "not*base64*but*a*long*enough*secret*value*here"
)

// ctAssertNoSecret fails when text holds one of the secrets above (without
// '=' padding, which also finds them echoed unpadded).
func ctAssertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{strings.TrimRight(ctRefSecret, "="), ctRefKeyText, ctDSNPassword, strings.TrimRight(ctShortSecret, "="), ctNotBase64} {
		if strings.Contains(text, s) {
			t.Errorf("%s contains the secret %q:\n%s", what, s, text)
		}
	}
}

// ctClearEnv removes every ERPSYNC_ variable that the settings read, so the
// tests do not depend on the caller's environment; they come back at the
// end of the test.
func ctClearEnv(t *testing.T) {
	t.Helper()
	names := []string{"ERPSYNC_CONFIG"}
	for _, k := range config.Keys() {
		names = append(names, "ERPSYNC_"+strings.ToUpper(strings.ReplaceAll(k.Name, ".", "_")))
	}
	for _, n := range names {
		t.Setenv(n, "")
		os.Unsetenv(n)
	}
}

// The PROTOCOL.md reference vector.
const (
	cmdtRefBody      = `{"delivery_id":"d-1","items":[{"item_code":"A1","op":"upsert","version":1}],"tenant":"acme"}`
	cmdtRefTimestamp = "1700000000"
	cmdtRefSignature = "A0WAbhX8WXPIJvrXdVxQ2ZePLv0QF9etYJFG/71gLbg="
)

// cmdtSettings writes a valid settings file for tenant acme with the given
// secret line (such as `secret = "…"` or `secret_file = "…"`) and ingest.url.
func cmdtSettings(t *testing.T, secretLine, ingestURL string) string {
	t.Helper()
	dir := t.TempDir()
	content := fmt.Sprintf(`[tenant]
id = "acme"
%s

[ingest]
url = %q

[erp]
dsn = %q

[outbox]
path = %q

[log]
file = "-"
`, secretLine, ingestURL, ctDSN, filepath.Join(dir, "outbox.db"))
	p := filepath.Join(dir, "settings.toml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// cmdtSecretFile writes secret (plus the newline keygen prints) to a file.
func cmdtSecretFile(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeygenCommand(t *testing.T) {
	seen := map[string]bool{}
	for range 2 {
		code, stdout, stderr := runMain(t, "", "keygen")
		if code != 0 || stderr != "" {
			t.Fatalf("keygen: exit %d, stderr %q", code, stderr)
		}
		if strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "\n") {
			t.Fatalf("keygen printed %q, want one line", stdout)
		}
		secret := strings.TrimSuffix(stdout, "\n")
		key, err := base64.StdEncoding.Strict().DecodeString(secret)
		if err != nil || len(key) != 32 {
			t.Fatalf("keygen printed %q: decodes to %d bytes (%v), want 32", secret, len(key), err)
		}
		if _, err := signer.DecodeSecret(stdout); err != nil {
			t.Errorf("settings would refuse the keygen secret: %v", err)
		}
		if seen[secret] {
			t.Fatalf("keygen printed %q twice", secret)
		}
		seen[secret] = true
	}
	if code, _, stderr := runMain(t, "", "keygen", "extra"); code != 2 || !strings.Contains(stderr, "unexpected argument") {
		t.Errorf("keygen extra: exit %d, stderr %q; want 2 and the reason", code, stderr)
	}
}

func TestSignBodyOnly(t *testing.T) {
	ctClearEnv(t)
	// No settings anywhere: --body-only must not look for them.
	t.Setenv("ERPSYNC_CONFIG", filepath.Join(t.TempDir(), "no-such-settings.toml"))
	tests := []struct {
		name, in, want string
	}{
		{"keys sorted and numbers shortest",
			`{"b": 1.0, "a": 2, "c": [1E2, 0.10, -0, 1.5e-7]}`,
			`{"a":2,"b":1,"c":[100,0.1,0,1.5e-7]}`},
		{"no HTML escaping",
			`{"html": "\u003cb\u003eLamp & co\u003c/b\u003e", "raw": "<i>&</i>"}`,
			`{"html":"<b>Lamp & co</b>","raw":"<i>&</i>"}`},
		{"nested objects, whitespace and unicode",
			"\n{ \"z\": {\"y\": true, \"x\": null},\t\"a\": \"caf\\u00e9 é\", \"ctl\": \"\\u000a\" }\n",
			`{"a":"café é","ctl":"\n","z":{"x":null,"y":true}}`},
		{"the reference body, reordered",
			`{"tenant":"acme","items":[{"version":1.0,"op":"upsert","item_code":"A1"}],"delivery_id":"d-1"}`,
			cmdtRefBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, tt.in, "sign", "--body-only")
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if stdout != tt.want {
				t.Errorf("sign --body-only\n got %s\nwant %s", stdout, tt.want)
			}
		})
	}
	for _, bad := range []string{`{"a":1,}`, `{"a":1,"a":2}`, ``, `{"a":1} x`} {
		if code, _, stderr := runMain(t, bad, "sign", "--body-only"); code != 1 || !strings.Contains(stderr, "not valid JSON") {
			t.Errorf("sign --body-only < %q: exit %d, stderr %q; want 1 and \"not valid JSON\"", bad, code, stderr)
		}
	}
}

func TestSignReferenceVector(t *testing.T) {
	ctClearEnv(t)
	inline := cmdtSettings(t, `secret = "`+ctRefSecret+`"`, "https://ingest.example.com/erpnext/items")
	fromFile := cmdtSettings(t, `secret_file = "`+cmdtSecretFile(t, ctRefSecret)+`"`, "https://ingest.example.com/erpnext/items")
	// Not canonical on input; sign canonicalises it to the reference body.
	in := `{"tenant": "acme", "items": [{"version": 1.0, "op": "upsert", "item_code": "A1"}], "delivery_id": "d-1"}`

	for name, args := range map[string][]string{
		"--config, inline secret":      {"sign", "--config", inline, "--timestamp", cmdtRefTimestamp},
		"--config, secret_file":        {"sign", "--config", fromFile, "--timestamp", cmdtRefTimestamp},
		"$ERPSYNC_CONFIG, secret_file": {"sign", "--timestamp", cmdtRefTimestamp},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("ERPSYNC_CONFIG", fromFile)
			code, stdout, stderr := runMain(t, in, args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if stderr != "" {
				t.Errorf("unexpected warnings: %q", stderr)
			}
			for _, want := range []string{
				"printf '%s' '" + cmdtRefBody + "'",
				"curl -sS -X POST 'https://ingest.example.com/erpnext/items'",
				"-H 'Content-Type: application/json'",
				"-H 'User-Agent: erpsync/",
				"-H 'X-Tenant-Id: acme'",
				"-H 'X-OrderWeave-Delivery-Id: d-1'",
				"-H 'X-OrderWeave-Timestamp: " + cmdtRefTimestamp + "'",
				"-H 'X-OrderWeave-Signature: " + cmdtRefSignature + "'",
				"--data-binary @-",
			} {
				if !strings.Contains(stdout, want) {
					t.Errorf("sign output lacks %q:\n%s", want, stdout)
				}
			}
			ctAssertNoSecret(t, "sign output", stdout+stderr)
		})
	}
}

func TestSignErrors(t *testing.T) {
	ctClearEnv(t)
	settings := cmdtSettings(t, `secret = "`+ctRefSecret+`"`, "https://ingest.example.com/erpnext/items")
	missing := filepath.Join(t.TempDir(), "missing.toml")
	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantStderr []string
	}{
		{"no settings", cmdtRefBody, []string{"sign", "--config", missing}, 1, []string{missing, "not found", "--config"}},
		{"tenant differs", strings.Replace(cmdtRefBody, `"tenant":"acme"`, `"tenant":"other"`, 1),
			[]string{"sign", "--config", settings}, 0, []string{"warning", `"other"`, `"acme"`}},
		{"no delivery_id", `{"items":[],"tenant":"acme"}`, []string{"sign", "--config", settings}, 0, []string{"warning", "delivery_id"}},
		{"negative timestamp", cmdtRefBody, []string{"sign", "--config", settings, "--timestamp", "-5"}, 2, []string{"--timestamp"}},
		{"unknown flag", cmdtRefBody, []string{"sign", "--sekret", "x"}, 2, []string{"-sekret", "erpsync help sign"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q: %q", w, stderr)
				}
			}
			if code != 0 && stdout != "" {
				t.Errorf("a failed sign printed on stdout (which may be piped to sh): %q", stdout)
			}
			ctAssertNoSecret(t, "output", stdout+stderr)
		})
	}
}

func TestVerifyCommand(t *testing.T) {
	ctClearEnv(t)
	settings := cmdtSettings(t, `secret = "`+ctRefSecret+`"`, "https://ingest.example.com/erpnext/items")
	key, err := signer.DecodeSecret(ctRefSecret)
	if err != nil {
		t.Fatal(err)
	}
	nowUnix := time.Now().Unix()
	now := strconv.FormatInt(nowUnix, 10)
	nowSig := signer.Sign(key, nowUnix, []byte(cmdtRefBody))

	tests := []struct {
		name       string
		body       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "reference vector, window set aside", body: cmdtRefBody,
			args:     []string{"--timestamp", cmdtRefTimestamp, "--signature", cmdtRefSignature, "--no-window"},
			wantCode: 0, wantStdout: []string{"valid:", "tenant acme", "window not checked"}},
		{name: "reference vector, outside the window", body: cmdtRefBody,
			args:     []string{"--timestamp", cmdtRefTimestamp, "--signature", cmdtRefSignature},
			wantCode: 1, wantStdout: []string{"invalid:", "outside the 5m0s window", "clock"}},
		{name: "signed now, within the window", body: cmdtRefBody,
			args:     []string{"--timestamp", now, "--signature", nowSig},
			wantCode: 0, wantStdout: []string{"valid:", "within the 5m0s window"}},
		{name: "tampered body", body: strings.Replace(cmdtRefBody, `"version":1`, `"version":2`, 1),
			args:     []string{"--timestamp", cmdtRefTimestamp, "--signature", cmdtRefSignature, "--no-window"},
			wantCode: 1, wantStdout: []string{"invalid:", "signature does not match"}},
		{name: "tampered timestamp", body: cmdtRefBody,
			args:     []string{"--timestamp", "1700000001", "--signature", cmdtRefSignature, "--no-window"},
			wantCode: 1, wantStdout: []string{"invalid:", "signature does not match"}},
		{name: "body with a trailing newline (echo)", body: cmdtRefBody + "\n",
			args:     []string{"--timestamp", cmdtRefTimestamp, "--signature", cmdtRefSignature, "--no-window"},
			wantCode: 1, wantStdout: []string{"invalid:", "signature does not match", "trailing newline", "printf"}},
		{name: "signature not base64", body: cmdtRefBody,
			args:     []string{"--timestamp", cmdtRefTimestamp, "--signature", "not-a-signature", "--no-window"},
			wantCode: 1, wantStdout: []string{"invalid:", "signature"}},
		{name: "timestamp not digits", body: cmdtRefBody,
			args:     []string{"--timestamp", "1.7e9", "--signature", cmdtRefSignature, "--no-window"},
			wantCode: 1, wantStdout: []string{"invalid:", "timestamp", "decimal digit"}},
		{name: "missing --signature", body: cmdtRefBody,
			args:     []string{"--timestamp", cmdtRefTimestamp},
			wantCode: 2, wantStderr: []string{"--signature"}},
		{name: "missing --timestamp", body: cmdtRefBody,
			args:     []string{"--signature", cmdtRefSignature},
			wantCode: 2, wantStderr: []string{"--timestamp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"verify", "--config", settings}, tt.args...)
			code, stdout, stderr := runMain(t, tt.body, args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q: %q", w, stdout)
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q: %q", w, stderr)
				}
			}
			ctAssertNoSecret(t, "output", stdout+stderr)
		})
	}
}

func TestReceiveCommandErrors(t *testing.T) {
	ctClearEnv(t)
	short := cmdtSecretFile(t, ctShortSecret)
	missing := filepath.Join(t.TempDir(), "no-secret")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no --tenant", nil, []string{"--tenant"}},
		{"secret 16 bytes", []string{"--tenant", "acme=" + ctShortSecret}, []string{"acme", "16 bytes", "at least 32"}},
		{"secret not base64", []string{"--tenant", "acme=" + ctNotBase64}, []string{"acme", "not valid base64"}},
		{"secret file 16 bytes", []string{"--tenant", "acme=@" + short}, []string{"acme", "16 bytes"}},
		{"secret file missing", []string{"--tenant", "acme=@" + missing}, []string{"acme", missing}},
		{"no secret", []string{"--tenant", "acme"}, []string{"ID=SECRET"}},
		{"tenant twice", []string{"--tenant", "acme=" + ctRefSecret, "--tenant", "acme=" + ctRefSecret}, []string{"acme", "twice"}},
		{"positional argument", []string{"--tenant", "acme=" + ctRefSecret, "extra"}, []string{"unexpected argument"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"receive", "--listen", "127.0.0.1:0"}, tt.args...)
			// Bounded: if receive wrongly accepted the flags it would serve
			// until the context ends.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			code := Main(ctx, args, strings.NewReader(""), &out, &errOut)
			stdout, stderr := out.String(), errOut.String()
			if ctx.Err() != nil {
				t.Fatalf("receive %q started serving instead of refusing the flags (stderr %q)", tt.args, stderr)
			}
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q: %q", w, stderr)
				}
			}
			ctAssertNoSecret(t, "output", stdout+stderr)
		})
	}
}

// cmdtProc is a running erpsync binary with its output collected.
type cmdtProc struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu             sync.Mutex
	stdout, stderr bytes.Buffer
}

type cmdtWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w cmdtWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func cmdtStart(t *testing.T, args ...string) *cmdtProc {
	t.Helper()
	p := &cmdtProc{cmd: exec.Command(erpsyncBinary(t), args...), done: make(chan struct{})}
	p.cmd.Stdout = cmdtWriter{&p.mu, &p.stdout}
	p.cmd.Stderr = cmdtWriter{&p.mu, &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *cmdtProc) output() (stdout, stderr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String(), p.stderr.String()
}

// waitFor waits until stderr (or stdout) contains want.
func (p *cmdtProc) waitFor(t *testing.T, onStdout bool, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		stdout, stderr := p.output()
		text := stderr
		if onStdout {
			text = stdout
		}
		if strings.Contains(text, want) {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("erpsync %s exited (%v) before printing %q\nstdout: %s\nstderr: %s", p.cmd.Args[1], p.cmd.ProcessState, want, stdout, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("erpsync %s did not print %q within 30s\nstdout: %s\nstderr: %s", p.cmd.Args[1], want, stdout, stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func cmdtFreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// cmdtCurl runs the command `erpsync sign` printed with sh, as the sign
// usage suggests, and returns curl's HTTP status and response body.
func cmdtCurl(t *testing.T, signed string) (status int, body string) {
	t.Helper()
	script := strings.TrimRight(signed, "\n") + ` -w '\nHTTP_STATUS=%{http_code}\n'`
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c <signed command>: %v\n%s\nscript:\n%s", err, out, script)
	}
	text := string(out)
	i := strings.LastIndex(text, "\nHTTP_STATUS=")
	if i < 0 {
		t.Fatalf("no HTTP status in curl output %q", text)
	}
	status, err = strconv.Atoi(strings.TrimSpace(text[i+len("\nHTTP_STATUS="):]))
	if err != nil {
		t.Fatalf("curl output %q: %v", text, err)
	}
	return status, text[:i]
}

// TestReceiveCommandBinary runs `erpsync receive` as a process on a real
// port and feeds it with what `erpsync sign` prints, piped to sh and curl.
func TestReceiveCommandBinary(t *testing.T) {
	ctClearEnv(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("this test runs the curl command that `erpsync sign` prints, but curl is not installed (%v): install it (apt-get install curl)", err)
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatalf("sh not found: %v", err)
	}
	_, stdout, _ := runMain(t, "", "keygen")
	secret := strings.TrimSpace(stdout)
	_, stdout, _ = runMain(t, "", "keygen")
	wrongSecret := strings.TrimSpace(stdout)
	secretFile := cmdtSecretFile(t, secret)

	addr := cmdtFreePort(t)
	recv := cmdtStart(t, "receive", "--listen", addr, "--tenant", "acme=@"+secretFile)
	recv.waitFor(t, false, "receiving on http://"+addr)

	url := "http://" + addr + "/erpnext/items"
	settings := cmdtSettings(t, `secret_file = "`+secretFile+`"`, url)
	wrongSettings := cmdtSettings(t, `secret = "`+wrongSecret+`"`, url)

	// A name that needs shell quoting and JSON escaping on its way through.
	const name = `O'Brien "Lamp" \ 50% <b>&`
	body := `{"delivery_id":"d-sh-1","items":[{"item_code":"LAMP-1","item_name":` + strconv.Quote(name) + `,"op":"upsert","version":3}],"tenant":"acme"}`
	wantLine := `accepted tenant=acme delivery=d-sh-1 op=upsert item=LAMP-1 version=3 name=` + strconv.Quote(name) + "\n"

	code, signed, stderr := runMain(t, body, "sign", "--config", settings)
	if code != 0 {
		t.Fatalf("sign: exit %d: %s", code, stderr)
	}
	status, resp := cmdtCurl(t, signed)
	if status != 200 || !strings.Contains(resp, `"status":"accepted"`) {
		t.Fatalf("first delivery: HTTP %d %s, want 200 accepted\ncommand:\n%s", status, resp, signed)
	}
	recv.waitFor(t, true, wantLine)

	// The same command again: the same delivery id, a duplicate.
	status, resp = cmdtCurl(t, signed)
	if status != 200 || !strings.Contains(resp, `"status":"duplicate"`) {
		t.Fatalf("repeated delivery: HTTP %d %s, want 200 duplicate", status, resp)
	}
	recv.waitFor(t, false, "duplicate delivery")
	if out, _ := recv.output(); strings.Count(out, "accepted ") != 1 {
		t.Errorf("receive printed the item %d times, want once:\n%s", strings.Count(out, "accepted "), out)
	}

	// Signed with another secret: 401, answered as for an unknown tenant
	// (the client cannot tell which), and the exact reason on receive's
	// stderr.
	body2 := strings.Replace(body, "d-sh-1", "d-sh-2", 1)
	code, signed, stderr = runMain(t, body2, "sign", "--config", wrongSettings)
	if code != 0 {
		t.Fatalf("sign: exit %d: %s", code, stderr)
	}
	status, resp = cmdtCurl(t, signed)
	if status != 401 || !strings.Contains(resp, `"reason":"unauthorized"`) {
		t.Errorf("wrong secret: HTTP %d %s, want 401 with reason unauthorized", status, resp)
	}
	recv.waitFor(t, false, "reason=signature")
	_, errText := recv.output()
	if !regexp.MustCompile(`(?m)^.*level=WARN msg="request rejected: signature does not match.*reason=signature status=401 tenant=acme delivery_id=d-sh-2`).MatchString(errText) {
		t.Errorf("receive's stderr has no rejection line with the reason:\n%s", errText)
	}

	// SIGTERM: a prompt, clean exit.
	if err := recv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-recv.done:
	case <-time.After(10 * time.Second):
		t.Fatal("erpsync receive did not exit within 10s of SIGTERM")
	}
	outText, errText := recv.output()
	if code := recv.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("erpsync receive exited %d after SIGTERM, want 0\nstderr: %s", code, errText)
	}
	if strings.Count(outText, "accepted ") != 1 {
		t.Errorf("receive's stdout:\n%s\nwant exactly the one accepted line", outText)
	}
	for _, s := range []string{secret, wrongSecret} {
		if strings.Contains(outText+errText+signed, s) {
			t.Errorf("a secret shows in the output of receive or sign")
		}
	}
}

func TestCommandUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{"no command", nil, 2, nil, []string{"Usage:", "Commands:"}},
		{"unknown command", []string{"frobnicate"}, 2, nil, []string{`unknown command "frobnicate"`, "Commands:"}},
		{"help", []string{"help"}, 0, []string{"Usage:", "sign", "verify", "keygen", "receive"}, nil},
		{"--help", []string{"--help"}, 0, []string{"Usage:"}, nil},
		{"help sign", []string{"help", "sign"}, 0, []string{"usage: erpsync sign", "--body-only", "--timestamp"}, nil},
		{"help verify", []string{"help", "verify"}, 0, []string{"usage: erpsync verify", "--no-window"}, nil},
		{"help keygen", []string{"help", "keygen"}, 0, []string{"usage: erpsync keygen"}, nil},
		{"help receive", []string{"help", "receive"}, 0, []string{"usage: erpsync receive", "--tenant"}, nil},
		{"help unknown", []string{"help", "frobnicate"}, 2, nil, []string{`unknown command "frobnicate"`}},
		{"sign -h", []string{"sign", "-h"}, 0, []string{"usage: erpsync sign"}, nil},
		{"sign with a bad flag", []string{"sign", "--bogus"}, 2, nil, []string{"-bogus", "erpsync help sign"}},
		{"verify with a bad flag value", []string{"verify", "--no-window=maybe"}, 2, nil, []string{"no-window", "erpsync help verify"}},
		{"version", []string{"version"}, 0, []string{"erpsync "}, nil},
		{"--version", []string{"--version"}, 0, []string{"erpsync "}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q: %q", w, stdout)
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q: %q", w, stderr)
				}
			}
			if code == 2 && stdout != "" {
				t.Errorf("a usage error printed on stdout (which may be piped to sh): %q", stdout)
			}
		})
	}
}
