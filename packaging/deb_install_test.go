package packaging

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Paths the package and its maintainer scripts own on the system.
const (
	settingsPath = "/etc/erpsync/settings.toml"
	secretPath   = "/etc/erpsync/secret"
	unitPath     = "/usr/lib/systemd/system/erpsync.service"
	wantsLink    = "/etc/systemd/system/multi-user.target.wants/erpsync.service"
	maskLink     = "/etc/systemd/system/erpsync.service"
	outboxPath   = "/var/lib/erpsync/outbox.db"
	syncLogPath  = "/var/log/erpsync/sync.log"
)

// TestDebInstallUpgradeRemove installs the package into this machine with
// dpkg, as an admin would, and follows it through an upgrade that keeps the
// admin's settings, `dpkg -r` and `dpkg -P`. It needs root and dpkg, and
// refuses to touch a machine where erpsync is already installed; it purges
// the package at the end.
//
// Run it alone, not beside cmd/erpsync's tests (make test runs this package
// after the others): while the erpsync user exists, `erpsync check` run as
// root judges files for that user, which the check tests do not expect.
func TestDebInstallUpgradeRemove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installs the package into this machine with dpkg: run as root (CI does)")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg is not installed: not a Debian machine")
	}
	refuseInstalled(t)
	first, same, changed := deb(t, v1), deb(t, v2), deb(t, v3)
	t.Cleanup(func() {
		if out, err := dpkg("--purge", "erpsync"); err != nil {
			t.Errorf("dpkg --purge erpsync at the end: %v\n%s", err, out)
		}
	})

	// A first install leaves the example settings in place and does not
	// enable a service that would fail to start in a loop.
	out := mustDpkg(t, "--install", first)
	for _, w := range []string{"still the", "sudoedit /etc/erpsync/settings.toml", "erpsync keygen", "sudo erpsync check", "systemctl enable --now erpsync"} {
		if !strings.Contains(out, w) {
			t.Errorf("the first install does not say %q:\n%s", w, out)
		}
	}
	checkInstalled(t, v1)
	if isLink(wantsLink) {
		t.Error("the first install enabled erpsync.service while the settings are the example")
	}
	verifyUnit(t)

	// The admin configures it.
	configured := editSettings(t)
	writeFile(t, secretPath, "admin's secret\n", 0o640)
	writeFile(t, outboxPath, "outbox\n", 0o600)
	writeFile(t, syncLogPath, "log\n", 0o640)

	// An upgrade whose example settings did not change: no prompt (dpkg's
	// stdin is /dev/null and no --force-conf* is given), the admin's
	// settings stay, and a service the admin did not enable stays off.
	out = mustDpkg(t, "--install", same)
	if strings.Contains(out, "still the") {
		t.Errorf("the upgrade takes the admin's settings for the example:\n%s", out)
	}
	checkInstalled(t, v2)
	checkKept(t, configured)
	if isLink(wantsLink) {
		t.Error("the upgrade enabled erpsync.service, which the admin had not enabled")
	}

	// The admin enables it (systemctl enable, as systemd would link it); an
	// upgrade whose example settings changed keeps the admin's, puts the new
	// example beside them, and keeps the service enabled.
	if err := os.MkdirAll(filepath.Dir(wantsLink), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(unitPath, wantsLink); err != nil {
		t.Fatal(err)
	}
	mustDpkg(t, "--force-confold", "--install", changed)
	checkInstalled(t, v3)
	checkKept(t, configured)
	if _, err := os.Stat(settingsPath + ".dpkg-dist"); err != nil {
		t.Errorf("the new example settings are not beside the admin's: %v", err)
	}
	if !isLink(wantsLink) {
		t.Error("the upgrade disabled erpsync.service")
	}

	// dpkg -r keeps the settings, the secret, the outbox, the logs and the
	// user; the unit is masked so that the enable link left for a reinstall
	// points nowhere.
	mustDpkg(t, "--remove", "erpsync")
	for _, p := range []string{"/usr/bin/erpsync", unitPath} {
		if exists(p) {
			t.Errorf("dpkg -r left %s", p)
		}
	}
	for _, p := range []string{settingsPath, secretPath, outboxPath, syncLogPath, "/etc/logrotate.d/erpsync"} {
		if !exists(p) {
			t.Errorf("dpkg -r removed %s", p)
		}
	}
	checkKept(t, configured)
	if _, err := user.Lookup("erpsync"); err != nil {
		t.Errorf("dpkg -r removed the erpsync user: %v", err)
	}
	if target, _ := os.Readlink(maskLink); target != "/dev/null" {
		t.Errorf("dpkg -r did not mask erpsync.service (%s -> %q)", maskLink, target)
	}
	if got := status(t); got != "deinstall ok config-files" {
		t.Errorf("after dpkg -r: status %q, want deinstall ok config-files", got)
	}

	// dpkg -P removes everything, the user and group too.
	mustDpkg(t, "--purge", "erpsync")
	checkPurged(t)

	// An install onto settings the admin wrote beforehand (configuration
	// management) enables the service.
	if err := os.MkdirAll(filepath.Dir(settingsPath), 0o750); err != nil {
		t.Fatal(err)
	}
	writeFile(t, settingsPath, configured, 0o640)
	out = mustDpkg(t, "--force-confold", "--install", first)
	if strings.Contains(out, "still the") {
		t.Errorf("the install takes the admin's settings for the example:\n%s", out)
	}
	if !isLink(wantsLink) {
		t.Error("an install onto configured settings did not enable erpsync.service")
	}
	checkKept(t, configured)
	if mode, owner, group, err := ownership("/etc/erpsync"); err != nil || mode != 0o750|os.ModeDir || owner != "root" || group != "erpsync" {
		t.Errorf("/etc/erpsync: %v %s:%s (%v), want 0750 root:erpsync", mode, owner, group, err)
	}
	mustDpkg(t, "--purge", "erpsync")
	checkPurged(t)
}

