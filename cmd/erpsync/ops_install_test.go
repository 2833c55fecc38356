package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	must(t, err)
	if _, err := os.Stat(filepath.Join(dir, "Makefile")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestOpsMakeInstall stages `make install` in a DESTDIR: files and modes,
// settings never overwritten, next steps printed, uninstall keeps settings.
func TestOpsMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	root := repoRoot(t)
	dest := t.TempDir()
	run := func(target string) string {
		t.Helper()
		cmd := exec.Command("make", "-s", "-C", root, target, "DESTDIR="+dest)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	out := run("install")
	files := []struct {
		path string
		mode os.FileMode
	}{
		{"usr/local/bin/erpsync", 0o755},
		{"etc/systemd/system/erpsync.service", 0o644},
		{"etc/logrotate.d/erpsync", 0o644},
		{"etc/erpsync", 0o750 | os.ModeDir},
		{"etc/erpsync/settings.toml", 0o640},
	}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dest, f.path))
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, got, f.mode)
		}
	}
	for _, w := range []string{"Next steps", "erpsync keygen", "erpsync check", "systemctl enable --now erpsync"} {
		if !strings.Contains(out, w) {
			t.Errorf("install output lacks %q:\n%s", w, out)
		}
	}
	settings := filepath.Join(dest, "etc/erpsync/settings.toml")
	must(t, os.WriteFile(settings, []byte("# mine\n"), 0o640))
	if out := run("install"); !strings.Contains(out, "kept the existing") {
		t.Errorf("second install does not say it kept the settings:\n%s", out)
	}
	if b, _ := os.ReadFile(settings); string(b) != "# mine\n" {
		t.Errorf("install overwrote the settings: %q", b)
	}
	installed := exec.Command(filepath.Join(dest, "usr/local/bin/erpsync"), "help", "check")
	if out, err := installed.CombinedOutput(); err != nil || !strings.Contains(string(out), "usage: erpsync check") {
		t.Errorf("installed binary: %v\n%s", err, out)
	}

	out = run("uninstall")
	for _, f := range files[:3] {
		if _, err := os.Stat(filepath.Join(dest, f.path)); !os.IsNotExist(err) {
			t.Errorf("uninstall left %s", f.path)
		}
	}
	if _, err := os.Stat(settings); err != nil || !strings.Contains(out, "Kept") {
		t.Errorf("uninstall removed the settings (%v) or did not say so:\n%s", err, out)
	}
}

// TestOpsUnitFile verifies the unit with systemd-analyze: verify is clean
// and security rates it OK or better.
func TestOpsUnitFile(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd)")
	}
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "systemd/erpsync.service"))
	must(t, err)
	unit := string(b)
	for _, w := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "User=erpsync", "StateDirectory=erpsync",
		"LogsDirectory=erpsync", "ConfigurationDirectory=erpsync", "ExecReload=", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"PrivateTmp=yes", "RestrictAddressFamilies=", "SystemCallFilter=@system-service"} {
		if !strings.Contains(unit, w) {
			t.Errorf("unit lacks %s", w)
		}
	}
	// A credential is copied once at start: a rotated secret would not
	// apply on reload. The daemon reads tenant.secret_file itself.
	for _, line := range strings.Split(unit, "\n") {
		if strings.HasPrefix(line, "LoadCredential") || strings.HasPrefix(line, "SetCredential") || strings.Contains(line, "ERPSYNC_TENANT_SECRET") {
			t.Errorf("unit line %q freezes the secret at start: a reload could not rotate it", line)
		}
	}
	// verify needs ExecStart to exist: point it at the test binary.
	path := filepath.Join(t.TempDir(), "erpsync.service")
	must(t, os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/erpsync", erpsyncBinary(t))), 0o644))
	if out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for erpsync\.service: ([0-9.]+) (\w+)`).FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if m[2] != "OK" && m[2] != "SAFE" {
		t.Errorf("exposure %s %s, want OK or SAFE", m[1], m[2])
	}
	t.Logf("systemd-analyze security: %s %s", m[1], m[2])
}
