package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/signer"
)

// TestCheckBinary runs `erpsync check` as a process against a real site and
// receiver: clean, then with one thing broken per case.
func TestCheckBinary(t *testing.T) {
	t.Parallel() // waits more than it computes; see the Makefile's -parallel
	tests := []struct {
		name     string
		breakIt  func(t *testing.T, e *sitetest.Env)
		wantCode int
		want     []string // substrings of the output
		status   map[string]string
	}{
		{
			name:     "all good",
			wantCode: 0,
			want:     []string{"is valid", "decodes to 32 bytes", "connected to database", "accepted the signature", "0 problem(s)"},
			status: map[string]string{"settings": "ok", "secret": "ok", "database": "ok", "tables": "ok", "grants": "ok",
				"indexes": "ok", "binlog": "ok", "ingestion": "ok", "clock": "ok", "outbox": "ok", "log": "ok", "time zone": "ok"},
		},
		{
			name: "time zone other than System Settings",
			breakIt: func(t *testing.T, e *sitetest.Env) {
				e.RewriteSettings(t, `site_url = "https://erp.example.com"`, "site_url = \"https://erp.example.com\"\ntime_zone = \"Europe/Berlin\"")
			},
			wantCode: 1,
			want:     []string{`erp.time_zone = "Europe/Berlin" but System Settings says "Asia/Kolkata"`, `set erp.time_zone = "Asia/Kolkata"`},
			status:   map[string]string{"time zone": "fail", "tables": "ok"},
		},
		{
			name:     "settings readable by others",
			breakIt:  func(t *testing.T, e *sitetest.Env) { must(t, os.Chmod(e.CfgPath, 0o644)) },
			wantCode: 1,
			want:     []string{"readable by others (mode 0644)", "chmod 0640"},
			status:   map[string]string{"settings": "fail"},
		},
		{
			name: "secret too short",
			breakIt: func(t *testing.T, e *sitetest.Env) {
				must(t, os.WriteFile(filepath.Join(e.Dir, "secret"), []byte("c2hvcnQ=\n"), 0o600))
			},
			wantCode: 1,
			want:     []string{"decodes to 5 bytes, need at least 32", "not probed"},
			status:   map[string]string{"secret": "fail", "ingestion": "fail", "database": "ok"},
		},
		{
			name: "secret the receiver does not know",
			breakIt: func(t *testing.T, e *sitetest.Env) {
				other, _ := signer.NewSecret()
				must(t, os.WriteFile(filepath.Join(e.Dir, "secret"), []byte(other), 0o600))
			},
			wantCode: 1,
			want:     []string{"answered 401", "HMAC rejected", "tenant.id and the secret"},
			status:   map[string]string{"secret": "ok", "ingestion": "fail"},
		},
		{
			name:     "no index on modified",
			breakIt:  func(t *testing.T, e *sitetest.Env) { e.Exec("ALTER TABLE `tabBin` DROP INDEX `modified`") },
			wantCode: 1,
			want:     []string{"no index on modified in `tabBin`", "ALTER TABLE `tabBin` ADD INDEX modified (modified);"},
			status:   map[string]string{"indexes": "fail", "tables": "ok"},
		},
		{
			name: "database down",
			breakIt: func(t *testing.T, e *sitetest.Env) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				must(t, err)
				addr := l.Addr().String()
				l.Close()
				i, j := strings.Index(e.DSN, "tcp("), strings.Index(e.DSN, ")/")
				editSettings(t, e, e.DSN, e.DSN[:i]+"tcp("+addr+e.DSN[j:])
			},
			wantCode: 1,
			want:     []string{"cannot connect to database", "connection refused", "systemctl status mariadb"},
			status:   map[string]string{"database": "fail", "ingestion": "ok"},
		},
		{
			name: "user may write",
			breakIt: func(t *testing.T, e *sitetest.Env) {
				var db string
				must(t, e.DB.QueryRow("SELECT DATABASE()").Scan(&db))
				user := fmt.Sprintf("rw_%d", time.Now().UnixNano()%1e9)
				e.Exec("CREATE USER '" + user + "'@'%' IDENTIFIED BY 'rw-pass-Secret9'")
				e.Exec("GRANT SELECT, INSERT, UPDATE ON `" + db + "`.* TO '" + user + "'@'%'")
				t.Cleanup(func() { e.DB.Exec("DROP USER '" + user + "'@'%'") })
				i := strings.Index(e.DSN, "@")
				editSettings(t, e, e.DSN, user+":rw-pass-Secret9"+e.DSN[i:])
			},
			wantCode: 0,
			want:     []string{"may do more than read", "INSERT ON", "UPDATE ON", "GRANT SELECT ON"},
			status:   map[string]string{"grants": "warn"},
		},
		{
			name: "ingestion unreachable",
			breakIt: func(t *testing.T, e *sitetest.Env) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				must(t, err)
				addr := l.Addr().String()
				l.Close()
				editSettings(t, e, e.URL, "http://"+addr+"/ingest")
			},
			wantCode: 1,
			want:     []string{"cannot reach", "connection refused"},
			status:   map[string]string{"ingestion": "fail", "clock": "fail", "database": "ok"},
		},
		{
			name: "erp.watch names a directory without binary logs",
			breakIt: func(t *testing.T, e *sitetest.Env) {
				editSettings(t, e, "[erp]\n", "[erp]\nwatch = \""+t.TempDir()+"\"\n")
			},
			wantCode: 1,
			want:     []string{"holds no binary log files"},
			status:   map[string]string{"binlog": "fail"},
		},
		{
			name: "erp.watch on the real binary log",
			breakIt: func(t *testing.T, e *sitetest.Env) {
				var base string
				must(t, e.DB.QueryRow("SELECT @@log_bin_basename").Scan(&base))
				editSettings(t, e, "[erp]\n", "[erp]\nwatch = \""+filepath.Dir(base)+"\"\n")
			},
			wantCode: 0,
			want:     []string{"the binary log is on and", "is readable"},
			status:   map[string]string{"binlog": "ok"},
		},
		{
			name: "outbox directory missing",
			breakIt: func(t *testing.T, e *sitetest.Env) {
				editSettings(t, e, filepath.Join(e.Dir, "outbox.db"), filepath.Join(e.Dir, "nope", "outbox.db"))
			},
			wantCode: 1,
			want:     []string{"directory " + filepath.Join(e2eDirPlaceholder, "nope")},
			status:   map[string]string{"outbox": "fail"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sitetest.New(t, sitetest.Options{Items: 3})
			if tt.breakIt != nil {
				tt.breakIt(t, e)
			}
			code, out, errOut := runBinary(t, "check", "--config", e.CfgPath)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, e2eDirPlaceholder, e.Dir)
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tt.wantCode != 0 && !strings.Contains(errOut, "problem(s)") {
				t.Errorf("stderr does not sum up the problems: %q", errOut)
			}
			assertNoSecrets(t, e, out, errOut)

			code, js, _ := runBinary(t, "check", "--config", e.CfgPath, "--json")
			if code != tt.wantCode {
				t.Errorf("--json: exit %d, want %d", code, tt.wantCode)
			}
			var report struct {
				OK      bool          `json:"ok"`
				Results []checkResult `json:"results"`
			}
			must(t, json.Unmarshal([]byte(js), &report))
			if report.OK != (tt.wantCode == 0) {
				t.Errorf("--json ok = %v", report.OK)
			}
			worst := map[string]string{}
			rank := map[string]int{"ok": 0, "warn": 1, "fail": 2}
			for _, r := range report.Results {
				if s, ok := worst[r.Check]; !ok || rank[r.Status] > rank[s] {
					worst[r.Check] = r.Status
				}
				if r.Status != "ok" && r.Fix == "" && r.Check != "clock" {
					t.Errorf("%s %s without a fix: %s", r.Status, r.Check, r.Message)
				}
			}
			for check, want := range tt.status {
				if worst[check] != want {
					t.Errorf("check %s is %q, want %q\n%s", check, worst[check], want, out)
				}
			}
			assertNoSecrets(t, e, js)
		})
	}
}

