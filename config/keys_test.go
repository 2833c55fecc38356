package config

import (
	"bufio"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKeysCoverDefaults: every key of defaults() is in Keys() exactly once,
// with exactly one accessor (site keys in a Site, log and metrics keys in a
// Config), and no two keys read the same field.
func TestKeysCoverDefaults(t *testing.T) {
	defs := defaults()
	count := map[string]int{}
	fields := map[uintptr]string{} // field address in s or c → key
	var s Site
	var c Config
	for _, k := range Keys() {
		count[k.Name]++
		if _, ok := defs[k.Name]; !ok {
			t.Errorf("Keys() has %s, which defaults() does not know", k.Name)
		}
		fileKey := strings.HasPrefix(k.Name, "log.") || strings.HasPrefix(k.Name, "metrics.")
		var p any
		switch {
		case (k.site == nil) == (k.file == nil):
			t.Errorf("%s: want exactly one of a site and a file accessor", k.Name)
			continue
		case fileKey && k.file == nil, !fileKey && k.site == nil:
			t.Errorf("%s: a log or metrics key is read from the Config, any other from the Site", k.Name)
			continue
		case k.site != nil:
			p = k.site(&s)
		default:
			p = k.file(&c)
		}
		v := reflect.ValueOf(p)
		if v.Kind() != reflect.Pointer || v.IsNil() {
			t.Errorf("%s: the accessor returns %T, want a pointer to the field", k.Name, p)
			continue
		}
		if prev, ok := fields[v.Pointer()]; ok {
			t.Errorf("%s and %s read the same field", prev, k.Name)
		}
		fields[v.Pointer()] = k.Name
	}
	for k := range defs {
		if count[k] != 1 {
			t.Errorf("key %s is in Keys() %d times, want once", k, count[k])
		}
	}
	if len(Keys()) != len(defs) {
		t.Errorf("Keys() has %d keys, defaults() %d", len(Keys()), len(defs))
	}
}

// TestRestartKeys pins the keys whose change needs a restart.
func TestRestartKeys(t *testing.T) {
	want := []string{
		"tenant.id", "erp.dsn", "erp.overlap", "erp.page_size", "erp.time_zone", "erp.extra_fields",
		"erp.watch", "erp.watch_debounce", "erp.bench_path", "erp.site", "outbox.path",
		"log.file", "log.format", "metrics.listen", "ha.enabled",
	}
	if got := RestartKeys(); !slices.Equal(got, want) {
		t.Errorf("RestartKeys() = %q,\nwant %q", got, want)
	}
}

// TestReferenceFileMarksRestartKeys: in the annotated settings.toml, the
// comment above a key ends in "(restart)" exactly when a change to the key
// needs a restart. Keys written one after another (bench_path and site)
// share the comment above the first; a commented-out key (# secret = "") is
// a key, not a comment.
func TestReferenceFileMarksRestartKeys(t *testing.T) {
	restart := map[string]bool{}
	for _, k := range RestartKeys() {
		restart[k] = true
	}
	f, err := os.Open(ctReferenceFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sectionRE := regexp.MustCompile(`^\[([a-z_]+)\]\s*$`)
	commentedSectionRE := regexp.MustCompile(`^#\s*\[`) // an example block, such as # [[sites]]
	keyRE := regexp.MustCompile(`^(?:#\s*)?([a-z_]+)\s*=\s*\S`)
	section, comment := "", ""
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case sectionRE.MatchString(line):
			section, comment = sectionRE.FindStringSubmatch(line)[1], ""
		case commentedSectionRE.MatchString(line):
			section, comment = "", ""
		case line == "":
			comment = ""
		case keyRE.MatchString(line):
			if section == "" {
				continue
			}
			key := section + "." + keyRE.FindStringSubmatch(line)[1]
			seen[key] = true
			marked := strings.HasSuffix(comment, "(restart)")
			switch {
			case restart[key] && !marked:
				t.Errorf("%s:%d: %s needs a restart: end the comment line above it with \"(restart)\"", ctReferenceFile, n, key)
			case !restart[key] && marked:
				t.Errorf("%s:%d: %s applies on reload, but the comment above it says \"(restart)\"", ctReferenceFile, n, key)
			}
		case strings.HasPrefix(line, "#"):
			comment = line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for k := range restart {
		if !seen[k] {
			t.Errorf("%s does not list the restart-only key %s", ctReferenceFile, k)
		}
	}
}

// TestDiffSiteAndRunning reads a settings file, changes it, reads it again,
// and checks what DiffSite reports and what Running keeps.
func TestDiffSiteAndRunning(t *testing.T) {
	ctClearEnv(t)
	dir := t.TempDir()
	secretFile := dir + "/secret"
	otherSecret := "b3RoZXItcmVmZXJlbmNlLXNlY3JldC0zMmJ5dGVzLWxvbmc=" // "other-reference-secret-32bytes-long"
	benchDSN := "bench_user:Bench-Pa55word@tcp(db.internal:3307)/_bench_db"
	bench := writeBench(t, benchDSN, "shop.example.com")
	fromFile := map[string]string{"tenant.secret": ctDel, "tenant.secret_file": quoteTOML(secretFile)}
	fromBench := map[string]string{"erp.dsn": ctDel, "erp.bench_path": quoteTOML(bench), "erp.site": `"shop.example.com"`}
	with := func(base map[string]string, over map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range over {
			m[k] = v
		}
		return m
	}

	tests := []struct {
		name        string
		old, next   map[string]string // ctTOML's overrides: next's are added to old's
		secretNext  string            // the secret file's content when next is read
		edit        func(next *Site)  // a change made to next after reading it
		wantApplied []string
		wantRestart []string
		check       func(t *testing.T, run *Site)
	}{
		{name: "nothing changed"},
		{name: "url is applied",
			next:        map[string]string{"ingest.url": `"https://other.example.com/in"`},
			wantApplied: []string{"ingest.url"},
			check: func(t *testing.T, run *Site) {
				if run.Ingest.URL != "https://other.example.com/in" {
					t.Errorf("running ingest.url = %q, want the new one", run.Ingest.URL)
				}
			}},
		{name: "dsn needs a restart",
			next:        map[string]string{"erp.dsn": quoteTOML("erpsync:" + ctDSNPassword + "@tcp(10.0.0.9:3306)/_other")},
			wantRestart: []string{"erp.dsn"},
			check: func(t *testing.T, run *Site) {
				if run.ERP.DSN.Reveal() != ctDSN {
					t.Errorf("running erp.dsn changed to the new one")
				}
			}},
		{name: "dsn to bench needs a restart, the dsn stays",
			next:        fromBench,
			wantRestart: []string{"erp.dsn", "erp.bench_path", "erp.site"},
			check: func(t *testing.T, run *Site) {
				if run.ERP.DSN.Reveal() != ctDSN || run.ERP.BenchPath != "" || run.ERP.Site != "" {
					t.Errorf("running erp: bench_path %q, site %q, dsn changed: want the old dsn alone", run.ERP.BenchPath, run.ERP.Site)
				}
			}},
		{name: "bench to dsn needs a restart, the bench stays",
			old:         fromBench,
			next:        map[string]string{"erp.dsn": quoteTOML(ctDSN), "erp.bench_path": ctDel, "erp.site": ctDel},
			wantRestart: []string{"erp.dsn", "erp.bench_path", "erp.site"},
			check: func(t *testing.T, run *Site) {
				if !strings.Contains(run.ERP.DSN.Reveal(), "_bench_db") || run.ERP.BenchPath != bench || run.ERP.Site != "shop.example.com" {
					t.Errorf("running erp: bench_path %q, site %q: want the old bench, site and its dsn", run.ERP.BenchPath, run.ERP.Site)
				}
			}},
		{name: "secret file rotated in place is applied",
			old: fromFile, next: fromFile, secretNext: otherSecret + "\n",
			wantApplied: []string{"tenant.secret"},
			check: func(t *testing.T, run *Site) {
				if string(run.Key()) != "other-reference-secret-32bytes-long" {
					t.Errorf("running key is not the rotated one")
				}
			}},
		{name: "the same secret written another way is no change",
			next: map[string]string{"tenant.secret": quoteTOML(strings.TrimRight(ctRefSecret, "="))}},
		{name: "secret to secret file is applied",
			next:        fromFile,
			wantApplied: []string{"tenant.secret_file"}, // the same key, from a file now
		},
		{name: "some of each",
			next: map[string]string{
				"tenant.id": `"acme2"`, "erp.poll_interval": `"3s"`, "erp.overlap": `"10m"`, "erp.price_lists": `["Retail"]`,
				"outbox.path": `"/tmp/other.db"`, "outbox.retention": `"24h"`, "ingest.allow_insecure_http": "true",
			},
			wantApplied: []string{"ingest.allow_insecure_http", "erp.poll_interval", "erp.price_lists", "outbox.retention"},
			wantRestart: []string{"tenant.id", "erp.overlap", "outbox.path"},
			check: func(t *testing.T, run *Site) {
				if run.Tenant.ID != "acme" || run.ERP.Overlap != 5*time.Minute || run.Outbox.Path != "/var/lib/erpsync/outbox.db" {
					t.Errorf("running restart-only keys changed: %+v %+v", run.Tenant, run.Outbox)
				}
				if run.ERP.PollInterval.String() != "3s" || !slices.Equal(run.ERP.PriceLists, []string{"Retail"}) {
					t.Errorf("running keys not applied: %+v", run.ERP)
				}
			}},
		{name: "an empty list and no list are the same",
			edit: func(next *Site) { next.ERP.PriceLists, next.ERP.ExtraFields = nil, nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctWriteFile(t, secretFile, ctRefSecret+"\n")
			old := ctReadSite(t, ctTOML(tt.old))
			if tt.secretNext != "" {
				ctWriteFile(t, secretFile, tt.secretNext)
			}
			next := ctReadSite(t, ctTOML(with(tt.old, tt.next)))
			if tt.edit != nil {
				tt.edit(next)
			}
			nextBefore := *next

			applied, restart := DiffSite(old, next)
			if !slices.Equal(applied, tt.wantApplied) || !slices.Equal(restart, tt.wantRestart) {
				t.Errorf("DiffSite: applied %q, restart %q; want %q, %q", applied, restart, tt.wantApplied, tt.wantRestart)
			}

			run := Running(old, next)
			if run == next || run == old {
				t.Fatal("Running returned one of its arguments, want a copy")
			}
			if !reflect.DeepEqual(*next, nextBefore) {
				t.Error("Running changed next")
			}
			for _, k := range Keys() {
				if k.site == nil {
					continue
				}
				from, what := next, "next"
				if k.Restart {
					from, what = old, "old"
				}
				if !same(k.site(run), k.site(from)) {
					t.Errorf("Running: %s is not %s's", k.Name, what)
				}
			}
			if err := (&Config{Log: Log{Level: "info", Format: "text"}, Sites: []*Site{run}}).Validate(); err != nil {
				t.Errorf("the running settings do not validate: %v", err)
			}
			if a, r := DiffSite(old, run); len(r) != 0 || !slices.Equal(a, tt.wantApplied) {
				t.Errorf("DiffSite(old, Running(old, next)): applied %q, restart %q; want %q and no restart", a, r, tt.wantApplied)
			}
			if tt.check != nil {
				tt.check(t, run)
			}
		})
	}
}

func TestDiffFile(t *testing.T) {
	ctClearEnv(t)
	tests := []struct {
		name                     string
		over                     map[string]string
		wantApplied, wantRestart []string
	}{
		{name: "nothing changed"},
		{name: "log.level is applied", over: map[string]string{"log.level": `"debug"`}, wantApplied: []string{"log.level"}},
		{name: "log.file, log.format and metrics.listen need a restart",
			over:        map[string]string{"log.file": `"/tmp/x.log"`, "log.format": `"json"`, "metrics.listen": `"127.0.0.1:9464"`},
			wantRestart: []string{"log.file", "log.format", "metrics.listen"}},
		{name: "site keys are not file keys", over: map[string]string{"ingest.url": `"https://other.example.com/in"`, "erp.dsn": quoteTOML("u:p@tcp(h:1)/db")}},
	}
	old := ctRead(t, ctTOML(nil))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := ctRead(t, ctTOML(tt.over))
			applied, restart := DiffFile(old, next)
			if !slices.Equal(applied, tt.wantApplied) || !slices.Equal(restart, tt.wantRestart) {
				t.Errorf("DiffFile: applied %q, restart %q; want %q, %q", applied, restart, tt.wantApplied, tt.wantRestart)
			}
		})
	}
}

// ctRead reads a settings file with the given content.
func ctRead(t *testing.T, content string) *Config {
	t.Helper()
	c, err := Read(ctWrite(t, "settings.toml", content))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ctReadSite reads a single-site settings file and returns its site.
func ctReadSite(t *testing.T, content string) *Site {
	t.Helper()
	c := ctRead(t, content)
	if len(c.Sites) != 1 {
		t.Fatalf("%d sites, want 1", len(c.Sites))
	}
	return c.Sites[0]
}

func ctWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
