package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/signer"
)

// TestValidateReadsNoFile: settings that name files which are not there (or
// not right) pass Validate, which reads no file, and fail Resolve, which
// names the key.
func TestValidateReadsNoFile(t *testing.T) {
	ctClearEnv(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	short := filepath.Join(dir, "short-secret")
	ctWriteFile(t, short, ctShortSecret+"\n")
	badBench := filepath.Join(dir, "bad-bench")
	if err := os.MkdirAll(filepath.Join(badBench, "sites", "shop"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctWriteFile(t, filepath.Join(badBench, "sites", "shop", "site_config.json"), `{"db_name": "db", "db_password": "hunter2"}`)
	// A directory where the bench-wide settings belong: reading it fails.
	if err := os.Mkdir(filepath.Join(badBench, "sites", "common_site_config.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	secretFile := func(path string) map[string]string {
		return map[string]string{"tenant.secret": ctDel, "tenant.secret_file": quoteTOML(path)}
	}
	benchSite := func(bench, site string) map[string]string {
		return map[string]string{"erp.dsn": ctDel, "erp.bench_path": quoteTOML(bench), "erp.site": quoteTOML(site)}
	}
	site := func(name string, over map[string]string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "[[sites]]\nname = %q\n", name)
		for _, sec := range []string{"tenant", "ingest", "erp", "outbox"} {
			fmt.Fprintf(&b, "[sites.%s]\n", sec)
			for k, v := range over {
				if s, key, _ := strings.Cut(k, "."); s == sec && v != ctDel {
					fmt.Fprintf(&b, "%s = %s\n", key, v)
				}
			}
		}
		return b.String()
	}

	tests := []struct {
		name string
		file string
		want []string // in Resolve's error
	}{
		{name: "secret file missing", file: ctTOML(secretFile(missing)),
			want: []string{"tenant.secret_file = " + fmt.Sprintf("%q", missing), "check the path"}},
		{name: "secret file holds a short secret", file: ctTOML(secretFile(short)),
			want: []string{"tenant.secret_file", "16 bytes"}},
		{name: "bench missing", file: ctTOML(benchSite(missing, "shop")),
			want: []string{`erp.site = "shop"`, "not found", "check erp.bench_path"}},
		{name: "bench-wide settings unreadable", file: ctTOML(benchSite(badBench, "shop")),
			want: []string{"erp.bench_path = " + fmt.Sprintf("%q", badBench)}},
		{name: "both, in a site", file: ctTOML(map[string]string{"tenant.secret": ctDel, "erp.dsn": ctDel}) +
			site("a", map[string]string{"tenant.secret_file": quoteTOML(missing), "erp.bench_path": quoteTOML(missing), "erp.site": `"shop"`, "outbox.path": `"/tmp/a.db"`}),
			want: []string{"[[sites]] #1 (a): tenant.secret_file", "[[sites]] #1 (a): erp.site"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(ctWrite(t, "settings.toml", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Errorf("Validate read a file, or found a problem: %v", err)
			}
			err = cfg.Resolve()
			if err == nil {
				t.Fatal("Resolve accepted the settings")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Resolve's error lacks %q:\n%v", w, err)
				}
			}
			ctAssertNoSecret(t, "error", err.Error())
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Resolve's error shows the bench's password:\n%v", err)
			}
		})
	}
}

// TestValidateChangesNothing: Validate decodes nothing into the Config; the
// key is Resolve's to set.
func TestValidateChangesNothing(t *testing.T) {
	ctClearEnv(t)
	cfg, err := Parse(ctWrite(t, "settings.toml", ctTOML(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Sites[0].Key() != nil {
		t.Error("Validate set the key")
	}
	if err := cfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	if string(cfg.Sites[0].Key()) != ctRefKeyText {
		t.Errorf("Resolve: Key() = %q, want the decoded secret", cfg.Sites[0].Key())
	}
}

// TestReadReportsEveryProblemOnce: Read lists what Validate and Resolve find
// together, one problem a line, each once.
func TestReadReportsEveryProblemOnce(t *testing.T) {
	ctClearEnv(t)
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name string
		over map[string]string
		want []string // each line, in any order
	}{
		{name: "a Validate and a Resolve problem",
			over: map[string]string{"tenant.id": ctDel, "tenant.secret": ctDel, "tenant.secret_file": quoteTOML(missing)},
			want: []string{"tenant.id is required", "tenant.secret_file = " + fmt.Sprintf("%q", missing)}},
		{name: "no secret",
			over: map[string]string{"tenant.secret": ctDel},
			want: []string{"tenant.secret or tenant.secret_file is required"}},
		{name: "bad inline secret",
			over: map[string]string{"tenant.secret": quoteTOML(ctShortSecret)},
			want: []string{"tenant.secret: "}},
		{name: "dsn and bench",
			over: map[string]string{"erp.bench_path": quoteTOML(missing), "erp.site": `"shop"`},
			want: []string{"erp.dsn and erp.bench_path/erp.site are both set"}},
		{name: "bench without site",
			over: map[string]string{"erp.dsn": ctDel, "erp.bench_path": quoteTOML(missing)},
			want: []string{"erp.bench_path and erp.site go together"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ctWrite(t, "settings.toml", ctTOML(tt.over))
			_, err := Read(path)
			if err == nil {
				t.Fatal("Read accepted the settings")
			}
			msg := strings.TrimPrefix(err.Error(), "settings "+path+": ")
			if msg == err.Error() {
				t.Errorf("the error does not start with \"settings %s: \":\n%v", path, err)
			}
			lines := strings.Split(msg, "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("%d lines, want %d:\n%s", len(lines), len(tt.want), msg)
			}
			for _, w := range tt.want {
				if n := strings.Count(msg, w); n != 1 {
					t.Errorf("%q is in the error %d times, want once:\n%s", w, n, msg)
				}
			}
			ctAssertNoSecret(t, "error", msg)
		})
	}
}

func TestSitesSettingsErrors(t *testing.T) {
	ctClearEnv(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	key, err := signer.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	ctWriteFile(t, secret, key)
	base := func(name, outbox string) string {
		return fmt.Sprintf("\n[[sites]]\nname = %q\n[sites.tenant]\nid = \"t\"\nsecret_file = %q\n[sites.ingest]\nurl = \"https://x.example/in\"\n[sites.erp]\ndsn = \"u:p@tcp(127.0.0.1:3306)/db\"\n[sites.outbox]\npath = %q\n", name, secret, outbox)
	}
	tests := []struct{ name, file, want string }{
		{"shared outbox", base("a", "/tmp/x.db") + base("b", "/tmp/x.db"), "[[sites]] #2 (b): outbox.path \"/tmp/x.db\" is also used by site a"},
		{"log inside a site", base("a", "/tmp/a.db") + "[sites.log]\nlevel = \"debug\"\n", "a site holds only"},
		{"bad key in a site", base("a", "/tmp/a.db") + strings.Replace(base("b", "/tmp/b.db"), "[sites.ingest]\n", "[sites.ingest]\nurll = \"x\"\n", 1), "[[sites]] #2: unknown key ingest.urll"},
		{"a site's own error", strings.Replace(base("a", "/tmp/a.db"), `url = "https://x.example/in"`, `url = "http://x.example/in"`, 1), "#1 (a): ingest.url"},
		{"unnamed site", strings.Replace(base("", "/tmp/a.db"), "[sites.tenant]\nid = \"t\"\n", "[sites.tenant]\n", 1), "[[sites]] #1 (site1): tenant.id is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".toml")
			ctWriteFile(t, p, tc.file)
			_, err := Read(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	p := filepath.Join(dir, "ok.toml")
	ctWriteFile(t, p, "[erp]\npoll_interval = \"3s\"\n"+base("a", "/tmp/a.db")+base("b", "/tmp/b.db"))
	cfg, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sites) != 2 || cfg.Sites[1].Name != "b" || cfg.Sites[1].ERP.PollInterval != 3*time.Second || len(cfg.Sites[0].Tenant.Key()) != 32 {
		t.Fatalf("parsed sites wrong: %d sites, second %+v", len(cfg.Sites), cfg.Sites[1].ERP)
	}
	if cfg.Sites[0].Path != p || cfg.Site("b") != cfg.Sites[1] || cfg.Site("") != nil || cfg.Site("c") != nil {
		t.Errorf("Path %q, Site(\"b\") %p (want %p), Site(\"\") %p", cfg.Sites[0].Path, cfg.Site("b"), cfg.Sites[1], cfg.Site(""))
	}
	if cfg.Sites[0].Label() != "a" {
		t.Errorf("Label() = %q, want the name", cfg.Sites[0].Label())
	}
	if got := (&Site{}).Label(); got != "default" {
		t.Errorf("Label() of an unnamed site = %q, want \"default\"", got)
	}
}