// refuseInstalled skips the test on a machine that has erpsync: the test
// would replace it and purge its settings, outbox and user.
func refuseInstalled(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("dpkg-query", "--show", "--showformat=${Status}", "erpsync").Output(); err == nil && !strings.Contains(string(out), "not-installed") {
		t.Skipf("the erpsync package is on this machine (%s): the test would replace and purge it", out)
	}
	if _, err := user.Lookup("erpsync"); err == nil {
		t.Skip("the erpsync user exists (make install?): the test would remove it")
	}
	for _, p := range []string{"/etc/erpsync", "/var/lib/erpsync", "/var/log/erpsync"} {
		if exists(p) {
			t.Skipf("%s exists: the test would remove it", p)
		}
	}
}

// dpkg runs dpkg non-interactively (stdin is /dev/null).
func dpkg(args ...string) (string, error) {
	cmd := exec.Command("dpkg", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustDpkg(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dpkg(args...)
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// status is the package's dpkg status.
func status(t *testing.T) string {
	t.Helper()
	out, _ := exec.Command("dpkg-query", "--show", "--showformat=${Status}", "erpsync").Output()
	return strings.TrimSpace(string(out))
}

// checkInstalled checks the installed files, their owners and modes, the
// user, and the version the binary reports.
func checkInstalled(t *testing.T, version string) {
	t.Helper()
	if got := status(t); got != "install ok installed" {
		t.Fatalf("status %q, want install ok installed", got)
	}
	for _, w := range []struct {
		path         string
		mode         os.FileMode
		owner, group string
	}{
		{"/usr/bin/erpsync", 0o755, "root", "root"},
		{unitPath, 0o644, "root", "root"},
		{"/etc/logrotate.d/erpsync", 0o644, "root", "root"},
		{"/etc/erpsync", 0o750 | os.ModeDir, "root", "erpsync"},
		{settingsPath, 0o640, "root", "erpsync"},
		{"/var/lib/erpsync", 0o750 | os.ModeDir, "erpsync", "erpsync"},
		{"/var/log/erpsync", 0o750 | os.ModeDir, "erpsync", "erpsync"},
	} {
		mode, owner, group, err := ownership(w.path)
		if err != nil {
			t.Errorf("%s: %v", w.path, err)
			continue
		}
		if mode != w.mode || owner != w.owner || group != w.group {
			t.Errorf("%s: %v %s:%s, want %v %s:%s", w.path, mode, owner, group, w.mode, w.owner, w.group)
		}
	}
	checkUser(t)
	out, err := exec.Command("/usr/bin/erpsync", "--version").CombinedOutput()
	if got, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); err != nil || got != "erpsync "+version {
		t.Errorf("erpsync --version: %q… (%v), want %q", got, err, "erpsync "+version)
	}
}

// checkUser checks the service user: a system user in its own group, with
// no login, in the group of MariaDB's binary log when there is one.
func checkUser(t *testing.T) {
	t.Helper()
	out, err := exec.Command("getent", "passwd", "erpsync").Output()
	if err != nil {
		t.Fatalf("getent passwd erpsync: %v", err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), ":")
	if len(f) != 7 || f[5] != "/var/lib/erpsync" || f[6] != "/usr/sbin/nologin" {
		t.Errorf("erpsync user %q: want home /var/lib/erpsync, shell /usr/sbin/nologin", out)
	}
	u, err := user.Lookup("erpsync")
	if err != nil {
		t.Fatal(err)
	}
	if g, err := user.LookupGroupId(u.Gid); err != nil || g.Name != "erpsync" {
		t.Errorf("erpsync's group is %v (%v), want erpsync", g, err)
	}
	mysql, err := user.LookupGroup("mysql")
	if err != nil {
		t.Log("no mysql group here: the erpsync user is in no binary log group")
		return
	}
	groups, err := u.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	if !contains(groups, mysql.Gid) {
		t.Errorf("the erpsync user is not in the mysql group (groups %v), so erp.watch cannot read MariaDB's binary log", groups)
	}
}

// verifyUnit runs systemd-analyze verify on the installed unit.
func verifyUnit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze is not installed (apt-get install systemd): the installed unit is not verified")
		return
	}
	if out, err := exec.Command("systemd-analyze", "verify", unitPath).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	}
}

