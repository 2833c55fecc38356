package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"
)

// TestFaultToxiproxy puts toxiproxy (its server, run in the test process)
// between the agent and MariaDB and, during a bulk change, cuts the
// connection for a few seconds (every byte dropped, or the proxy gone),
// slows every answer down, or throttles the bandwidth. Each case ends with
// the receiver equal to the database.
func TestFaultToxiproxy(t *testing.T) {
	t.Parallel() // its own proxy; mostly waits out its faults (see the Makefile's -parallel)
	tests := []struct {
		name   string
		inject func(t *testing.T, p *dbProxy)
		hold   time.Duration // how long the fault stays on from its start, at least
		clear  func(t *testing.T, p *dbProxy)
		// during: the receiver must come to equal the database while the
		// fault is still on; clear only runs afterwards.
		during bool
		items  int // created and changed by the bulk change; default faultItems
		// recovery bounds the wait for the receiver to equal the database;
		// default faultRecoveryLimit.
		recovery time.Duration
	}{
		{
			// The timeout toxic with timeout 0 takes every byte in and
			// passes none on, both ways, until it is removed, which closes
			// the connections it held: a network that silently stops.
			name: "cut: nothing passes 3s",
			inject: func(t *testing.T, p *dbProxy) {
				p.addToxic(t, "cut_down", "timeout", "downstream", map[string]any{"timeout": 0})
				p.addToxic(t, "cut_up", "timeout", "upstream", map[string]any{"timeout": 0})
			},
			hold: 3 * time.Second,
			clear: func(t *testing.T, p *dbProxy) {
				p.removeToxic(t, "cut_down")
				p.removeToxic(t, "cut_up")
			},
		},
		{
			// The proxy disabled: its connections closed, new ones refused.
			name:   "cut: connections refused 3s",
			inject: func(t *testing.T, p *dbProxy) { p.proxy.Stop() },
			hold:   3 * time.Second,
			clear:  func(t *testing.T, p *dbProxy) { must(t, p.proxy.Start()) },
		},
		{
			// Every answer 200ms late: a page of erp.page_size items takes
			// five queries, a second; the agent must come to equal the
			// database with the latency on. Fewer items, and longer to
			// get there: a poll that began before the items were created
			// builds each of them once per source it finds them in (Item
			// Price, Bin), and the next poll once more for the bulk
			// update, so under the whole suite's load this took from 5 s
			// to just over 30 s.
			name: "latency 200ms ±50ms",
			inject: func(t *testing.T, p *dbProxy) {
				p.addToxic(t, "slow", "latency", "downstream", map[string]any{"latency": 200, "jitter": 50})
			},
			during:   true,
			items:    faultItems / 4,
			recovery: 90 * time.Second,
			clear:    func(t *testing.T, p *dbProxy) { p.removeToxic(t, "slow") },
		},
		{
			name: "bandwidth 16 KB/s",
			inject: func(t *testing.T, p *dbProxy) {
				p.addToxic(t, "narrow", "bandwidth", "downstream", map[string]any{"rate": 16})
			},
			hold:  faultMinDuration,
			clear: func(t *testing.T, p *dbProxy) { p.removeToxic(t, "narrow") },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaultRun(t, faultOptions{})
			f.recoveryLimit = tc.recovery
			p := startDBProxy(t, f.dbAddr())
			f.setDBAddr(p.addr)
			f.Start()
			f.waitLog("initial sync done", 30*time.Second)
			tc.inject(t, p)
			injected := time.Now()
			var changeTook time.Duration
			fig := f.measure(func() int {
				items := faultItems
				if tc.items > 0 {
					items = tc.items
				}
				f.retryDB("seed", func() error { return f.Site.Seed(context.Background(), items) })
				n := f.updateAndDelete()
				changeTook = time.Since(injected)
				return n
			}, func(expected) {
				time.Sleep(time.Until(injected.Add(tc.hold)))
			}, func() {
				if !tc.during {
					tc.clear(t, p)
				}
			})
			if tc.during {
				tc.clear(t, p)
			}
			f.drained()
			f.AssertMatchesDatabase()
			f.Stop()
			log := f.Log()
			fig.note = fmt.Sprintf("bulk_change_took=%s outage_logged=%d error_lines=%d", changeTook.Round(100*time.Millisecond),
				strings.Count(log, "detection failed; retrying with backoff"), strings.Count(log, "level=ERROR"))
			f.report("toxiproxy "+tc.name, fig)
			if lines := grepLines(log, "detection failed", 2); lines != "" {
				t.Logf("the sync log says:\n%s", lines)
			}
			if st := f.obStats(); st.Dead != 0 {
				t.Errorf("%d messages dead-lettered", st.Dead)
			}
		})
	}
}

// dbProxy is a toxiproxy server in the test process with one proxy, on a
// free loopback port, in front of a MariaDB server.
type dbProxy struct {
	srv   *toxiproxy.ApiServer
	proxy *toxiproxy.Proxy
	addr  string // host:port the proxy listens on, kept when it is stopped and started again
}

// startDBProxy starts a proxy in front of upstream (host:port) until the
// end of the test.
func startDBProxy(t *testing.T, upstream string) *dbProxy {
	t.Helper()
	// zerolog, which only toxiproxy uses here, logs at trace level by
	// default, to stderr, through its global logger.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "mariadb", "127.0.0.1:0", upstream)
	must(t, srv.Collection.Add(p, true))
	t.Cleanup(func() { must(t, srv.Collection.Clear()) })
	return &dbProxy{srv: srv, proxy: p, addr: p.Listen}
}

// addToxic adds a toxic of type typ on stream ("upstream": from the agent
// to the server, "downstream": back) with attributes attrs.
func (p *dbProxy) addToxic(t *testing.T, name, typ, stream string, attrs map[string]any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	must(t, err)
	if _, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
		t.Fatalf("toxiproxy: add %s: %v", b, err)
	}
}

// removeToxic removes the toxic name.
func (p *dbProxy) removeToxic(t *testing.T, name string) {
	t.Helper()
	if err := p.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		t.Fatalf("toxiproxy: remove %s: %v", name, err)
	}
}

// dbAddr returns the host:port of the database in erp.dsn.
func (f *faultRun) dbAddr() string {
	f.t.Helper()
	cfg, err := mysql.ParseDSN(f.DSN)
	must(f.t, err)
	return cfg.Addr
}

// setDBAddr points erp.dsn at another host:port (a proxy), before the agent
// starts.
func (f *faultRun) setDBAddr(addr string) {
	f.t.Helper()
	old := "@tcp(" + f.dbAddr() + ")/"
	editSettings(f.t, f.Env, old, "@tcp("+addr+")/")
	f.DSN = strings.Replace(f.DSN, old, "@tcp("+addr+")/", 1)
}
