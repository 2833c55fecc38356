package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/signer"
)

var (
	testKey   = []byte("0123456789abcdef0123456789abcdef")
	otherKey  = []byte("fedcba9876543210fedcba9876543210")
	testBody  = []byte(`{"delivery_id":"d-1","items":[{"item_code":"A1","op":"upsert","version":1}],"tenant":"acme"}`)
	fastRetry = Config{Retries: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}
)

func newTestClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	if cfg.TenantID == "" {
		cfg.TenantID = "acme"
	}
	if cfg.Key == nil {
		cfg.Key = testKey
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func retryCfg(url string) Config {
	cfg := fastRetry
	cfg.URL = url
	cfg.TenantID = "acme"
	cfg.Key = testKey
	cfg.Timeout = 5 * time.Second
	return cfg
}

func testRequest(id string) Request {
	body := bytes.Replace(testBody, []byte(`"d-1"`), []byte(strconv.Quote(id)), 1)
	return Request{DeliveryID: id, Items: []string{"A1"}, Body: body}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestNewValidates(t *testing.T) {
	good := Config{URL: "https://ingest.example.com/v1/items", TenantID: "acme", Key: testKey}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // error substring; "" = valid
	}{
		{"valid https", func(*Config) {}, ""},
		{"valid http", func(c *Config) { c.URL = "http://127.0.0.1:8080/ingest" }, ""},
		{"bad scheme", func(c *Config) { c.URL = "ftp://example.com/x" }, "scheme must be http or https"},
		{"no scheme", func(c *Config) { c.URL = "example.com/x" }, "scheme must be http or https"},
		{"unparsable", func(c *Config) { c.URL = "http://[::1" }, "ingest url"},
		{"no host", func(c *Config) { c.URL = "http:///x" }, "missing host"},
		{"empty tenant", func(c *Config) { c.TenantID = "" }, "tenant id is empty"},
		{"tenant with newline", func(c *Config) { c.TenantID = "acme\r\nX-Evil: 1" }, "not allowed in a header"},
		{"empty key", func(c *Config) { c.Key = nil }, "key is empty"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mutate(&cfg)
			c, err := New(cfg)
			if tt.want == "" {
				if err != nil || c == nil {
					t.Fatalf("New = %v, %v; want a client", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v; want it to contain %q", err, tt.want)
			}
			if bytes.Contains([]byte(err.Error()), testKey) {
				t.Fatalf("error leaks the key: %v", err)
			}
		})
	}
}

// Every attempt, the first included, must carry a fresh timestamp from the
// configured clock and a signature valid for it. The clock advances 1000 s
// per call, far beyond the 5 minute window, so the server verifies attempt n
// at the clock's n-th reading: a reused timestamp or an unsigned first
// attempt is refused with 401 and the test fails.
func TestEveryAttemptSignedAfresh(t *testing.T) {
	base := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name     string
		statuses []int // answers to successive attempts (when verified)
		want     Outcome
	}{
		{"first attempt", []int{200}, Delivered},
		{"two retries", []int{503, 503, 200}, Delivered},
		{"mixed transient", []int{429, 408, 204}, Delivered},
		{"exhausted", []int{500, 502, 503}, Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var clock atomic.Int64
			now := func() time.Time { return base.Add(time.Duration(clock.Add(1)) * 1000 * time.Second) }

			req := testRequest("d-fresh")
			var (
				mu         sync.Mutex
				attempts   int
				timestamps []string
				failures   []string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				attempts++
				n := attempts
				ts := r.Header.Get(signer.HeaderTimestamp)
				timestamps = append(timestamps, ts)
				fail := func(format string, args ...any) {
					failures = append(failures, fmt.Sprintf("attempt %d: ", n)+fmt.Sprintf(format, args...))
				}
				at := base.Add(time.Duration(n) * 1000 * time.Second)
				if err := signer.Verify(testKey, ts, body, r.Header.Get(signer.HeaderSignature), at, signer.Window); err != nil {
					fail("verify at %d: %v", at.Unix(), err)
				}
				if !bytes.Equal(body, req.Body) {
					fail("body changed: %q", body)
				}
				for h, want := range map[string]string{
					signer.HeaderDeliveryID: "d-fresh",
					signer.HeaderTenant:     "acme",
					"Content-Type":          "application/json",
					"User-Agent":            "erpsync/test",
				} {
					if got := r.Header.Get(h); got != want {
						fail("header %s = %q, want %q", h, got, want)
					}
				}
				bad := len(failures) > 0
				mu.Unlock()
				if bad || n > len(tt.statuses) {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.WriteHeader(tt.statuses[n-1])
			}))
			defer srv.Close()

			cfg := retryCfg(srv.URL)
			cfg.Now = now
			cfg.UserAgent = "erpsync/test"
			c := newTestClient(t, cfg)
			res := c.Deliver(context.Background(), req)

			mu.Lock()
			defer mu.Unlock()
			for _, f := range failures {
				t.Error(f)
			}
			if res.Outcome != tt.want || res.Attempts != len(tt.statuses) || attempts != len(tt.statuses) {
				t.Fatalf("outcome %v after %d attempts (server saw %d); want %v after %d: %v",
					res.Outcome, res.Attempts, attempts, tt.want, len(tt.statuses), res.Err)
			}
			seen := map[string]bool{}
			for _, ts := range timestamps {
				if seen[ts] {
					t.Fatalf("timestamp %s reused across attempts: %v", ts, timestamps)
				}
				seen[ts] = true
			}
		})
	}
}

