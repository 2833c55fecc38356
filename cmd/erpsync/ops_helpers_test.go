package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/sitetest"
)

// runBinary runs the built erpsync with args and returns its exit code,
// stdout and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, erpsyncBinary(t), args...)
	cmd.Env = append(os.Environ(), "ERPSYNC_CONFIG=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("erpsync %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// editSettings replaces old by new in the e2e settings file.
func editSettings(t *testing.T, e *sitetest.Env, old, new string) {
	t.Helper()
	b, err := os.ReadFile(e.CfgPath)
	must(t, err)
	if !strings.Contains(string(b), old) {
		t.Fatalf("settings do not contain %q", old)
	}
	must(t, os.WriteFile(e.CfgPath, []byte(strings.Replace(string(b), old, new, 1)), 0o600))
}

// assertNoSecrets fails when the tenant secret or the database password
// appears in any of outs.
func assertNoSecrets(t *testing.T, e *sitetest.Env, outs ...string) {
	t.Helper()
	for _, out := range outs {
		for _, secret := range []string{e.Secret, "ro-pass-Secret9"} {
			if strings.Contains(out, secret) {
				t.Errorf("output reveals a secret:\n%s", out)
			}
		}
	}
}

// waitStatus runs `erpsync status --json` until cond holds, up to 60s.
func waitStatus(t *testing.T, e *sitetest.Env, what string, cond func(tenantStatus) bool) tenantStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, out, errOut := runBinary(t, "status", "--config", e.CfgPath, "--json")
		if code != 0 {
			t.Fatalf("status exit %d: %s", code, errOut)
		}
		var st []tenantStatus
		must(t, json.Unmarshal([]byte(out), &st))
		if len(st) != 1 {
			t.Fatalf("status --json: %d tenants, want 1", len(st))
		}
		if cond(st[0]) {
			return st[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s; last status:\n%s", what, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
