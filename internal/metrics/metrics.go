// Package metrics is a small Prometheus registry: counters, gauges and
// histograms, with or without labels, written in the Prometheus text
// exposition format (version 0.0.4) by Handler. It has no dependencies
// beyond the standard library.
//
// Every metric is safe for concurrent use. Registering a name twice, an
// invalid name, or using a metric with the wrong number of label values is a
// programming error and panics, as in the Prometheus client library.
//
//	reg := metrics.New()
//	deliveries := reg.Counter("erpsync_deliveries_total", "Delivery attempts by outcome.", "outcome")
//	deliveries.With("delivered").Inc()
//	lag := reg.Gauge("erpsync_detection_lag_seconds", "Time from a change's modified stamp to its detection.")
//	lag.Set(0.3)
//	http.Handle("/metrics", reg.Handler())
package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Registry holds metrics by name and writes them for Prometheus.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
}

// New returns an empty registry.
func New() *Registry { return &Registry{families: map[string]*family{}} }

// Metric types, as written on the # TYPE line.
const (
	typeCounter   = "counter"
	typeGauge     = "gauge"
	typeHistogram = "histogram"
)

// family is one metric name: its help, type, label names and series.
type family struct {
	name, help, typ string
	labels          []string
	buckets         []float64      // histograms
	fn              func() float64 // GaugeFunc

	mu     sync.Mutex
	series map[string]any // joined label values -> *Counter, *Gauge or *Histogram
}

var (
	namePattern  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelPattern = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

func (r *Registry) register(f *family) {
	if !namePattern.MatchString(f.name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", f.name))
	}
	seen := map[string]bool{}
	for _, l := range f.labels {
		switch {
		case !labelPattern.MatchString(l) || strings.HasPrefix(l, "__"):
			panic(fmt.Sprintf("metrics: %s: invalid label name %q", f.name, l))
		case f.typ == typeHistogram && l == "le":
			panic(fmt.Sprintf("metrics: %s: a histogram cannot have a label named le", f.name))
		case seen[l]:
			panic(fmt.Sprintf("metrics: %s: label %q given twice", f.name, l))
		}
		seen[l] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.families[f.name]; ok {
		panic(fmt.Sprintf("metrics: %s registered twice", f.name))
	}
	f.series = map[string]any{}
	r.families[f.name] = f
}

// key joins label values into a map key; "\xff" never occurs in UTF-8 text.
func (f *family) key(values []string) string {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s has labels %v: got %d values %q", f.name, f.labels, len(values), values))
	}
	return strings.Join(values, "\xff")
}

// child returns the series for values, making it with mk the first time.
func (f *family) child(values []string, mk func(values []string) any) any {
	k := f.key(values)
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.series[k]
	if !ok {
		s = mk(slices.Clone(values))
		f.series[k] = s
	}
	return s
}

// Forget removes every series whose label named label has value, in every
// family that has that label: a site that is gone stops being exported.
// Series of it made later start again from zero.
func (r *Registry) Forget(label, value string) {
	r.mu.Lock()
	families := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		families = append(families, f)
	}
	r.mu.Unlock()
	for _, f := range families {
		i := slices.Index(f.labels, label)
		if i < 0 {
			continue
		}
		f.mu.Lock()
		for k := range f.series {
			if strings.Split(k, "\xff")[i] == value {
				delete(f.series, k)
			}
		}
		f.mu.Unlock()
	}
}

// atomicFloat is a float64 updated with compare-and-swap.
type atomicFloat struct{ bits atomic.Uint64 }