func TestOutcomeByStatus(t *testing.T) {
	tests := []struct {
		status   int
		want     Outcome
		attempts int
	}{
		{200, Delivered, 1},
		{202, Delivered, 1},
		{204, Delivered, 1},
		{300, Misdirected, 1},
		{301, Misdirected, 1},
		{302, Misdirected, 1},
		{303, Misdirected, 1},
		{307, Misdirected, 1},
		{308, Misdirected, 1},
		{400, Rejected, 1},
		{401, Unauthorized, 1},
		{403, Unauthorized, 1},
		{404, Misdirected, 1},
		{405, Misdirected, 1},
		{408, Transient, 3},
		{409, Rejected, 1},
		{410, Gone, 1},
		{413, TooLarge, 1},
		{415, Rejected, 1},
		{418, Rejected, 1},
		{422, Rejected, 1},
		{425, Transient, 3},
		{429, Transient, 3},
		{500, Transient, 3},
		{502, Transient, 3},
		{503, Transient, 3},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(tt.status)
				fmt.Fprintf(w, "answer %d", tt.status)
			}))
			defer srv.Close()
			c := newTestClient(t, retryCfg(srv.URL))
			res := c.Deliver(context.Background(), testRequest("d-status"))

			if res.Outcome != tt.want {
				t.Errorf("outcome = %v, want %v (err %v)", res.Outcome, tt.want, res.Err)
			}
			if res.Status != tt.status {
				t.Errorf("status = %d, want %d", res.Status, tt.status)
			}
			if res.Attempts != tt.attempts || int(hits.Load()) != tt.attempts {
				t.Errorf("attempts = %d (server saw %d), want %d", res.Attempts, hits.Load(), tt.attempts)
			}
			if (res.Err == nil) != (tt.want == Delivered) {
				t.Errorf("err = %v for outcome %v", res.Err, res.Outcome)
			}
			wantResp := fmt.Sprintf("answer %d", tt.status)
			if tt.status == http.StatusNoContent {
				wantResp = ""
			}
			if res.Response != wantResp {
				t.Errorf("response = %q, want %q", res.Response, wantResp)
			}
			if res.Duration <= 0 {
				t.Errorf("duration = %v", res.Duration)
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var finalHits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/final", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/final", func(w http.ResponseWriter, r *http.Request) { finalHits.Add(1) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c := newTestClient(t, retryCfg(srv.URL+"/old"))
	res := c.Deliver(context.Background(), testRequest("d-redirect"))
	want := "wrong ingest.url: " + srv.URL + "/old answered 301 Moved Permanently, a redirect to " + srv.URL +
		"/final: check ingest.url in the settings; erpsync never follows redirects"
	if res.Outcome != Misdirected || res.Status != 301 || res.Location != srv.URL+"/final" || res.Err == nil || res.Err.Error() != want {
		t.Fatalf("got %v %d %q %v; want Misdirected 301 %q", res.Outcome, res.Status, res.Location, res.Err, want)
	}
	if finalHits.Load() != 0 || res.Attempts != 1 {
		t.Fatalf("redirect followed (%d hits) or retried (%d attempts)", finalHits.Load(), res.Attempts)
	}
}

// TestMisdirectedSaysWhatToFix: an answer that says ingest.url is wrong
// names the URL (without its password or query), the status, the redirect
// target of a 3xx and the fix, in Result.Err and in the log line, and is not
// retried within the call.
func TestMisdirectedSaysWhatToFix(t *testing.T) {
	tests := []struct {
		status   int
		location string // Location header sent; "" none
		want     string // in the error; SRV stands for the server's URL
		wantLoc  string // Result.Location and the log's location; SRV as in want
	}{
		{301, "https://new.example.com/v2/items", "answered 301 Moved Permanently, a redirect to https://new.example.com/v2/items", "https://new.example.com/v2/items"},
		{302, "", "answered 302 Found, a redirect with no Location header", ""},
		{307, "/v2/items", "answered 307 Temporary Redirect, a redirect to SRV/v2/items", "SRV/v2/items"},
		{308, "https://new.example.com/v2/items", "answered 308 Permanent Redirect, a redirect to https://new.example.com/v2/items", "https://new.example.com/v2/items"},
		{404, "", "answered 404 Not Found", ""},
		{405, "/elsewhere", "answered 405 Method Not Allowed", ""},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				_, _ = io.Copy(io.Discard, r.Body)
				if tt.location != "" {
					w.Header().Set("Location", tt.location)
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			logs := &syncBuffer{}
			cfg := retryCfg(strings.Replace(srv.URL, "http://", "http://admin:hunter2@", 1) + "/ingst?token=s3cret-token")
			cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
			res := newTestClient(t, cfg).Deliver(context.Background(), testRequest("d-misdirected"))
			if res.Outcome != Misdirected || res.Status != tt.status || res.Attempts != 1 || hits.Load() != 1 {
				t.Fatalf("got %v %d after %d attempts (server saw %d); want Misdirected %d after 1", res.Outcome, res.Status, res.Attempts, hits.Load(), tt.status)
			}
			if res.Err == nil {
				t.Fatal("no error")
			}
			wantLoc := strings.ReplaceAll(tt.wantLoc, "SRV", srv.URL)
			if res.Location != wantLoc {
				t.Errorf("Location = %q, want %q", res.Location, wantLoc)
			}
			want := []string{"wrong ingest.url: " + srv.URL + "/ingst answered", strings.ReplaceAll(tt.want, "SRV", srv.URL),
				"check ingest.url in the settings; erpsync never follows redirects"}
			for _, w := range want {
				if !strings.Contains(res.Err.Error(), w) {
					t.Errorf("error %q lacks %q", res.Err, w)
				}
			}
			line := logs.String()
			for _, w := range []string{"level=WARN", `msg="wrong ingest.url (` + strconv.Itoa(tt.status) + `): check ingest.url in the settings; erpsync never follows redirects"`,
				"status=" + strconv.Itoa(tt.status), "url=" + srv.URL + "/ingst", "delivery_id=d-misdirected"} {
				if !strings.Contains(line, w) {
					t.Errorf("log lacks %q:\n%s", w, line)
				}
			}
			if hasLoc := strings.Contains(line, "location="+wantLoc); wantLoc != "" && !hasLoc {
				t.Errorf("log lacks the location %q:\n%s", wantLoc, line)
			} else if wantLoc == "" && strings.Contains(line, "location=") {
				t.Errorf("log names a location, want none:\n%s", line)
			}
			for _, secret := range []string{"hunter2", "s3cret-token"} {
				if strings.Contains(line, secret) || strings.Contains(res.Err.Error(), secret) {
					t.Errorf("log or error shows %q from ingest.url:\n%s\n%v", secret, line, res.Err)
				}
			}
		})
	}
}

