package metrics

import (
	"bufio"
	"context"
	"io"
	"math"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpsExposition(t *testing.T) {
	tests := []struct {
		name  string
		setup func(r *Registry)
		want  string
	}{
		{
			name: "counter with labels, series sorted",
			setup: func(r *Registry) {
				c := r.Counter("erpsync_deliveries_total", "Delivery attempts by outcome.", "outcome")
				c.With("transient").Add(2)
				c.With("delivered").Inc()
				c.With("delivered").Inc()
			},
			want: `# HELP erpsync_deliveries_total Delivery attempts by outcome.
# TYPE erpsync_deliveries_total counter
erpsync_deliveries_total{outcome="delivered"} 2
erpsync_deliveries_total{outcome="transient"} 2
`,
		},
		{
			name: "gauge without labels, families sorted by name",
			setup: func(r *Registry) {
				r.Gauge("b_gauge", "B.").Set(-1.5)
				g := r.Gauge("a_gauge", "A.")
				g.Set(10)
				g.Dec()
				g.Add(0.25)
			},
			want: `# HELP a_gauge A.
# TYPE a_gauge gauge
a_gauge 9.25
# HELP b_gauge B.
# TYPE b_gauge gauge
b_gauge -1.5
`,
		},
		{
			name: "escaping of help and label values",
			setup: func(r *Registry) {
				r.Counter("x_total", "line one\nback\\slash", "item").With("a\"b\\c\nd").Inc()
			},
			want: `# HELP x_total line one\nback\\slash
# TYPE x_total counter
x_total{item="a\"b\\c\nd"} 1
`,
		},
		{
			name: "histogram buckets are cumulative and le is inclusive",
			setup: func(r *Registry) {
				h := r.Histogram("lat_seconds", "Latency.", []float64{0.1, 1, 10})
				for _, v := range []float64{0.05, 0.1, 0.5, 3, 100} {
					h.Observe(v)
				}
			},
			want: `# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{le="0.1"} 2
lat_seconds_bucket{le="1"} 3
lat_seconds_bucket{le="10"} 4
lat_seconds_bucket{le="+Inf"} 5
lat_seconds_sum 103.65
lat_seconds_count 5
`,
		},
		{
			name: "histogram with a label",
			setup: func(r *Registry) {
				h := r.Histogram("h_seconds", "H.", []float64{1}, "source")
				h.With("item").ObserveDuration(500 * time.Millisecond)
			},
			want: `# HELP h_seconds H.
# TYPE h_seconds histogram
h_seconds_bucket{source="item",le="1"} 1
h_seconds_bucket{source="item",le="+Inf"} 1
h_seconds_sum{source="item"} 0.5
h_seconds_count{source="item"} 1
`,
		},
		{
			name: "gauge func, special values, labelled family without series",
			setup: func(r *Registry) {
				r.GaugeFunc("f", "F.", func() float64 { return math.Inf(1) })
				r.Gauge("g", "G.", "x")
				r.Gauge("n", "N.").Set(math.NaN())
				r.Gauge("t", "T.").SetTime(time.Unix(1700000000, 500000000))
			},
			want: `# HELP f F.
# TYPE f gauge
f +Inf
# HELP g G.
# TYPE g gauge
# HELP n N.
# TYPE n gauge
n NaN
# HELP t T.
# TYPE t gauge
t 1.7000000005e+09
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New()
			tt.setup(r)
			var b strings.Builder
			if _, err := r.WriteTo(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tt.want)
			}
			checkFormat(t, b.String())
		})
	}
}

// checkFormat checks every line against the text exposition grammar.
func checkFormat(t *testing.T, text string) {
	t.Helper()
	comment := regexp.MustCompile(`^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram))$`)
	sample := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*\})? (NaN|[+-]Inf|[-+0-9.e]+)$`)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if !comment.MatchString(line) && !sample.MatchString(line) {
			t.Errorf("line is not valid exposition format: %q", line)
		}
	}
}

