package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	Datasource *datasource     `json:"datasource"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
}

func load(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("erpsync.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("erpsync.json: %v", err)
	}
	return d
}

// TestDashboard checks the dashboard's structure: a data source variable
// every query uses, $instance and $site variables every query filters by,
// the panels the issue asks for, unique ids and a layout without overlaps.
func TestDashboard(t *testing.T) {
	d := load(t)
	if d.UID != "erpsync" || d.Title != "erpsync" {
		t.Errorf("uid %q, title %q: want erpsync (links and provisioning use them)", d.UID, d.Title)
	}
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["datasource"]; v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("no Prometheus data source variable: %+v", v)
	}
	for _, name := range []string{"instance", "site"} {
		v, ok := vars[name]
		if !ok || v.Type != "query" || !v.Multi || !v.IncludeAll || v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s: %+v, want a multi-value query variable with All on ${datasource}", name, v)
		}
	}

	ids := map[int]string{}
	metrics := map[string]string{} // metric -> panel type
	for _, p := range d.Panels {
		if prev, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if g := p.GridPos; g.X < 0 || g.W <= 0 || g.X+g.W > 24 || g.H <= 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %+v, %d targets: want ${datasource} and a query", p.Title, p.Datasource, len(p.Targets))
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s: datasource %+v, want ${datasource}", p.Title, tg.RefID, tg.Datasource)
			}
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: %s does not filter by $instance", p.Title, tg.Expr)
			}
			if !strings.Contains(tg.Expr, `site=~"$site"`) && !strings.Contains(tg.Expr, "erpsync_build_info") {
				t.Errorf("panel %q: %s does not filter by $site", p.Title, tg.Expr)
			}
			for _, f := range strings.FieldsFunc(tg.Expr, func(r rune) bool {
				return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
			}) {
				if strings.HasPrefix(f, "erpsync_") {
					metrics[f] = p.Type
				}
			}
		}
	}
	for i, a := range d.Panels {
		for _, b := range d.Panels[i+1:] {
			if overlap(a, b) {
				t.Errorf("panels %q and %q overlap", a.Title, b.Title)
			}
		}
	}
	// What an operator looks for: detection lag, the end-to-end latency
	// histogram, backlog size and age, deliveries by outcome, pause state.
	for metric, kind := range map[string]string{
		"erpsync_detection_lag_seconds":             "",
		"erpsync_end_to_end_latency_seconds_bucket": "heatmap",
		"erpsync_backlog_messages":                  "",
		"erpsync_backlog_oldest_age_seconds":        "",
		"erpsync_deliveries_total":                  "",
		"erpsync_delivery_paused":                   "",
	} {
		got, ok := metrics[metric]
		if !ok {
			t.Errorf("no panel queries %s", metric)
		} else if kind != "" && !panelOfType(d, metric, kind) {
			t.Errorf("%s is shown in a %s panel, want a %s", metric, got, kind)
		}
	}
}

func overlap(a, b panel) bool {
	ga, gb := a.GridPos, b.GridPos
	return ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H
}

func panelOfType(d dashboard, metric, kind string) bool {
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if p.Type == kind && strings.Contains(tg.Expr, metric) {
				return true
			}
		}
	}
	return false
}

// TestDashboardQueriesParse checks that every query is valid PromQL: each
// becomes a recording rule, with Grafana's variables replaced, for
// `promtool check rules`.
func TestDashboardQueriesParse(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatal("promtool is not installed: apt-get install prometheus (make test-deps installs it)")
	}
	vars := strings.NewReplacer(`"$instance"`, `".*"`, `"$site"`, `".*"`, "$__rate_interval", "5m")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	d := load(t)
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			expr, err := json.Marshal(vars.Replace(tg.Expr)) // a JSON string is a YAML string
			if err != nil {
				t.Fatal(err)
			}
			n++
			fmt.Fprintf(&rules, "      - record: panel_%d_%s\n        expr: %s\n", p.ID, tg.RefID, expr)
		}
	}
	if n == 0 {
		t.Fatal("the dashboard has no queries")
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("a dashboard query is not valid PromQL: %v\n%s\n%s", err, out, rules.String())
	}
}