// Retry-After: 120 must not make the call sleep 120 s: waits are capped at
// RetryWaitMax. Were it uncapped, the context deadline would end the call
// during the first wait with only one attempt made.
func TestRetryAfterCapped(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		wantRA     time.Duration
	}{
		{"429 seconds", 429, "120", 120 * time.Second},
		{"503 seconds", 503, "120", 120 * time.Second},
		{"http date, reported capped at 1h", 503, time.Now().Add(48 * time.Hour).UTC().Format(http.TimeFormat), MaxRetryAfter},
		{"huge seconds", 429, "99999999999999999999", MaxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", tt.retryAfter)
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			cfg := retryCfg(srv.URL)
			cfg.RetryWaitMax = 20 * time.Millisecond
			c := newTestClient(t, cfg)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res := c.Deliver(ctx, testRequest("d-ra"))
			if ctx.Err() != nil {
				t.Fatalf("context expired: Retry-After was not capped (%d attempts)", res.Attempts)
			}
			if res.Outcome != Transient || res.Attempts != 3 || res.Status != tt.status {
				t.Fatalf("got %v status %d after %d attempts; want Transient %d after 3 (%v)",
					res.Outcome, res.Status, res.Attempts, tt.status, res.Err)
			}
			if res.RetryAfter < tt.wantRA-2*time.Second || res.RetryAfter > tt.wantRA {
				t.Fatalf("RetryAfter = %v, want %v", res.RetryAfter, tt.wantRA)
			}
		})
	}
}

func TestPerAttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)

	cfg := retryCfg(srv.URL)
	cfg.Timeout = 200 * time.Millisecond
	cfg.Retries = 1
	c := newTestClient(t, cfg)
	c2 := c.st.Load().http
	if c2.Timeout != 200*time.Millisecond {
		t.Fatalf("http.Client.Timeout = %v", c2.Timeout)
	}
	res := c.Deliver(context.Background(), testRequest("d-hang"))
	var ne net.Error
	if res.Outcome != Transient || res.Status != 0 || res.Attempts != 2 || !errors.As(res.Err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v status %d after %d attempts, err %v; want a Transient timeout after 2",
			res.Outcome, res.Status, res.Attempts, res.Err)
	}
	if hits.Load() != 2 {
		t.Fatalf("server saw %d attempts, want 2", hits.Load())
	}
}

func TestClosedConnection(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	}))
	defer srv.Close()
	c := newTestClient(t, retryCfg(srv.URL))
	res := c.Deliver(context.Background(), testRequest("d-closed"))
	if res.Outcome != Transient || res.Status != 0 || res.Err == nil || res.Attempts != 3 || hits.Load() != 3 {
		t.Fatalf("got %v status %d after %d attempts (server %d), err %v; want Transient, 0, 3",
			res.Outcome, res.Status, res.Attempts, hits.Load(), res.Err)
	}
}

func TestCancelledContextStopsRetrying(t *testing.T) {
	var hits atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		cancel() // the caller gives up while the server answers 503
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := newTestClient(t, retryCfg(srv.URL))
	res := c.Deliver(ctx, testRequest("d-cancel"))
	if res.Outcome != Transient || hits.Load() != 1 || res.Attempts != 1 {
		t.Fatalf("got %v after %d attempts (server %d); want Transient after 1", res.Outcome, res.Attempts, hits.Load())
	}
}

func TestInvalidRequest(t *testing.T) {
	c := newTestClient(t, Config{URL: "http://127.0.0.1:1/never"})
	for _, id := range []string{"", "a\nb"} {
		res := c.Deliver(context.Background(), Request{DeliveryID: id, Body: testBody})
		if res.Outcome != Rejected || res.Attempts != 0 || res.Err == nil {
			t.Errorf("delivery id %q: got %v after %d attempts (%v); want Rejected without attempts", id, res.Outcome, res.Attempts, res.Err)
		}
	}
}