// editSettings makes the settings the admin's: no longer the example.
func editSettings(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(settingsPath)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "erpsync:CHANGE-ME@", "erpsync:admins-password@", 1)
	s = strings.Replace(s, `id = "acme"`, `id = "lighting_co_ke"`, 1)
	if s == string(b) {
		t.Fatal("the example settings have no CHANGE-ME password in erp.dsn to edit")
	}
	if err := os.WriteFile(settingsPath, []byte(s), 0o640); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkKept fails unless the settings are the admin's, with their owner
// and mode.
func checkKept(t *testing.T, configured string) {
	t.Helper()
	b, err := os.ReadFile(settingsPath)
	if err != nil || string(b) != configured {
		t.Errorf("the admin's settings were not kept (%v)", err)
	}
	if mode, owner, group, err := ownership(settingsPath); err != nil || mode != 0o640 || owner != "root" || group != "erpsync" {
		t.Errorf("%s: %v %s:%s (%v), want 0640 root:erpsync", settingsPath, mode, owner, group, err)
	}
}

// checkPurged fails for everything of erpsync's that is left after a purge.
func checkPurged(t *testing.T) {
	t.Helper()
	if got := status(t); got != "" && !strings.Contains(got, "not-installed") {
		t.Errorf("after dpkg -P: status %q", got)
	}
	for _, p := range []string{"/etc/erpsync", "/var/lib/erpsync", "/var/log/erpsync", "/etc/logrotate.d/erpsync",
		"/usr/bin/erpsync", unitPath, wantsLink, maskLink,
		"/var/lib/systemd/deb-systemd-helper-enabled/erpsync.service.dsh-also",
		"/var/lib/systemd/deb-systemd-helper-masked/erpsync.service"} {
		if exists(p) {
			t.Errorf("dpkg -P left %s", p)
		}
	}
	if _, err := user.Lookup("erpsync"); err == nil {
		t.Error("dpkg -P left the erpsync user")
	}
	if _, err := user.LookupGroup("erpsync"); err == nil {
		t.Error("dpkg -P left the erpsync group")
	}
}

// ownership returns path's mode and the names of its owner and group.
func ownership(path string) (os.FileMode, string, string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, "", "", err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fi.Mode() & (os.ModePerm | os.ModeDir), uidName(st.Uid), gidName(st.Gid), nil
}

func uidName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

func gidName(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return id
}

func writeFile(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func isLink(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&os.ModeSymlink != 0
}
