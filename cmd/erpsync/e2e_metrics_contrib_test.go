package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/sitetest"
)

// The alert rules and the dashboard that query erpsync's metrics.
const (
	contribRules     = "contrib/prometheus/erpsync.rules.yml"
	contribDashboard = "contrib/grafana/erpsync.json"
)

// prometheusOwn are the series Prometheus itself writes for each scrape
// target, which the rules may query beside erpsync's.
var prometheusOwn = map[string]bool{"up": true}

// TestContribMetricsExist runs erpsync with metrics.listen, scrapes
// /metrics once the daemon has delivered, and fails for every metric that an
// alert rule or a dashboard panel queries and erpsync does not export, so
// that the daemon, the rules and the dashboard do not drift apart. The
// registry writes # TYPE for every registered family, series or not.
func TestContribMetricsExist(t *testing.T) {
	root := repoRoot(t)
	used := map[string][]string{} // metric -> where it is queried
	for name, where := range rulesMetrics(t, filepath.Join(root, contribRules)) {
		used[name] = append(used[name], where...)
	}
	for name, where := range dashboardMetrics(t, filepath.Join(root, contribDashboard)) {
		used[name] = append(used[name], where...)
	}
	if len(used) < 10 {
		t.Fatalf("found only %d metrics in the rules and the dashboard: %v", len(used), used)
	}

	families := scrapeFamilies(t)
	var missing []string
	for name, where := range used {
		if !exported(name, families) {
			slices.Sort(where)
			missing = append(missing, fmt.Sprintf("%s (queried in %s)", name, strings.Join(slices.Compact(where), "; ")))
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("erpsync does not export %s", m)
	}
	if len(missing) > 0 {
		t.Logf("erpsync exports: %v", sortedKeys(families))
	}
}

// scrapeFamilies runs erpsync with metrics.listen on a site with a few
// items, waits for them to be delivered, and returns the metric families of
// /metrics by name, with their types.
func scrapeFamilies(t *testing.T) map[string]string {
	t.Helper()
	const n = 3
	e := sitetest.New(t, sitetest.Options{Items: n})
	addr := cmdtFreePort(t)
	b, err := os.ReadFile(e.CfgPath)
	must(t, err)
	must(t, os.WriteFile(e.CfgPath, append(b, fmt.Sprintf("\n[metrics]\nlisten = %q\n", addr)...), 0o600))
	cmd := exec.Command(erpsyncBinary(t), "run", "--config", e.CfgPath)
	var stderr sitetest.LockedBuffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	e.WaitCount(n)

	delivered := `erpsync_deliveries_total{site="default",outcome="delivered"}`
	deadline := time.Now().Add(20 * time.Second)
	for {
		text, err := scrape("http://" + addr + "/metrics")
		if err == nil && strings.Contains(text, delivered) {
			return parseFamilies(text)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in /metrics (%v):\n%s\nstderr:\n%s", delivered, err, text, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func scrape(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), err
}

// parseFamilies returns the families of a text exposition by name, from
// their # TYPE lines.
func parseFamilies(text string) map[string]string {
	families := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			families[f[2]] = f[3]
		}
	}
	return families
}

// exported reports whether a query's metric name is one of families: the
// family itself, a histogram's _bucket, _sum or _count series, or a series
// Prometheus writes itself.
func exported(name string, families map[string]string) bool {
	if _, ok := families[name]; ok || prometheusOwn[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && families[base] == "histogram" {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// rulesMetrics returns the metrics each rule's expr queries, with where:
// "erpsync.rules.yml: ErpsyncSiteDown". It reads the expr keys of the rules
// file: a one-line value, or a block scalar (| or >) on the lines indented
// below it.
func rulesMetrics(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	lines := strings.Split(string(b), "\n")
	found := map[string][]string{}
	rule := ""
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(trimmed, "- alert:"); ok {
			rule = strings.TrimSpace(name)
		} else if name, ok := strings.CutPrefix(trimmed, "- record:"); ok {
			rule = strings.TrimSpace(name)
		}
		value, ok := strings.CutPrefix(trimmed, "expr:")
		if !ok {
			continue
		}
		expr := strings.TrimSpace(value)
		if expr == "" || strings.ContainsAny(expr[:1], "|>") {
			indent := len(line) - len(strings.TrimLeft(line, " "))
			var block []string
			for _, next := range lines[i+1:] {
				if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
					break
				}
				block = append(block, next)
			}
			expr = strings.Join(block, "\n")
		} else if q := expr[0]; (q == '"' || q == '\'') && len(expr) > 1 && expr[len(expr)-1] == q {
			expr = expr[1 : len(expr)-1]
		}
		names := promqlMetrics(expr)
		if len(names) == 0 {
			t.Errorf("%s: rule %s: no metric found in %q", filepath.Base(path), rule, expr)
		}
		for _, name := range names {
			found[name] = append(found[name], filepath.Base(path)+": "+rule)
		}
	}
	return found
}

// dashboardMetrics returns the metrics the dashboard's panels and variables
// query, with where: "erpsync.json: panel Backlog size".
func dashboardMetrics(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
			Panels json.RawMessage `json:"panels"` // a collapsed row's
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	found := map[string][]string{}
	add := func(where, expr string) {
		names := promqlMetrics(expr)
		if len(names) == 0 {
			t.Errorf("%s: %s: no metric found in %q", filepath.Base(path), where, expr)
		}
		for _, name := range names {
			found[name] = append(found[name], filepath.Base(path)+": "+where)
		}
	}
	for _, p := range d.Panels {
		if len(p.Panels) > 0 && string(p.Panels) != "[]" {
			t.Errorf("%s: row %q is collapsed with panels inside: this test reads only top-level panels", filepath.Base(path), p.Title)
		}
		for _, tg := range p.Targets {
			add("panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		expr, ok := grafanaVariableQuery(v.Definition)
		if !ok {
			t.Errorf("%s: variable %s: cannot read the query %q", filepath.Base(path), v.Name, v.Definition)
			continue
		}
		add("variable "+v.Name, expr)
	}
	return found
}

// grafanaVariableQuery returns the PromQL in a Grafana variable query of
// the Prometheus data source: label_values(EXPR, label) or
// query_result(EXPR).
func grafanaVariableQuery(q string) (string, bool) {
	q = strings.TrimSpace(q)
	if m := regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`).FindStringSubmatch(q); m != nil {
		return m[1], true
	}
	if inner, ok := strings.CutPrefix(q, "query_result("); ok && strings.HasSuffix(inner, ")") {
		return strings.TrimSuffix(inner, ")"), true
	}
	return "", false
}

// promqlKeywords are PromQL's words that are not metric names: operators,
// modifiers, literals, and the aggregation operators, which PromQL reserves
// (`sum by (site) (…)` names no metric sum).
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// promqlLabelLists are the keywords whose parenthesised list names labels.
var promqlLabelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// promqlMetrics returns the metric names a PromQL expression queries, in
// order of first use: identifiers that are not functions (followed by "("),
// keywords, label names in {…} or in the lists of by, without, on, ignoring,
// group_left and group_right, durations in […], numbers, strings, or
// Grafana variables ($site, ${site}).
func promqlMetrics(expr string) []string {
	var names []string
	seen := map[string]bool{}
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '{':
			i = skipTo(expr, i, '}')
		case c == '[':
			i = skipTo(expr, i, ']')
		case c == '#': // a comment to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				i = skipTo(expr, i, '}')
			}
			for i < len(expr) && isIdent(expr[i], false) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			// A number or a duration: 300, 0.8, 1e3, 0x1f, 5m, 1h30m.
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				if (expr[i] == 'e' || expr[i] == 'E') && i+1 < len(expr) && (expr[i+1] == '+' || expr[i+1] == '-') {
					i++
				}
				i++
			}
		case isIdent(c, true):
			start := i
			for i < len(expr) && isIdent(expr[i], false) {
				i++
			}
			word := expr[start:i]
			next := i
			for next < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[next])) {
				next++
			}
			lower := strings.ToLower(word)
			switch {
			case promqlLabelLists[lower] && next < len(expr) && expr[next] == '(':
				i = skipTo(expr, next, ')')
			case promqlKeywords[lower]:
			case next < len(expr) && expr[next] == '(':
				// a function: its arguments are read on
			case !seen[word]:
				seen[word] = true
				names = append(names, word)
			}
		default:
			i++
		}
	}
	return names
}

// skipString returns the index after the string that starts at i.
func skipString(s string, i int) int {
	quote := s[i]
	for i++; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quote != '`':
			i++
		case s[i] == quote:
			return i + 1
		}
	}
	return i
}

// skipTo returns the index after the close that ends the group opened at i,
// skipping strings inside it.
func skipTo(s string, i int, close byte) int {
	open := s[i]
	depth := 0
	for i < len(s) {
		switch c := s[i]; {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(s, i)
			continue
		case c == open:
			depth++
		case c == close:
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return i
}

// TestPromQLMetrics pins how the drift test reads metric names out of
// PromQL.
func TestPromQLMetrics(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up{job="erpsync"} == 0`, []string{"up"}},
		{`erpsync_site_up == 0`, []string{"erpsync_site_up"}},
		{"erpsync_backlog_oldest_age_seconds > erpsync_outbox_alarm_age_seconds\nand erpsync_outbox_alarm_age_seconds > 0",
			[]string{"erpsync_backlog_oldest_age_seconds", "erpsync_outbox_alarm_age_seconds"}},
		{`time() - erpsync_last_poll_timestamp_seconds > 300 and on (instance, job, site) erpsync_site_up == 1`,
			[]string{"erpsync_last_poll_timestamp_seconds", "erpsync_site_up"}},
		{`sum by (site, outcome) (rate(erpsync_deliveries_total{instance=~"$instance", site=~"$site"}[$__rate_interval]))`,
			[]string{"erpsync_deliveries_total"}},
		{`sum(rate(a_total[5m])) without (le) / ignoring(x) group_left(y) b`, []string{"a_total", "b"}},
		{`count without(le) (c) + topk by (x) (3, d)`, []string{"c", "d"}},
		{`histogram_quantile(0.99, sum by (site, le) (rate(erpsync_end_to_end_latency_seconds_bucket[5m])))`,
			[]string{"erpsync_end_to_end_latency_seconds_bucket"}},
		{`0.8 * erpsync_outbox_alarm_pending > 1e3 and x offset 1h30m`, []string{"erpsync_outbox_alarm_pending", "x"}},
		{`m{a="}{ [x] \" y"} + {__name__="n"} + ns:rule:rate5m`, []string{"m", "ns:rule:rate5m"}},
		{`max_over_time(m[1h:5m]) > Inf or NaN`, []string{"m"}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
	} {
		if got := promqlMetrics(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("promqlMetrics(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, tc := range []struct{ query, want string }{
		{`label_values(erpsync_site_up{instance=~"$instance"}, site)`, `erpsync_site_up{instance=~"$instance"}`},
		{`query_result(topk(3, m))`, `topk(3, m)`},
	} {
		if got, ok := grafanaVariableQuery(tc.query); !ok || got != tc.want {
			t.Errorf("grafanaVariableQuery(%q) = %q, %v, want %q", tc.query, got, ok, tc.want)
		}
	}
	if got := exported("h_bucket", map[string]string{"h": "histogram"}); !got {
		t.Error("a histogram's _bucket series is not taken for the histogram")
	}
	if got := exported("g_count", map[string]string{"g": "gauge"}); got {
		t.Error("g_count is taken for the gauge g")
	}
}