// The sync log: greppable lines, never the secret, the key or a signature.
func TestLogLines(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	rcv := receiver.New(receiver.Options{Tenants: map[string][]byte{"acme": testKey}})
	var sigMu sync.Mutex
	var sigs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sigMu.Lock()
		sigs = append(sigs, r.Header.Get(signer.HeaderSignature))
		sigMu.Unlock()
		rcv.ServeHTTP(w, r)
	}))
	defer srv.Close()

	cfg := retryCfg(srv.URL)
	cfg.Logger = logger
	c := newTestClient(t, cfg)
	items := []string{"I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8", "I9", "I10", "I11", "I12"}

	req := testRequest("d-log-1")
	req.Items = items
	if res := c.Deliver(context.Background(), req); res.Outcome != Delivered {
		t.Fatalf("first delivery: %v %v", res.Outcome, res.Err)
	}
	cfg.Key = otherKey
	if err := c.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	res := c.Deliver(context.Background(), testRequest("d-log-2"))
	if res.Outcome != Unauthorized || res.Status != 401 || res.Attempts != 1 {
		t.Fatalf("wrong key: got %v %d after %d attempts", res.Outcome, res.Status, res.Attempts)
	}

	out := logs.String()
	lines := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		for _, prefix := range []string{
			`msg="HMAC signed"`,
			`msg="HMAC accepted"`,
			`msg="HMAC rejected (401): check the tenant secret and the clock"`,
		} {
			if strings.Contains(line, prefix) {
				lines[prefix] += line + "\n"
			}
		}
	}
	for prefix, attrs := range map[string][]string{
		`msg="HMAC signed"`: {"level=INFO", "delivery_id=d-log-1", "items=\"I1,I2,I3,I4,I5,I6,I7,I8,I9,I10 +2 more\"",
			"attempt=1", "timestamp=", "bytes=" + strconv.Itoa(len(req.Body))},
		`msg="HMAC accepted"`: {"level=INFO", "delivery_id=d-log-1", "status=200", "duration_ms=", "attempt=1"},
		`msg="HMAC rejected (401): check the tenant secret and the clock"`: {"level=WARN", "delivery_id=d-log-2",
			"items=A1", "status=401", "response=", "duration_ms="},
	} {
		got := lines[prefix]
		if got == "" {
			t.Errorf("no %s line in log:\n%s", prefix, out)
			continue
		}
		for _, a := range attrs {
			if !strings.Contains(got, a) {
				t.Errorf("%s line lacks %q:\n%s", prefix, a, got)
			}
		}
	}
	sigMu.Lock()
	defer sigMu.Unlock()
	if len(sigs) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(sigs))
	}
	secrets := []string{string(testKey), string(otherKey)}
	for _, k := range [][]byte{testKey, otherKey} {
		secrets = append(secrets,
			base64.StdEncoding.EncodeToString(k), base64.RawStdEncoding.EncodeToString(k),
			base64.URLEncoding.EncodeToString(k), hex.EncodeToString(k))
	}
	secrets = append(secrets, sigs...)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("log contains a secret, key or signature %q", s)
		}
	}
	if res.Err == nil || strings.Contains(res.Err.Error(), string(otherKey)) {
		t.Errorf("Err = %v", res.Err)
	}
}

// SetConfig flips between two endpoints with different keys while deliveries
// run. Each endpoint knows only its own key, so a call that mixed the URL of
// one setting with the key of the other would get 401.
func TestSetConfigConcurrent(t *testing.T) {
	keyA, keyB := testKey, otherKey
	rcvA := receiver.New(receiver.Options{Tenants: map[string][]byte{"acme": keyA}})
	rcvB := receiver.New(receiver.Options{Tenants: map[string][]byte{"acme": keyB}})
	srvA := httptest.NewServer(rcvA)
	defer srvA.Close()
	srvB := httptest.NewServer(rcvB)
	defer srvB.Close()

	cfgA := retryCfg(srvA.URL)
	cfgA.Key = keyA
	cfgB := retryCfg(srvB.URL)
	cfgB.Key = append([]byte(nil), keyB...)
	cfgB.Timeout = 3 * time.Second
	cfgB.UserAgent = "erpsync/b"
	c := newTestClient(t, cfgA)

	stop := make(chan struct{})
	var flips sync.WaitGroup
	flips.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cfg := cfgA
			if i%2 == 1 {
				cfg = cfgB
			}
			if err := c.SetConfig(cfg); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(50 * time.Microsecond)
		}
	})
	const workers, perWorker = 8, 40
	var wg sync.WaitGroup
	var failures atomic.Int32
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				res := c.Deliver(context.Background(), testRequest(fmt.Sprintf("d-%d-%d", w, i)))
				if res.Outcome != Delivered {
					failures.Add(1)
					t.Errorf("worker %d delivery %d: %v %d %v", w, i, res.Outcome, res.Status, res.Err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	flips.Wait()

	a, b := rcvA.Stats(), rcvB.Stats()
	if got := a.Accepted + b.Accepted; got != workers*perWorker || failures.Load() != 0 {
		t.Fatalf("accepted %d+%d, want %d", a.Accepted, b.Accepted, workers*perWorker)
	}
	if a.Accepted == 0 || b.Accepted == 0 {
		t.Logf("note: all deliveries went to one endpoint (A %d, B %d)", a.Accepted, b.Accepted)
	}
}

func TestJoinItems(t *testing.T) {
	many := make([]string, 25)
	for i := range many {
		many[i] = "I" + strconv.Itoa(i+1)
	}
	tests := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"A"}, "A"},
		{many[:10], "I1,I2,I3,I4,I5,I6,I7,I8,I9,I10"},
		{many[:11], "I1,I2,I3,I4,I5,I6,I7,I8,I9,I10 +1 more"},
		{many, "I1,I2,I3,I4,I5,I6,I7,I8,I9,I10 +15 more"},
	}
	for _, tt := range tests {
		if got := ItemList(tt.in); got != tt.want {
			t.Errorf("ItemList(%d items) = %q, want %q", len(tt.in), got, tt.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"120", 120 * time.Second, true},
		{" 0 ", 0, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"7200", MaxRetryAfter, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestJitteredBackoffBounds(t *testing.T) {
	lo, hi := 200*time.Millisecond, 2*time.Second
	for attempt := range 8 {
		ceil := min(lo<<attempt, hi)
		for range 200 {
			d := jitteredBackoff(lo, hi, attempt)
			if d < lo || d > ceil || d < ceil/2 {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, max(lo, ceil/2), ceil)
			}
		}
	}
}

func TestOutcomeString(t *testing.T) {
	want := map[Outcome]string{Delivered: "delivered", Transient: "transient", Unauthorized: "unauthorized",
		TooLarge: "too_large", Rejected: "rejected", Gone: "gone", Misdirected: "misdirected", Outcome(42): "outcome(42)"}
	for o, s := range want {
		if o.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(o), o.String(), s)
		}
	}
}