func TestOpsMisusePanics(t *testing.T) {
	tests := []struct {
		name string
		do   func(r *Registry)
	}{
		{"invalid name", func(r *Registry) { r.Counter("bad-name", "") }},
		{"invalid label", func(r *Registry) { r.Counter("c", "", "bad-label") }},
		{"reserved label", func(r *Registry) { r.Counter("c", "", "__x") }},
		{"duplicate label", func(r *Registry) { r.Gauge("g", "", "a", "a") }},
		{"le on histogram", func(r *Registry) { r.Histogram("h", "", nil, "le") }},
		{"registered twice", func(r *Registry) { r.Counter("c", ""); r.Gauge("c", "") }},
		{"unsorted buckets", func(r *Registry) { r.Histogram("h", "", []float64{1, 0.5}) }},
		{"negative counter add", func(r *Registry) { r.Counter("c", "").Add(-1) }},
		{"labelled counter used without With", func(r *Registry) { r.Counter("c", "", "a").Inc() }},
		{"labelled gauge used without With", func(r *Registry) { r.Gauge("g", "", "a").Set(1) }},
		{"labelled histogram used without With", func(r *Registry) { r.Histogram("h", "", nil, "a").Observe(1) }},
		{"wrong number of label values", func(r *Registry) { r.Counter("c", "", "a", "b").With("x") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("did not panic")
				}
			}()
			tt.do(New())
		})
	}
}

// TestConcurrent updates every kind of metric from many goroutines while
// scraping, then checks the exact totals (run with -race).
func TestOpsConcurrent(t *testing.T) {
	r := New()
	c := r.Counter("c_total", "C.", "outcome")
	g := r.Gauge("g", "G.")
	h := r.Histogram("h_seconds", "H.", []float64{0.5})
	const workers, n = 8, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			default:
				r.WriteTo(io.Discard)
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcome := []string{"delivered", "dead"}[w%2]
			for i := range n {
				c.With(outcome).Inc()
				g.Add(1)
				h.Observe(float64(i % 2))
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-scraped
	if got := c.With("delivered").Value() + c.With("dead").Value(); got != workers*n {
		t.Errorf("counter total %v, want %d", got, workers*n)
	}
	if got := g.Value(); got != workers*n {
		t.Errorf("gauge %v, want %d", got, workers*n)
	}
	var b strings.Builder
	r.WriteTo(&b)
	for _, want := range []string{
		`h_seconds_bucket{le="0.5"} 8000`, `h_seconds_bucket{le="+Inf"} 16000`, "h_seconds_sum 8000", "h_seconds_count 16000",
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
}

// TestServe scrapes a real listener on loopback.
func TestOpsServe(t *testing.T) {
	r := New()
	r.Counter("erpsync_hmac_rejections_total", "Requests the ingestion service rejected with 401 or 403.").Add(3)
	ctx, cancel := context.WithCancel(context.Background())
	addr, wait, err := r.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr.String()
	tests := []struct {
		method, path string
		status       int
		body         string
	}{
		{http.MethodGet, "/metrics", 200, "erpsync_hmac_rejections_total 3\n"},
		{http.MethodHead, "/metrics", 200, ""},
		{http.MethodPost, "/metrics", 405, "method not allowed"},
		{http.MethodGet, "/", 404, "/metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if !strings.Contains(string(b), tt.body) {
				t.Errorf("body %q does not contain %q", b, tt.body)
			}
			if tt.status == 200 && resp.Header.Get("Content-Type") != ContentType {
				t.Errorf("content type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
	cancel()
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server stopped with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop after its context ended")
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Error("server still answers after stopping")
	}
}

// TestForget: the series of one label value go, in every family with that
// label; other values, and families without the label, stay.
func TestForget(t *testing.T) {
	r := New()
	c := r.Counter("c_total", "c", "site", "outcome")
	g := r.Gauge("g", "g", "site")
	h := r.Histogram("h_seconds", "h", []float64{1}, "site")
	other := r.Gauge("other", "o", "host")
	for _, site := range []string{"a", "b"} {
		c.With(site, "ok").Inc()
		g.With(site).Set(1)
		h.With(site).Observe(0.5)
	}
	other.With("a").Set(1)
	r.Forget("site", "a")
	var b strings.Builder
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, gone := range []string{`c_total{site="a"`, `g{site="a"}`, `h_seconds_count{site="a"}`} {
		if strings.Contains(out, gone) {
			t.Errorf("%s still exported:\n%s", gone, out)
		}
	}
	for _, kept := range []string{`c_total{site="b",outcome="ok"} 1`, `g{site="b"} 1`, `h_seconds_count{site="b"} 1`, `other{host="a"} 1`} {
		if !strings.Contains(out, kept) {
			t.Errorf("%s missing:\n%s", kept, out)
		}
	}
}
