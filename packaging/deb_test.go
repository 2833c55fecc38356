package packaging

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The versions of the packages the tests build: v2 packs the same example
// settings as v1 (an upgrade must not prompt), v3 a changed one (the admin's
// edited settings must be kept).
const (
	v1 = "1.0.0"
	v2 = "1.0.1"
	v3 = "1.0.2"
)

// builds holds the packages built by this test binary, by version, in one
// temporary directory that TestMain removes.
type builds struct {
	dir  string
	debs map[string]string
}

var built builds

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "erpsync-deb-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	built = builds{dir: dir, debs: map[string]string{}}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the module root, one level above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "Makefile")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// debArch is the Debian architecture of this machine, the one the tests
// build for; "" when `make deb` does not build for it.
func debArch() string {
	switch runtime.GOARCH {
	case "amd64", "arm64":
		return runtime.GOARCH
	}
	return ""
}

// deb builds the package of version with `make deb` (once per version) and
// returns its path. The v3 package packs the example settings with a line
// added, as a release that documents a new key would.
func deb(t *testing.T, version string) string {
	t.Helper()
	if p, ok := built.debs[version]; ok {
		return p
	}
	if debArch() == "" {
		t.Skipf("make deb builds amd64 and arm64 packages, not %s", runtime.GOARCH)
	}
	for _, tool := range []string{"make", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make test-deps installs dpkg)", tool)
		}
	}
	root := repoRoot(t)
	settings := filepath.Join(root, "settings.toml")
	if version == v3 {
		b, err := os.ReadFile(settings)
		if err != nil {
			t.Fatal(err)
		}
		settings = filepath.Join(built.dir, "settings-"+version+".toml")
		if err := os.WriteFile(settings, append(b, "\n# A later release documents a new key here.\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dist := filepath.Join(built.dir, version)
	cmd := exec.Command("make", "-s", "-C", root, "deb", "DIST="+dist, "DEB_ARCHES="+debArch(),
		"DEB_VERSION="+version, "DEB_SETTINGS="+settings)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make deb DEB_VERSION=%s: %v\n%s", version, err, out)
	}
	p := filepath.Join(dist, fmt.Sprintf("erpsync_%s_%s.deb", version, debArch()))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("make deb did not write %s: %v", p, err)
	}
	built.debs[version] = p
	return p
}

// entry is one file of the package's data archive.
type entry struct {
	mode         os.FileMode
	owner, group string
	body         []byte
}

// contents reads the package's data archive with dpkg-deb.
func contents(t *testing.T, pkg string) map[string]entry {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "--fsys-tarfile", pkg).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile %s: %v", pkg, err)
	}
	files := map[string]entry{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read the data archive of %s: %v", pkg, err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s in %s: %v", h.Name, pkg, err)
		}
		name := "/" + strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		files[name] = entry{mode: h.FileInfo().Mode(), owner: h.Uname, group: h.Gname, body: body}
	}
	return files
}

// field returns a field of the package's control file.
func field(t *testing.T, pkg, name string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "--field", pkg, name).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --field %s %s: %v", pkg, name, err)
	}
	return strings.TrimSpace(string(out))
}