func TestDefaultTransport(t *testing.T) {
	c := newTestClient(t, Config{URL: "https://ingest.example.com/"})
	tr, ok := c.st.Load().http.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport %T", c.st.Load().http.Transport)
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion < 0x0303 {
		t.Errorf("TLS minimum not 1.2: %+v", tr.TLSClientConfig)
	}
	if tr.MaxIdleConnsPerHost < 16 {
		t.Errorf("MaxIdleConnsPerHost = %d", tr.MaxIdleConnsPerHost)
	}
	// A reload keeps the pooled transport.
	if err := c.SetConfig(Config{URL: "https://other.example.com/", TenantID: "acme", Key: testKey}); err != nil {
		t.Fatal(err)
	}
	if c.st.Load().http.Transport != tr {
		t.Error("SetConfig replaced the pooled transport")
	}
}

// TestMaybeAccepted: a call whose every attempt was refused (no connection,
// 503, 429, 4xx) cannot have reached the receiver's state; one with an
// attempt that got no answer, or an answer that does not rule acceptance
// out, may have.
func TestMaybeAccepted(t *testing.T) {
	answer := func(statuses ...int) http.HandlerFunc {
		var n atomic.Int32
		return func(w http.ResponseWriter, r *http.Request) {
			i := int(n.Add(1)) - 1
			s := statuses[min(i, len(statuses)-1)]
			_, _ = io.Copy(io.Discard, r.Body)
			if s == 0 { // drop the connection without an answer
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
				return
			}
			w.WriteHeader(s)
		}
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    bool
	}{
		{"503s", answer(503), false},
		{"429s", answer(429), false},
		{"401", answer(401), false},
		{"422", answer(422), false},
		{"413", answer(413), false},
		{"404", answer(404), false},
		{"301", answer(301), false},
		{"delivered after a 503", answer(503, 200), false},
		{"502s", answer(502), true},
		{"500s", answer(500), true},
		{"408s", answer(408), true},
		{"connection dropped", answer(0), true},
		{"dropped, then 503s", answer(0, 503), true},
		{"503s, then 401", answer(503, 401), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			res := newTestClient(t, retryCfg(srv.URL)).Deliver(context.Background(), testRequest("d-maybe"))
			if res.MaybeAccepted != tt.want {
				t.Errorf("MaybeAccepted = %v, want %v (outcome %v, status %d, %d attempts)", res.MaybeAccepted, tt.want, res.Outcome, res.Status, res.Attempts)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		res := newTestClient(t, retryCfg("http://"+addr+"/")).Deliver(context.Background(), testRequest("d-refused"))
		if res.Outcome != Transient || res.MaybeAccepted {
			t.Errorf("got %v, MaybeAccepted %v; want Transient, false", res.Outcome, res.MaybeAccepted)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer srv.Close()
		defer close(release)
		cfg := retryCfg(srv.URL)
		cfg.Timeout, cfg.Retries = 100*time.Millisecond, -1
		res := newTestClient(t, cfg).Deliver(context.Background(), testRequest("d-timeout"))
		if res.Outcome != Transient || !res.MaybeAccepted {
			t.Errorf("got %v, MaybeAccepted %v; want Transient, true", res.Outcome, res.MaybeAccepted)
		}
	})
}
