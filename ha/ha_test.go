package ha_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/orderweave/erpsync/ha"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

// Short timings, so that every case takes seconds: the same proportions as
// the defaults (Every + QueryTimeout well below DeadAfter).
const (
	every        = 200 * time.Millisecond
	queryTimeout = 400 * time.Millisecond
	deadAfter    = 1500 * time.Millisecond
	// grace is how long a lock found free is held before its term starts.
	grace = every + queryTimeout
)

func TestLockName(t *testing.T) {
	long := strings.Repeat("d", 64)
	tests := []struct {
		name, database, tenant, want string
	}{
		{name: "fits", database: "_1bd3e0294da19198", tenant: "acme", want: "erpsync:_1bd3e0294da19198:acme"},
		{name: "exactly 64", database: strings.Repeat("d", 49), tenant: "acmeco", want: "erpsync:" + strings.Repeat("d", 49) + ":acmeco"},
		{name: "too long: hashed", database: long, tenant: "acme"},
		{name: "long tenant: hashed", database: "_1bd3e0294da19198", tenant: strings.Repeat("t", 60)},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ha.LockName(tt.database, tt.tenant)
			if len(got) > 64 || !strings.HasPrefix(got, "erpsync:") {
				t.Errorf("LockName = %q (%d characters): want at most 64, starting erpsync:", got, len(got))
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("LockName = %q, want %q", got, tt.want)
			}
			if seen[got] {
				t.Errorf("LockName = %q for two sites", got)
			}
			seen[got] = true
			if again := ha.LockName(tt.database, tt.tenant); again != got {
				t.Errorf("LockName is not stable: %q then %q", got, again)
			}
		})
	}
	if ha.LockName(long, "a") == ha.LockName(long, "b") {
		t.Error("two tenants of one long-named database share a lock name")
	}
}