func (a *atomicFloat) load() float64   { return math.Float64frombits(a.bits.Load()) }
func (a *atomicFloat) store(v float64) { a.bits.Store(math.Float64bits(v)) }
func (a *atomicFloat) add(v float64) {
	for {
		old := a.bits.Load()
		if a.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Counter is a value that only goes up, such as a number of requests.
type Counter struct {
	f      *family
	values []string // nil for the family itself
	v      atomicFloat
}

// Counter registers a counter. With label names, use With to pick a series;
// without, use the returned counter directly. By convention the name ends in
// "_total".
func (r *Registry) Counter(name, help string, labels ...string) *Counter {
	f := &family{name: name, help: help, typ: typeCounter, labels: labels}
	r.register(f)
	c := &Counter{f: f}
	if len(labels) == 0 {
		f.series[""] = c
	}
	return c
}

// With returns the series of the counter for the given label values, in the
// order the label names were registered.
func (c *Counter) With(labelValues ...string) *Counter {
	return c.f.child(labelValues, func(v []string) any { return &Counter{f: c.f, values: v} }).(*Counter)
}

// Inc adds 1.
func (c *Counter) Inc() { c.Add(1) }

// Add adds v, which must not be negative.
func (c *Counter) Add(v float64) {
	c.f.mustBeSeries(c.values)
	if v < 0 || math.IsNaN(v) {
		panic(fmt.Sprintf("metrics: counter %s cannot add %v", c.f.name, v))
	}
	c.v.add(v)
}

// Value returns the current value.
func (c *Counter) Value() float64 { return c.v.load() }

// mustBeSeries panics when a family with labels is used without With.
func (f *family) mustBeSeries(values []string) {
	if values == nil && len(f.labels) > 0 {
		panic(fmt.Sprintf("metrics: %s has labels %v: use With(...) to choose a series", f.name, f.labels))
	}
}

// Gauge is a value that goes up and down, such as a backlog size.
type Gauge struct {
	f      *family
	values []string
	v      atomicFloat
}

// Gauge registers a gauge. With label names, use With to pick a series.
func (r *Registry) Gauge(name, help string, labels ...string) *Gauge {
	f := &family{name: name, help: help, typ: typeGauge, labels: labels}
	r.register(f)
	g := &Gauge{f: f}
	if len(labels) == 0 {
		f.series[""] = g
	}
	return g
}

// GaugeFunc registers a gauge whose value is fn's result at each scrape. fn
// must be safe for concurrent use and should be quick; a NaN result is
// written as NaN.
func (r *Registry) GaugeFunc(name, help string, fn func() float64) {
	f := &family{name: name, help: help, typ: typeGauge, fn: fn}
	r.register(f)
}

// With returns the series of the gauge for the given label values.
func (g *Gauge) With(labelValues ...string) *Gauge {
	return g.f.child(labelValues, func(v []string) any { return &Gauge{f: g.f, values: v} }).(*Gauge)
}

// Set sets the value.
func (g *Gauge) Set(v float64) { g.f.mustBeSeries(g.values); g.v.store(v) }

// Add adds v (which may be negative).
func (g *Gauge) Add(v float64) { g.f.mustBeSeries(g.values); g.v.add(v) }

// Inc adds 1.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.Add(-1) }

// SetTime sets the value to t as Unix seconds (with fractions), the
// Prometheus convention for timestamps such as "last success".
func (g *Gauge) SetTime(t time.Time) { g.Set(float64(t.UnixNano()) / 1e9) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return g.v.load() }

// Histogram counts observations, such as latencies, in cumulative buckets.
type Histogram struct {
	f      *family
	values []string

	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

// DefaultBuckets suit latencies in seconds, from 5 ms to 10 minutes.
var DefaultBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// Histogram registers a histogram with the given upper bucket bounds (sorted,
// distinct; nil means DefaultBuckets; +Inf is implied). With label names, use
// With to pick a series.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *Histogram {
	if buckets == nil {
		buckets = DefaultBuckets
	}
	buckets = slices.Clone(buckets)
	if n := len(buckets); n > 0 && math.IsInf(buckets[n-1], 1) {
		buckets = buckets[:n-1]
	}
	for i, b := range buckets {
		if math.IsNaN(b) || (i > 0 && b <= buckets[i-1]) {
			panic(fmt.Sprintf("metrics: histogram %s: buckets must be sorted and distinct: %v", name, buckets))
		}
	}
	f := &family{name: name, help: help, typ: typeHistogram, labels: labels, buckets: buckets}
	r.register(f)
	h := f.newHistogram(nil)
	if len(labels) == 0 {
		f.series[""] = h
	}
	return h
}

func (f *family) newHistogram(values []string) *Histogram {
	return &Histogram{f: f, values: values, counts: make([]uint64, len(f.buckets)+1)}
}

// With returns the series of the histogram for the given label values.
func (h *Histogram) With(labelValues ...string) *Histogram {
	return h.f.child(labelValues, func(v []string) any { return h.f.newHistogram(v) }).(*Histogram)
}

// Observe adds one observation.
func (h *Histogram) Observe(v float64) {
	h.f.mustBeSeries(h.values)
	i := sort.SearchFloat64s(h.f.buckets, v) // first bound >= v: "le" is inclusive
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.count++
	h.mu.Unlock()
}

// ObserveDuration adds d in seconds.
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(d.Seconds()) }

// snapshot returns cumulative bucket counts, the sum and the count.
func (h *Histogram) snapshot() ([]uint64, float64, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cum := make([]uint64, len(h.counts))
	var n uint64
	for i, c := range h.counts {
		n += c
		cum[i] = n
	}
	return cum, h.sum, h.count
}

// ContentType is the media type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteTo writes every metric in the text exposition format, families sorted
// by name and series by label values. Families with labels but no series yet
// are written with their HELP and TYPE lines only.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	fams := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	sort.Slice(fams, func(i, j int) bool { return fams[i].name < fams[j].name })
	var b bytes.Buffer
	for _, f := range fams {
		f.write(&b)
	}
	n, err := w.Write(b.Bytes())
	return int64(n), err
}