// TestDebPackage checks what `make deb` packs: the files, their modes and
// owners, the conffiles, the control fields, a static binary of the right
// architecture, the unit pointing at /usr/bin, and a copyright file that names
// every Go module the binary embeds.
func TestDebPackage(t *testing.T) {
	pkg := deb(t, v1)
	root := repoRoot(t)
	files := contents(t, pkg)
	want := []struct {
		path         string
		mode         os.FileMode
		owner, group string
	}{
		{"/usr/bin/erpsync", 0o755, "root", "root"},
		{"/usr/lib/systemd/system/erpsync.service", 0o644, "root", "root"},
		{"/etc/logrotate.d/erpsync", 0o644, "root", "root"},
		{"/etc/erpsync", 0o750 | os.ModeDir, "root", "erpsync"},
		{"/etc/erpsync/settings.toml", 0o640, "root", "erpsync"},
		{"/usr/share/doc/erpsync/copyright", 0o644, "root", "root"},
		{"/usr/share/doc/erpsync/changelog.gz", 0o644, "root", "root"},
		{"/usr/share/man/man1/erpsync.1.gz", 0o644, "root", "root"},
		{"/usr/share/lintian/overrides/erpsync", 0o644, "root", "root"},
		{"/usr/share/doc/erpsync/examples/prometheus/erpsync.rules.yml", 0o644, "root", "root"},
		{"/usr/share/doc/erpsync/examples/grafana/erpsync.json", 0o644, "root", "root"},
	}
	for _, w := range want {
		e, ok := files[w.path]
		switch {
		case !ok:
			t.Errorf("the package lacks %s", w.path)
		case e.mode != w.mode || e.owner != w.owner || e.group != w.group:
			t.Errorf("%s: %v %s:%s, want %v %s:%s", w.path, e.mode, e.owner, e.group, w.mode, w.owner, w.group)
		}
	}
	// The maintainer scripts make these, owned by the erpsync user.
	for _, p := range []string{"/var/lib/erpsync", "/var/log/erpsync"} {
		if _, ok := files[p]; ok {
			t.Errorf("the package ships %s: postinst makes it, owned by erpsync", p)
		}
	}

	example, err := os.ReadFile(filepath.Join(root, "settings.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files["/etc/erpsync/settings.toml"].body, example) {
		t.Error("/etc/erpsync/settings.toml is not the repository's settings.toml")
	}
	unit := string(files["/usr/lib/systemd/system/erpsync.service"].body)
	if !strings.Contains(unit, "\nExecStart=/usr/bin/erpsync run --config /etc/erpsync/settings.toml\n") || strings.Contains(unit, "/usr/local") {
		t.Errorf("the unit does not run /usr/bin/erpsync:\n%s", unit)
	}

	conffiles := strings.Fields(controlFile(t, pkg, "conffiles"))
	for name := range files {
		if strings.HasPrefix(name, "/etc/") && files[name].mode.IsRegular() && !contains(conffiles, name) {
			t.Errorf("%s is not a conffile (conffiles: %v)", name, conffiles)
		}
	}
	for _, c := range conffiles {
		if _, ok := files[c]; !ok {
			t.Errorf("conffile %s is not in the package", c)
		}
	}

	for name, w := range map[string]string{"Package": "erpsync", "Version": v1, "Architecture": debArch(), "Pre-Depends": "adduser"} {
		if got := field(t, pkg, name); got != w {
			t.Errorf("%s: %q, want %q", name, got, w)
		}
	}

	bin := files["/usr/bin/erpsync"].body
	checkStatic(t, bin)
	checkCopyright(t, bin, string(files["/usr/share/doc/erpsync/copyright"].body))
}

// controlFile returns a file of the package's control archive.
func controlFile(t *testing.T, pkg, name string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "--info", pkg, name).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --info %s %s: %v", pkg, name, err)
	}
	return string(out)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkStatic fails unless bin is a static ELF executable for debArch.
func checkStatic(t *testing.T, bin []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("/usr/bin/erpsync is not an ELF file: %v", err)
	}
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[debArch()]
	if f.Machine != machine {
		t.Errorf("/usr/bin/erpsync is for %v, want %v", f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("/usr/bin/erpsync is dynamically linked (PT_INTERP): build it with CGO_ENABLED=0")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("/usr/bin/erpsync needs shared libraries %v", libs)
	}
}

// checkCopyright fails for each Go module embedded in bin that the copyright
// file does not name.
func checkCopyright(t *testing.T, bin []byte, copyright string) {
	t.Helper()
	info, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("read the build information of /usr/bin/erpsync: %v", err)
	}
	names := strings.Fields(copyright)
	for _, d := range info.Deps {
		if !contains(names, d.Path) {
			t.Errorf("/usr/bin/erpsync embeds %s %s, which packaging/copyright does not list (add its copyright and license)", d.Path, d.Version)
		}
	}
}

// TestDebLintian runs lintian on the package: errors and warnings fail, each
// tag the package cannot avoid is overridden in packaging/lintian-overrides
// with the reason.
func TestDebLintian(t *testing.T) {
	pkg := deb(t, v1)
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Fatal("lintian is not installed: apt-get install lintian (make test-deps installs it)")
	}
	out, err := exec.Command("lintian", "--display-info", "--pedantic", "--fail-on", "error,warning", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("lintian %s: %v\n%s", filepath.Base(pkg), err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "running with root privileges") {
			t.Logf("lintian: %s", line)
		}
	}
}