const e2eDirPlaceholder = "<E2EDIR>"

// TestCheckIngestionAnswers covers how each answer of the endpoint is read.
func TestCheckIngestionAnswers(t *testing.T) {
	key, _ := signer.DecodeSecret(ctRefSecret)
	tests := []struct {
		status     int
		header     map[string]string
		wantStatus string
		want       string
	}{
		{422, nil, "ok", "accepted the signature"},
		{400, nil, "ok", "accepted the signature"},
		{200, nil, "ok", "accepted the signed probe"},
		{401, nil, "fail", "HMAC rejected"},
		{403, nil, "fail", "HMAC rejected"},
		{404, nil, "fail", "answered 404"},
		{302, map[string]string{"Location": "https://elsewhere/x"}, "fail", "redirect to https://elsewhere/x"},
		{410, nil, "fail", "endpoint is gone"},
		{503, nil, "fail", "in trouble"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			var got *http.Request
			var gotBody []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r
				gotBody = make([]byte, r.ContentLength)
				r.Body.Read(gotBody)
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			path := filepath.Join(t.TempDir(), "settings.toml")
			must(t, os.WriteFile(path, []byte(fmt.Sprintf("[tenant]\nid = \"acme\"\nsecret = %q\n[ingest]\nurl = %q\ntimeout = \"5s\"\n[erp]\ndsn = \"u:p@tcp(127.0.0.1:1)/db\"\n",
				ctRefSecret, srv.URL)), 0o600))
			file, err := config.Read(path)
			must(t, err)
			d := &doctor{path: path, file: file, cfg: file.Sites[0]}
			d.ingestion(t.Context())
			r := d.results[0]
			if r.Check != "ingestion" || r.Status != tt.wantStatus || !strings.Contains(r.Message+r.Fix, tt.want) {
				t.Errorf("got %+v, want %s containing %q", r, tt.wantStatus, tt.want)
			}
			// The probe is a POST signed like a delivery, with no items.
			if got == nil || got.Method != http.MethodPost {
				t.Fatalf("probe not a POST: %+v", got)
			}
			err = signer.Verify(key, got.Header.Get(signer.HeaderTimestamp), gotBody, got.Header.Get(signer.HeaderSignature), time.Now(), signer.Window)
			if err != nil {
				t.Errorf("probe signature: %v", err)
			}
			var body struct {
				DeliveryID string `json:"delivery_id"`
				Items      []any  `json:"items"`
				Tenant     string `json:"tenant"`
			}
			must(t, json.Unmarshal(gotBody, &body))
			if body.Tenant != "acme" || body.Items == nil || len(body.Items) != 0 || body.DeliveryID != got.Header.Get(signer.HeaderDeliveryID) {
				t.Errorf("probe body %s", gotBody)
			}
		})
	}
}

// TestCheckClock reads the skew from a Date header.
func TestCheckClock(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		server time.Time // the server's clock
		date   string    // overrides the Date header when set
		want   string
	}{
		{"in step", now, "", "ok"},
		{"we are 10s ahead", now.Add(-10 * time.Second), "", "fail"},
		{"we are 3s ahead", now.Add(-3 * time.Second), "", "warn"},
		{"we are 3s behind", now.Add(3 * time.Second), "", "warn"},
		{"we are 10 minutes behind", now.Add(10 * time.Minute), "", "fail"},
		{"no Date header", now, "-", "warn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			date := tt.server.UTC().Format(http.TimeFormat)
			if tt.date == "-" {
				date = ""
			}
			d := &doctor{}
			d.clock(date, now.Add(-5*time.Millisecond), now.Add(5*time.Millisecond))
			if len(d.results) != 1 || d.results[0].Status != tt.want {
				t.Errorf("got %+v, want %s", d.results, tt.want)
			}
		})
	}
}

// TestCheckMissingSettings: no settings file is one clear failure.
func TestCheckMissingSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	code, out, _ := runMain(t, "", "check", "--config", path)
	if code != 1 || !strings.Contains(out, "FAIL  settings") || !strings.Contains(out, "not found") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}