func (f *family) write(b *bytes.Buffer) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.typ)
	if f.fn != nil {
		writeSample(b, f.name, nil, nil, "", "", f.fn())
		return
	}
	f.mu.Lock()
	keys := make([]string, 0, len(f.series))
	for k := range f.series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	series := make([]any, len(keys))
	for i, k := range keys {
		series[i] = f.series[k]
	}
	f.mu.Unlock()
	for _, s := range series {
		switch s := s.(type) {
		case *Counter:
			writeSample(b, f.name, f.labels, s.values, "", "", s.v.load())
		case *Gauge:
			writeSample(b, f.name, f.labels, s.values, "", "", s.v.load())
		case *Histogram:
			cum, sum, count := s.snapshot()
			for i, bound := range f.buckets {
				writeSample(b, f.name+"_bucket", f.labels, s.values, "le", formatFloat(bound), float64(cum[i]))
			}
			writeSample(b, f.name+"_bucket", f.labels, s.values, "le", "+Inf", float64(cum[len(cum)-1]))
			writeSample(b, f.name+"_sum", f.labels, s.values, "", "", sum)
			writeSample(b, f.name+"_count", f.labels, s.values, "", "", float64(count))
		}
	}
}

// writeSample writes one line: name{labels,extra="v"} value.
func writeSample(b *bytes.Buffer, name string, labels, values []string, extraName, extraValue string, v float64) {
	b.WriteString(name)
	if len(labels) > 0 || extraName != "" {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(b, `%s="%s"`, l, escapeLabel(values[i]))
		}
		if extraName != "" {
			if len(labels) > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(b, `%s="%s"`, extraName, extraValue)
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// Handler serves the metrics to GET and HEAD requests.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
			return
		}
		var b bytes.Buffer
		r.WriteTo(&b)
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		if req.Method == http.MethodHead {
			return
		}
		w.Write(b.Bytes())
	})
}

// Serve listens on addr (host:port; port 0 picks a free one) and serves the
// metrics at /metrics until ctx ends. It returns once listening, with the
// address listened on and a function that waits for the server to stop.
func (r *Registry) Serve(ctx context.Context, addr string) (net.Addr, func() error, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", r.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		http.Error(w, "erpsync metrics are at /metrics", http.StatusNotFound)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(l)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	var once sync.Once
	var serveErr error
	wait := func() error {
		once.Do(func() { serveErr = <-done })
		return serveErr
	}
	return l.Addr(), wait, nil
}
