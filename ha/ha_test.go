package ha_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
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

func TestNewConnRefusesTimingsThatAllowTwoActives(t *testing.T) {
	tests := []struct {
		name    string
		opts    ha.ConnOptions
		wantErr bool
	}{
		{name: "defaults", opts: ha.ConnOptions{}},
		{name: "check slower than dead-after", opts: ha.ConnOptions{Every: 2 * time.Second, QueryTimeout: 2 * time.Second, DeadAfter: 3 * time.Second}, wantErr: true},
		{name: "short timings in proportion", opts: ha.ConnOptions{Every: every, QueryTimeout: queryTimeout, DeadAfter: deadAfter}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ha.NewConn(nil, tt.opts)
			if (err != nil) != tt.wantErr {
				t.Errorf("NewConn: %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestLockRefusesBadNames(t *testing.T) {
	c, err := ha.NewConn(nil, ha.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		lock    string
		wantErr bool
	}{
		{name: "fits", lock: "erpsync:x"},
		{name: "no name", lock: "", wantErr: true},
		{name: "name too long", lock: strings.Repeat("n", 65), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Lock(ha.Options{Name: tt.lock})
			if (err != nil) != tt.wantErr {
				t.Errorf("Lock: %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// env is a database on the test server, a user that may only read it (as
// erpsync's), and a root pool for the test's own statements.
type env struct {
	t      *testing.T
	root   *sql.DB
	user   string // the read-only user
	dsn    string // the read-only user's
	db     string // the database's name
	lock   string // the lock name of the single-lock cases
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
	return &env{t: t, root: root, user: user, dsn: fmt.Sprintf("%s:ha-pass-9@tcp(%s)/%s", user, cfg.Addr, cfg.DBName), db: cfg.DBName,
		lock: ha.LockName(cfg.DBName, "acme"), events: &events{}}
}

// lockNames returns n lock names of the env's database, one per tenant.
func (e *env) lockNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = ha.LockName(e.db, fmt.Sprintf("t%03d", i))
	}
	return names
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

// conn returns a lock connection on db with the short timings, logging to
// logs.
func (e *env) conn(db *sql.DB, logs *lockedBuffer) *ha.Conn {
	e.t.Helper()
	c, err := ha.NewConn(db, ha.ConnOptions{Logger: slog.New(slog.NewTextHandler(logs, nil)), Every: every, DeadAfter: deadAfter, QueryTimeout: queryTimeout})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// connections counts the read-only user's connections to the server.
func (e *env) connections() int {
	e.t.Helper()
	var n int
	if err := e.root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", e.user).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// events records what the processes of a case did, in order.
type events struct {
	mu      sync.Mutex
	log     []event
	changes map[string][]ha.Status
}

type event struct {
	who   string
	lock  string
	what  string // "start" or "end" of an active term
	at    time.Time
	since time.Duration // the term's server clock offset, at start
}

func (ev *events) add(who, lock, what string, term *ha.Term) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	e := event{who: who, lock: lock, what: what, at: time.Now()}
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

// starts returns when who became active ("" lock: for any lock), in order.
func (ev *events) starts(who string) []time.Time { return ev.of(who, "", "start") }

// ends returns when who stopped being active, in order.
func (ev *events) ends(who string) []time.Time { return ev.of(who, "", "end") }

// of returns when who did what with lock ("": any), in order.
func (ev *events) of(who, lock, what string) []time.Time {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var out []time.Time
	for _, e := range ev.log {
		if e.who == who && e.what == what && (lock == "" || e.lock == lock) {
			out = append(out, e.at)
		}
	}
	return out
}

// activeNow returns who is active for lock now, by the events.
func (ev *events) activeNow(lock string) []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	active := map[string]bool{}
	for _, e := range ev.log {
		if e.lock == lock {
			active[e.who] = e.what == "start"
		}
	}
	var out []string
	for who, on := range active {
		if on {
			out = append(out, who)
		}
	}
	return out
}

// checkOneActive fails when two processes were active for a lock at once.
func (ev *events) checkOneActive(t *testing.T) {
	t.Helper()
	ev.mu.Lock()
	defer ev.mu.Unlock()
	active := map[string]string{} // by lock
	for _, e := range ev.log {
		switch {
		case e.what == "start" && active[e.lock] != "":
			t.Errorf("%s became active for %s at %s while %s was still active", e.who, e.lock, e.at.Format("15:04:05.000"), active[e.lock])
		case e.what == "start":
			active[e.lock] = e.who
		case e.what == "end" && e.who == active[e.lock]:
			active[e.lock] = ""
		}
	}
}

// proc is one process's Lock, running until the case ends or stop.
type proc struct {
	name string
	conn *ha.Conn
	lock *ha.Lock
	logs *lockedBuffer
	stop context.CancelFunc
	done chan error
}

// start runs a Lock for who on a lock connection of its own on db; its
// active term lasts until its context ends.
func (e *env) start(who string, db *sql.DB, clock func() time.Time) *proc {
	e.t.Helper()
	logs := &lockedBuffer{}
	return e.startOn(who, e.conn(db, logs), logs, e.lock, clock, nil)
}

// startOn runs a Lock of name for who on c; its active term lasts until its
// context ends, and then returns endErr.
func (e *env) startOn(who string, c *ha.Conn, logs *lockedBuffer, name string, clock func() time.Time, endErr error) *proc {
	e.t.Helper()
	l, err := c.Lock(ha.Options{
		Name: name, Site: "shop-" + name, Logger: slog.New(slog.NewTextHandler(logs, nil)), Clock: clock,
		OnChange: func(s ha.Status) { e.events.changed(who+"|"+name, s) },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{name: who, conn: c, lock: l, logs: logs, stop: cancel, done: make(chan error, 1)}
	go func() {
		p.done <- l.Run(ctx, func(ctx context.Context, term *ha.Term) error {
			e.events.add(who, name, "start", term)
			<-ctx.Done()
			e.events.add(who, name, "end", nil)
			return endErr
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
		if err != nil && !errors.Is(err, errStopped) {
			t.Errorf("%s: Run: %v", p.name, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s: Run did not return within 10s of its context ending", p.name)
	}
	p.done = nil
}

// errStopped is what the active terms of an exiting process return.
var errStopped = errors.New("the pipeline stopped")

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
		ch := e.events.changes[who+"|"+e.lock]
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
			l, err := e.conn(e.pool(""), &lockedBuffer{}).Lock(ha.Options{Name: e.lock, Clock: clock})
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

// group is one "process" with many sites on one database server: one lock
// connection on a pool of its own, one Lock per name on it.
type group struct {
	who   string
	conn  *ha.Conn
	logs  *lockedBuffer
	procs map[string]*proc // by lock name
}

// startGroup runs a Lock of each of names for who on one lock connection on
// db; each active term returns endErr when its context ends (errStopped:
// the Run ends, as a pipeline that exits).
func (e *env) startGroup(who string, db *sql.DB, names []string, endErr error) *group {
	e.t.Helper()
	g := &group{who: who, logs: &lockedBuffer{}, procs: map[string]*proc{}}
	g.conn = e.conn(db, g.logs)
	for _, name := range names {
		g.procs[name] = e.startOn(who, g.conn, g.logs, name, nil, endErr)
	}
	return g
}

// waitAllActive waits until who is active for every one of names.
func (e *env) waitAllActive(who string, names []string, within time.Duration) {
	e.t.Helper()
	e.waitUntil(fmt.Sprintf("%s active for all %d locks", who, len(names)), within, func() bool {
		for _, name := range names {
			if a := e.events.activeNow(name); len(a) != 1 || a[0] != who {
				return false
			}
		}
		return true
	})
}

// waitUntil waits for cond, giving up after within.
func (e *env) waitUntil(what string, within time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holders returns the connection holding each of names (0: free).
func (e *env) holders(names []string) map[string]int64 {
	e.t.Helper()
	out := map[string]int64{}
	for _, name := range names {
		var id sql.NullInt64
		if err := e.root.QueryRow("SELECT IS_USED_LOCK(?)", name).Scan(&id); err != nil {
			e.t.Fatal(err)
		}
		out[name] = id.Int64
	}
	return out
}

// oneHolder returns the one connection holding all of names, failing when
// they are held by several or some are free.
func (e *env) oneHolder(names []string) int64 {
	e.t.Helper()
	ids := map[int64]int{}
	for _, id := range e.holders(names) {
		ids[id]++
	}
	if len(ids) != 1 || ids[0] != 0 {
		e.t.Fatalf("the %d locks are held by connections %v (id: locks), want all by one", len(names), ids)
	}
	for id := range ids {
		return id
	}
	return 0
}

// TestManyLocksOneConnection: a process holds the locks of 50 sites on one
// connection, which a second process, standing by for the same 50, sees as
// the holder of each; when the server ends that connection, every one of
// the first one's active terms stops, and the standby takes every lock over,
// never while the first one still runs the site.
func TestManyLocksOneConnection(t *testing.T) {
	e := newEnv(t)
	names := e.lockNames(50)
	a := e.startGroup("a", e.pool(""), names, errStopped)
	e.waitAllActive("a", names, 15*time.Second)
	if n := e.connections(); n != 1 {
		t.Errorf("a holds %d locks on %d connections, want 1", len(names), n)
	}
	aConn := e.oneHolder(names)

	b := e.startGroup("b", e.pool(""), names, nil)
	e.waitUntil("b standing by for every lock, a being the holder", 15*time.Second, func() bool {
		for _, p := range b.procs {
			if st := p.lock.Status(); st.Role != ha.Standby || st.ConnID != aConn || st.Host == "" {
				return false
			}
		}
		return true
	})
	if n := e.connections(); n != 2 {
		t.Errorf("two processes standing for %d locks use %d connections, want 2", len(names), n)
	}
	time.Sleep(3 * every) // a few rounds while all is well: b must stay standby
	if got := e.oneHolder(names); got != aConn {
		t.Errorf("the locks moved to connection %d while a was well", got)
	}
	if s := e.events.starts("b"); len(s) != 0 {
		t.Fatalf("b became active %d times while a held the locks", len(s))
	}

	if _, err := e.root.Exec(fmt.Sprintf("KILL CONNECTION %d", aConn)); err != nil {
		t.Fatal(err)
	}
	for name, p := range a.procs {
		select {
		case err := <-p.done:
			p.done = nil
			if !errors.Is(err, errStopped) {
				t.Errorf("a's Run of %s: %v, want its active term's error", name, err)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("a's active term of %s did not stop after its connection was ended", name)
		}
	}
	if n := strings.Count(a.logs.String(), "lost the lock of site"); n != len(names) {
		t.Errorf("a logged %d lost locks, want %d", n, len(names))
	}
	e.waitAllActive("b", names, 15*time.Second)
	e.events.checkOneActive(t)
	if got := e.oneHolder(names); got == aConn {
		t.Error("the locks are still held by a's ended connection")
	}
	if n := e.connections(); n != 1 {
		t.Errorf("%d connections after a's Locks ended, want b's one", n)
	}
	if strings.Contains(b.logs.String(), "KILL CONNECTION") {
		t.Error("b ended a connection, though the server had ended a's")
	}
}

// TestStalledHolderOfManyLocks: a process holding many locks freezes (its
// lock connection goes quiet); the standby ends that one connection once,
// after DeadAfter and not before, and takes every lock over. When the frozen
// one wakes up, its first round finds its connection ended and every active
// term of it stops.
func TestStalledHolderOfManyLocks(t *testing.T) {
	e := newEnv(t)
	names := e.lockNames(20)
	a := e.startGroup("a", e.pool(""), names, nil)
	e.waitAllActive("a", names, 15*time.Second)
	b := e.startGroup("b", e.pool(""), names, nil)
	e.waitUntil("b standing by for every lock", 15*time.Second, func() bool {
		for _, p := range b.procs {
			if st := p.lock.Status(); st.Role != ha.Standby || st.ConnID == 0 {
				return false
			}
		}
		return true
	})
	aConn := e.oneHolder(names)

	resume := a.conn.Pause()
	// The connection went quiet at a's last round, before Pause returned:
	// TIME_MS is how long ago, as the standby reads it too. Reading the
	// clock before asking makes quiet no later than it was.
	asked := time.Now()
	var idleMS float64
	if err := e.root.QueryRow("SELECT TIME_MS FROM information_schema.PROCESSLIST WHERE ID = ?", aConn).Scan(&idleMS); err != nil {
		t.Fatal(err)
	}
	quiet := asked.Add(-time.Duration(idleMS * float64(time.Millisecond)))
	// a's terms go on while it is frozen: that is the one case where two
	// run a site at once, and why DeadAfter is long.
	e.waitUntil("b active for every lock", deadAfter+15*time.Second, func() bool {
		return len(e.events.starts("b")) == len(names)
	})
	for _, at := range e.events.starts("b") {
		if at.Sub(quiet) < deadAfter {
			t.Errorf("b took a lock over %s after a went quiet, before dead-after (%s)", at.Sub(quiet).Round(time.Millisecond), deadAfter)
			break
		}
	}
	if n := strings.Count(b.logs.String(), "KILL CONNECTION"); n != 1 {
		t.Errorf("b ended %d connections, want a's one for all %d locks:\n%s", n, len(names), b.logs.String())
	}
	if !strings.Contains(b.logs.String(), fmt.Sprintf("KILL CONNECTION %d", aConn)) || !strings.Contains(b.logs.String(), "level=WARN") {
		t.Errorf("b did not warn that it ended a's connection %d:\n%s", aConn, b.logs.String())
	}

	resume()
	e.waitUntil("a's terms all ended once it woke up", 15*time.Second, func() bool {
		return len(e.events.ends("a")) == len(names)
	})
	time.Sleep(3 * every) // a stands by: it must not take any lock back
	for _, name := range names {
		if got := e.events.activeNow(name); len(got) != 1 || got[0] != "b" {
			t.Errorf("%s: active %v, want b alone", name, got)
		}
	}
	if n := strings.Count(a.logs.String(), "lost the lock of site"); n != len(names) {
		t.Errorf("a logged %d lost locks, want %d", n, len(names))
	}
}

// TestReleaseOneLock: a Lock whose Run ends (its site removed) gives its
// lock back on the shared connection, which goes on holding the others; the
// connection closes when the last Lock's Run ends.
func TestReleaseOneLock(t *testing.T) {
	e := newEnv(t)
	names := e.lockNames(3)
	a := e.startGroup("a", e.pool(""), names, nil)
	e.waitAllActive("a", names, 15*time.Second)
	aConn := e.oneHolder(names)
	b := e.startGroup("b", e.pool(""), names, nil)
	e.waitUntil("b standing by for every lock", 15*time.Second, func() bool {
		for _, p := range b.procs {
			if st := p.lock.Status(); st.Role != ha.Standby || st.ConnID == 0 {
				return false
			}
		}
		return true
	})

	a.procs[names[1]].halt(t)
	e.waitUntil("b active for the lock given back", 15*time.Second, func() bool {
		got := e.events.activeNow(names[1])
		return len(got) == 1 && got[0] == "b"
	})
	time.Sleep(3 * every) // a few rounds: the other two stay a's
	held := e.holders(names)
	for _, name := range []string{names[0], names[2]} {
		if held[name] != aConn {
			t.Errorf("%s is held by connection %d, want a's %d", name, held[name], aConn)
		}
		if got := e.events.activeNow(name); len(got) != 1 || got[0] != "a" {
			t.Errorf("%s: active %v, want a alone", name, got)
		}
	}
	if held[names[1]] == aConn || held[names[1]] == 0 {
		t.Errorf("%s is held by connection %d, want b's", names[1], held[names[1]])
	}
	if n := e.connections(); n != 2 {
		t.Errorf("%d connections, want a's and b's", n)
	}
	if strings.Contains(a.logs.String(), "lost the lock") {
		t.Errorf("a lost a lock:\n%s", a.logs.String())
	}

	a.procs[names[0]].halt(t)
	a.procs[names[2]].halt(t)
	e.waitUntil("a's connection closed with its last Lock", 15*time.Second, func() bool { return e.connections() == 1 })
	e.waitAllActive("b", names, 15*time.Second)
	e.events.checkOneActive(t)
}

// TestLocksOfOneNameTakeTurns: two Locks of one name on one connection
// (two pipelines of one site in a process) never run at once: GET_LOCK on a
// connection that holds the lock would answer 1 again.
func TestLocksOfOneNameTakeTurns(t *testing.T) {
	e := newEnv(t)
	logs := &lockedBuffer{}
	c := e.conn(e.pool(""), logs)
	first := e.startOn("first", c, logs, e.lock, nil, nil)
	e.waitActive("first", 1, 10*time.Second)
	e.startOn("second", c, logs, e.lock, nil, nil)
	e.waitUntil("the second standing by", 10*time.Second, func() bool {
		e.events.mu.Lock()
		defer e.events.mu.Unlock()
		return len(e.events.changes["second|"+e.lock]) > 0
	})
	time.Sleep(3 * every)
	if s := e.events.starts("second"); len(s) != 0 {
		t.Fatal("the second Lock of a name became active while the first held it")
	}
	first.halt(t)
	e.waitActive("second", 1, 10*time.Second)
	e.events.checkOneActive(t)
}