func TestNewRefusesTimingsThatAllowTwoActives(t *testing.T) {
	tests := []struct {
		name    string
		opts    ha.Options
		wantErr bool
	}{
		{name: "defaults", opts: ha.Options{Name: "erpsync:x"}},
		{name: "check slower than dead-after", opts: ha.Options{Name: "erpsync:x", Every: 2 * time.Second, QueryTimeout: 2 * time.Second, DeadAfter: 3 * time.Second}, wantErr: true},
		{name: "no name", opts: ha.Options{}, wantErr: true},
		{name: "name too long", opts: ha.Options{Name: strings.Repeat("n", 65)}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ha.New(nil, tt.opts)
			if (err != nil) != tt.wantErr {
				t.Errorf("New: %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// env is a database on the test server, a user that may only read it (as
// erpsync's), and a root pool for the test's own statements.
type env struct {
	t      *testing.T
	root   *sql.DB
	dsn    string // the read-only user's
	lock   string // the lock name
	events *events
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rootDSN := mariadbtest.NewDatabase(t)
	root, err := sql.Open("mysql", rootDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	cfg, err := mysql.ParseDSN(rootDSN)
	if err != nil {
		t.Fatal(err)
	}
	user := fmt.Sprintf("ha_%d", time.Now().UnixNano()%1e9)
	if err := erpnext.CreateReadOnlyUser(context.Background(), root, cfg.DBName, user, "ha-pass-9"); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, root: root, dsn: fmt.Sprintf("%s:ha-pass-9@tcp(%s)/%s", user, cfg.Addr, cfg.DBName),
		lock: ha.LockName(cfg.DBName, "acme"), events: &events{}}
}

// pool opens a pool for the read-only user at addr ("" for the server).
func (e *env) pool(addr string) *sql.DB {
	e.t.Helper()
	dsn := e.dsn
	if addr != "" {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			e.t.Fatal(err)
		}
		cfg.Addr = addr
		dsn = cfg.FormatDSN()
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db
}

// events records what the processes of a case did, in order.
type events struct {
	mu      sync.Mutex
	log     []event
	changes map[string][]ha.Status
}

type event struct {
	who   string
	what  string // "start" or "end" of an active term
	at    time.Time
	since time.Duration // the term's server clock offset, at start
}

func (ev *events) add(who, what string, term *ha.Term) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	e := event{who: who, what: what, at: time.Now()}
	if term != nil {
		e.since = term.Offset()
	}
	ev.log = append(ev.log, e)
}

func (ev *events) changed(who string, s ha.Status) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.changes == nil {
		ev.changes = map[string][]ha.Status{}
	}
	ev.changes[who] = append(ev.changes[who], s)
}

// starts returns when who became active, in order.
func (ev *events) starts(who string) []time.Time {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var out []time.Time
	for _, e := range ev.log {
		if e.who == who && e.what == "start" {
			out = append(out, e.at)
		}
	}
	return out
}

// ends returns when who stopped being active, in order.
func (ev *events) ends(who string) []time.Time {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var out []time.Time
	for _, e := range ev.log {
		if e.who == who && e.what == "end" {
			out = append(out, e.at)
		}
	}
	return out
}

// checkOneActive fails when two processes were active at once.
func (ev *events) checkOneActive(t *testing.T) {
	t.Helper()
	ev.mu.Lock()
	defer ev.mu.Unlock()
	active := ""
	for _, e := range ev.log {
		switch {
		case e.what == "start" && active != "":
			t.Errorf("%s became active at %s while %s was still active", e.who, e.at.Format("15:04:05.000"), active)
		case e.what == "start":
			active = e.who
		case e.what == "end" && e.who == active:
			active = ""
		}
	}
}

// proc is one process's Lock, running until the case ends or stop.
type proc struct {
	name string
	lock *ha.Lock
	logs *lockedBuffer
	stop context.CancelFunc
	done chan error
}

// start runs a Lock for who on db; its active term lasts until its
// context ends.
func (e *env) start(who string, db *sql.DB, clock func() time.Time) *proc {
	e.t.Helper()
	logs := &lockedBuffer{}
	l, err := ha.New(db, ha.Options{
		Name: e.lock, Site: "shop", Logger: slog.New(slog.NewTextHandler(logs, nil)), Clock: clock,
		Every: every, DeadAfter: deadAfter, QueryTimeout: queryTimeout,
		OnChange: func(s ha.Status) { e.events.changed(who, s) },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{name: who, lock: l, logs: logs, stop: cancel, done: make(chan error, 1)}
	go func() {
		p.done <- l.Run(ctx, func(ctx context.Context, term *ha.Term) error {
			e.events.add(who, "start", term)
			<-ctx.Done()
			e.events.add(who, "end", nil)
			return nil
		})
	}()
	e.t.Cleanup(func() { p.halt(e.t) })
	return p
}

// halt stops the process and waits for it.
func (p *proc) halt(t *testing.T) {
	t.Helper()
	if p.done == nil {
		return
	}
	p.stop()
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s: Run: %v", p.name, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s: Run did not return within 10s of its context ending", p.name)
	}
	p.done = nil
}

// waitActive waits until who has become active n times, and returns when
// it did the last time.
func (e *env) waitActive(who string, n int, within time.Duration) time.Time {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if s := e.events.starts(who); len(s) >= n {
			return s[n-1]
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s did not become active (time %d) within %s", who, n, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitNextTerm waits for the next active term after a's first: b's, or
// either's when either.
func (e *env) waitNextTerm(either bool, within time.Duration) time.Time {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if s := e.events.starts("b"); len(s) > 0 {
			return s[0]
		}
		if s := e.events.starts("a"); either && len(s) > 1 {
			return s[1]
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no new active term within %s", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStandbyOf waits until who, a standby, has seen a holder.
func (e *env) waitStandbyOf(who string, within time.Duration) ha.Status {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		e.events.mu.Lock()
		ch := e.events.changes[who]
		e.events.mu.Unlock()
		for _, s := range ch {
			if s.Role == ha.Standby && s.ConnID != 0 {
				return s
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s never saw another process hold the lock within %s", who, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holderConn returns the connection id holding the lock.
func (e *env) holderConn() int64 {
	e.t.Helper()
	var id sql.NullInt64
	if err := e.root.QueryRow("SELECT IS_USED_LOCK(?)", e.lock).Scan(&id); err != nil {
		e.t.Fatal(err)
	}
	return id.Int64
}

// TestElection runs two processes for one site and ends the active one's
// hold in each way it can end; the standby must take over in time, and never
// while the other is still active.
func TestElection(t *testing.T) {
	tests := []struct {
		name string
		// end ends a's hold; a runs through proxy p when viaProxy.
		end      func(t *testing.T, e *env, a *proc, p *dbProxy)
		viaProxy bool
		// either: a, still running, may take the lock back before b.
		either bool
		// within: a new term must start this soon after end.
		within time.Duration
		// killed: b must end a's connection as a dead holder.
		killed bool
	}{
		{
			name:   "the active one stops: released at once",
			end:    func(t *testing.T, e *env, a *proc, p *dbProxy) { a.halt(t) },
			within: 2*every + grace,
		},
		{
			// a lives on and stands by, so either may win the lock next.
			name: "the server ends the active one's connection: it loses the lock and stops at once",
			end: func(t *testing.T, e *env, a *proc, p *dbProxy) {
				if _, err := e.root.Exec(fmt.Sprintf("KILL CONNECTION %d", e.holderConn())); err != nil {
					t.Fatal(err)
				}
			},
			either: true, within: 3*every + grace,
		},
		{
			// The blackhole toxic passes nothing on and closes nothing,
			// even when a closes its side: a network that silently drops
			// everything. a's check gets no answer, so it stops; the server
			// still sees a's connection, idle, until b ends it.
			name:     "the active one is cut off silently: it stops, the standby ends its connection after dead-after",
			viaProxy: true,
			end: func(t *testing.T, e *env, a *proc, p *dbProxy) {
				p.addToxic(t, "cut_down", "blackhole", "downstream", nil)
				p.addToxic(t, "cut_up", "blackhole", "upstream", nil)
			},
			within: deadAfter + 3*every + time.Second, killed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			var p *dbProxy
			aDB := e.pool("")
			if tt.viaProxy {
				cfg, err := mysql.ParseDSN(e.dsn)
				if err != nil {
					t.Fatal(err)
				}
				p = startDBProxy(t, cfg.Addr)
				aDB = e.pool(p.addr)
			}
			a := e.start("a", aDB, nil)
			e.waitActive("a", 1, 5*time.Second)
			b := e.start("b", e.pool(""), nil)
			seen := e.waitStandbyOf("b", 5*time.Second)
			if seen.Host == "" || seen.Since.IsZero() {
				t.Errorf("b's standby status %+v: want the active one's host and since when it saw it", seen)
			}
			if st := a.lock.Status(); st.Role != ha.Active || st.Host == "" {
				t.Errorf("a's status %+v: want active, with its host", st)
			}
			time.Sleep(3 * every) // a few checks while all is well: b must stay standby
			if len(e.events.starts("b")) != 0 {
				t.Fatal("b became active while a held the lock")
			}

			ended := time.Now()
			tt.end(t, e, a, p)
			next := e.waitNextTerm(tt.either, tt.within+5*time.Second)
			took := next.Sub(ended)
			t.Logf("takeover after %s", took.Round(time.Millisecond))
			if took > tt.within {
				t.Errorf("a new term began %s after a's hold ended, want within %s", took.Round(time.Millisecond), tt.within)
			}
			if len(e.events.ends("a")) == 0 {
				t.Error("a's active term did not end")
			}
			e.events.checkOneActive(t)
			logs := b.logs.String()
			if killed := strings.Contains(logs, "has not used its lock connection"); killed != tt.killed {
				t.Errorf("b ended a dead holder: %v, want %v; b's log:\n%s", killed, tt.killed, logs)
			}
			if a.done != nil && !strings.Contains(a.logs.String(), "lost the lock") {
				t.Errorf("a did not log that it lost the lock:\n%s", a.logs.String())
			}
			if tt.either {
				return
			}
			if st := b.lock.Status(); st.Role != ha.Active {
				t.Errorf("b's status %+v, want active", st)
			}
		})
	}
}

// TestStandbyEndsASilentHolder: a connection of the same database user
// that holds the lock and then goes quiet (its process frozen, its network
// gone) is ended by the standby after dead-after, without any privilege
// beyond SELECT, and the standby takes the lock.
func TestStandbyEndsASilentHolder(t *testing.T) {
	e := newEnv(t)
	quiet, err := e.pool("").Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	var got int
	if err := quiet.QueryRowContext(context.Background(), "SELECT GET_LOCK(?, 0)", e.lock).Scan(&got); err != nil || got != 1 {
		t.Fatalf("GET_LOCK: %d, %v", got, err)
	}
	quietAt := time.Now()
	b := e.start("b", e.pool(""), nil)
	seen := e.waitStandbyOf("b", 5*time.Second)
	if seen.ConnID != e.holderConn() {
		t.Errorf("b saw connection %d hold the lock, want %d", seen.ConnID, e.holderConn())
	}
	took := e.waitActive("b", 1, deadAfter+5*time.Second).Sub(quietAt)
	if took < deadAfter || took > deadAfter+3*every+time.Second {
		t.Errorf("b took over %s after the holder went quiet, want after %s and soon after", took.Round(time.Millisecond), deadAfter)
	}
	if !strings.Contains(b.logs.String(), "level=WARN") || !strings.Contains(b.logs.String(), "KILL CONNECTION") {
		t.Errorf("b did not warn that it ended the dead holder:\n%s", b.logs.String())
	}
	if err := quiet.PingContext(context.Background()); err == nil {
		t.Error("the quiet holder's connection still works: b did not end it")
	}
}

// TestTermNowIsTheServerClock: versions come from Term.Now, which follows
// the database server's clock whatever the host's clock says.
func TestTermNowIsTheServerClock(t *testing.T) {
	tests := []struct {
		name string
		skew time.Duration
	}{
		{name: "host clock right", skew: 0},
		{name: "host clock an hour behind", skew: -time.Hour},
		{name: "host clock 90s ahead", skew: 90 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			clock := func() time.Time { return time.Now().Add(tt.skew) }
			terms := make(chan *ha.Term, 1)
			l, err := ha.New(e.pool(""), ha.Options{Name: e.lock, Clock: clock, Every: every, DeadAfter: deadAfter, QueryTimeout: queryTimeout})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- l.Run(ctx, func(ctx context.Context, term *ha.Term) error {
					terms <- term
					<-ctx.Done()
					return nil
				})
			}()
			defer func() { cancel(); <-done }()
			term := <-terms
			time.Sleep(3 * every) // a few checks re-measure the offset
			for range 3 {
				var serverUS int64
				before := term.Now()
				if err := e.root.QueryRow("SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))").Scan(&serverUS); err != nil {
					t.Fatal(err)
				}
				after := term.Now()
				server := time.UnixMicro(serverUS)
				if server.Before(before.Add(-50*time.Millisecond)) || server.After(after.Add(50*time.Millisecond)) {
					t.Errorf("server clock %s, Term.Now between %s and %s: off by more than 50ms (host clock skewed %s)",
						server.Format(time.RFC3339Nano), before.Format(time.RFC3339Nano), after.Format(time.RFC3339Nano), tt.skew)
				}
			}
			if d := term.Start.Sub(time.Now()); d < -10*time.Second || d > time.Second {
				t.Errorf("Term.Start %s is not the server's clock at takeover (now %s)", term.Start, time.Now())
			}
		})
	}
}

// TestCheck: the check takes and releases a test lock and says who holds
// the site's.
func TestCheck(t *testing.T) {
	e := newEnv(t)
	db := e.pool("")
	ctx := context.Background()
	rep, err := ha.Check(ctx, db, e.lock)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if rep.Holder.ConnID != 0 || rep.Galera {
		t.Errorf("Check with nobody active: %+v", rep)
	}
	e.start("a", e.pool(""), nil)
	e.waitActive("a", 1, 5*time.Second)
	rep, err = ha.Check(ctx, db, e.lock)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if rep.Holder.ConnID != e.holderConn() || !rep.Holder.Visible || rep.Holder.Host == "" {
		t.Errorf("Check while a is active: %+v, want a's connection %d and host", rep, e.holderConn())
	}
	var free int
	if err := e.root.QueryRow("SELECT IS_FREE_LOCK(?)", e.lock+":check").Scan(&free); err != nil || free != 1 {
		t.Errorf("the check's test lock is not free afterwards: %d %v", free, err)
	}
}

// lockedBuffer collects a Lock's log while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dbProxy is a toxiproxy server in the test process in front of MariaDB.
type dbProxy struct {
	proxy *toxiproxy.Proxy
	addr  string
}

func startDBProxy(t *testing.T, upstream string) *dbProxy {
	t.Helper()
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "mariadb", "127.0.0.1:0", upstream)
	if err := srv.Collection.Add(p, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Collection.Clear() })
	return &dbProxy{proxy: p, addr: p.Listen}
}

func (p *dbProxy) addToxic(t *testing.T, name, typ, stream string, attrs map[string]any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
		t.Fatalf("toxiproxy: add %s: %v", b, err)
	}
}

// blackholeToxic drops every byte and never closes the other side, even
// when this side closes (toxiproxy's timeout toxic passes a close on): the
// peer's connection stays open and idle, as when a network silently drops
// a host.
type blackholeToxic struct{}

func (*blackholeToxic) Pipe(stub *toxics.ToxicStub) {
	input := stub.Input
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-input:
			if c == nil {
				input = nil // closed: wait for the interrupt, closing nothing
			}
		}
	}
}
