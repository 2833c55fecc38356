// Package client delivers signed outbox messages to the ingestion endpoint
// over HTTP, following the wire contract (PROTOCOL.md of the ingestion
// service: headers, signature, and what each response status means), and
// drives that delivery from the outbox (Dispatcher).
//
// One Deliver call is one short burst: the first attempt plus up to
// Config.Retries quick retries for transient faults. Every attempt is signed
// afresh (new X-OrderWeave-Timestamp, new X-OrderWeave-Signature) over the
// unchanged body and delivery id. The long-term schedule (hours of outage,
// pause on 401 or on a wrong ingest.url, stop on 410, split on 413 or on a
// refused item) belongs to the Dispatcher, which acts on Result.Outcome.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cleanhttp "github.com/hashicorp/go-cleanhttp"
	retryablehttp "github.com/hashicorp/go-retryablehttp"

	"github.com/orderweave/erpsync/signer"
)

// Defaults applied by New and SetConfig to zero Config fields.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultRetries      = 2
	DefaultRetryWaitMin = 200 * time.Millisecond
	DefaultRetryWaitMax = 2 * time.Second
	DefaultUserAgent    = "erpsync/dev"

	// MaxRetryAfter caps the Retry-After value reported in Result.RetryAfter.
	MaxRetryAfter = time.Hour

	// ResponseExcerpt is how much of the last response body Result.Response keeps.
	ResponseExcerpt = 1024

	// drainLimit bounds how much of a response body is read (and discarded)
	// so that the connection can go back to the pool; larger bodies are closed.
	drainLimit = 256 << 10
	// logExcerpt bounds response excerpts in log lines.
	logExcerpt = 200
	// minIdleConnsPerHost is the floor for the default transport's pool.
	minIdleConnsPerHost = 16
)

// Config configures a Client. Key is secret: it is never logged and never
// appears in an error.
type Config struct {
	URL      string
	TenantID string
	Key      []byte // decoded tenant secret

	// Timeout bounds one HTTP attempt (connect, send, response headers and
	// body). Default DefaultTimeout.
	Timeout time.Duration
	// Retries is the number of extra attempts within one Deliver call for
	// transient faults. 0 means DefaultRetries; a negative value disables
	// retries within a call.
	Retries int
	// RetryWaitMin and RetryWaitMax bound the wait between attempts
	// (exponential backoff with jitter). A Retry-After response header is
	// honoured but capped at RetryWaitMax. Defaults 200ms and 2s.
	RetryWaitMin, RetryWaitMax time.Duration

	UserAgent string           // "erpsync/<version>"; default DefaultUserAgent
	Logger    *slog.Logger     // the sync log; nil discards
	Now       func() time.Time // clock for X-OrderWeave-Timestamp; default time.Now
	// Transport is optional (tests, benchmarks). Default: a pooled cleanhttp
	// transport with TLS 1.2 minimum and at least 16 idle connections per host.
	Transport http.RoundTripper
}

// Outcome classifies the end of a Deliver call; see PROTOCOL.md "Responses".
type Outcome int

const (
	// Delivered: 2xx (including a receiver's "duplicate"). Mark delivered.
	Delivered Outcome = iota
	// Transient: 408, 425, 429, 5xx, network error or timeout after the
	// in-call retries. Retry later with backoff.
	Transient
	// Unauthorized: 401 or 403. Systemic (secret, clock, tenant): pause and probe.
	Unauthorized
	// TooLarge: 413. Split the batch.
	TooLarge
	// Rejected: an item of the request is refused: 400, 409, 415, 422 and
	// every other 4xx not named by another Outcome, or a request that could
	// not be built. Split a batch down to the refused item; dead-letter
	// that item's message.
	Rejected
	// Gone: 410. Stop delivering, keep messages, alert.
	Gone
	// Misdirected: the endpoint itself is wrong, not any message: a 3xx
	// (redirects are never followed: the signature covers one URL), 404 or
	// 405, as a moved or mistyped ingest.url answers. Systemic, like
	// Unauthorized: pause and probe, keep every message, alert.
	Misdirected
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Transient:
		return "transient"
	case Unauthorized:
		return "unauthorized"
	case TooLarge:
		return "too_large"
	case Rejected:
		return "rejected"
	case Gone:
		return "gone"
	case Misdirected:
		return "misdirected"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Request is one outbox message.
type Request struct {
	DeliveryID string
	Items      []string // item codes, for the log
	Body       []byte   // canonical JSON, sent exactly as given
}

// Result reports one Deliver call.
type Result struct {
	Outcome  Outcome
	Status   int // last HTTP status, 0 when the last attempt got no response
	Attempts int // HTTP attempts made in this call
	Duration time.Duration
	// RetryAfter is the last response's Retry-After (seconds or HTTP date),
	// capped at MaxRetryAfter; 0 when absent. The caller caps its own schedule.
	RetryAfter time.Duration
	// Response holds the first ResponseExcerpt bytes of the last response body.
	Response string
	// Location is the redirect target a 3xx named (never followed), as an
	// absolute URL without user info; "" otherwise.
	Location string
	// MaybeAccepted is true when some attempt of this call may have reached
	// the receiver's state although the call was not Delivered: the request
	// went out on a connection and got no answer (timeout, connection lost)
	// or an answer that does not rule out acceptance (408, or a 5xx other
	// than 503, as a gateway may send after the receiver took the request).
	// It is false when every attempt was refused before it could count:
	// no connection, or an answer such as 503, 429, 401 or another 4xx.
	// A message that may have been accepted must keep its delivery id and
	// body; one that cannot have been may be rewritten.
	MaybeAccepted bool
	// Err says what went wrong; nil when Delivered.
	Err error
}

// Client delivers requests. It is safe for concurrent use.
type Client struct {
	mu           sync.Mutex      // serialises New/SetConfig
	defTransport *http.Transport // built on first need, guarded by mu
	st           atomic.Pointer[state]
}

// state is an immutable snapshot of the settings; Deliver loads it once so
// that every attempt of one call uses a consistent URL/tenant/key.
type state struct {
	url       string
	shownURL  string // url for log lines and errors: no user info, query or fragment
	tenant    string
	key       []byte
	userAgent string
	retries   int
	waitMin   time.Duration
	waitMax   time.Duration
	logger    *slog.Logger
	now       func() time.Time
	http      *http.Client
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	c := &Client{}
	if err := c.SetConfig(cfg); err != nil {
		return nil, err
	}
	return c, nil
}

// SetConfig swaps the settings (settings reload). It is safe to call while
// Deliver runs on other goroutines: a call already in progress finishes with
// the settings it started with; later calls use the new ones. Idle
// connections of the shared transport are kept.
func (c *Client) SetConfig(cfg Config) error {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return fmt.Errorf("client: ingest url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("client: ingest url %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return fmt.Errorf("client: ingest url %q: missing host", u.Redacted())
	}
	if cfg.TenantID == "" {
		return errors.New("client: tenant id is empty")
	}
	if !validHeaderValue(cfg.TenantID) {
		return fmt.Errorf("client: tenant id %q contains characters not allowed in a header", cfg.TenantID)
	}
	if len(cfg.Key) == 0 {
		return errors.New("client: tenant key is empty")
	}
	if cfg.Timeout < 0 || cfg.RetryWaitMin < 0 || cfg.RetryWaitMax < 0 {
		return errors.New("client: negative timeout or retry wait")
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	if !validHeaderValue(ua) {
		return fmt.Errorf("client: user agent %q contains characters not allowed in a header", ua)
	}

	st := &state{
		url:       u.String(),
		shownURL:  (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String(),
		tenant:    cfg.TenantID,
		key:       bytes.Clone(cfg.Key),
		userAgent: ua,
		retries:   cfg.Retries,
		waitMin:   cfg.RetryWaitMin,
		waitMax:   cfg.RetryWaitMax,
		logger:    cfg.Logger,
		now:       cfg.Now,
	}
	switch {
	case st.retries == 0:
		st.retries = DefaultRetries
	case st.retries < 0:
		st.retries = 0
	}
	if st.waitMin == 0 {
		st.waitMin = DefaultRetryWaitMin
	}
	if st.waitMax == 0 {
		st.waitMax = DefaultRetryWaitMax
	}
	if st.waitMax < st.waitMin {
		st.waitMax = st.waitMin
	}
	if st.logger == nil {
		st.logger = slog.New(slog.DiscardHandler)
	}
	if st.now == nil {
		st.now = time.Now
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	rt := cfg.Transport
	if rt == nil {
		if c.defTransport == nil {
			c.defTransport = defaultTransport()
		}
		rt = c.defTransport
	}
	st.http = &http.Client{
		Transport: rt,
		Timeout:   timeout,
		// Never follow redirects: the signature covers one URL, and a
		// moved endpoint is a settings problem the admin must fix.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.st.Store(st)
	return nil
}

func defaultTransport() *http.Transport {
	t := cleanhttp.DefaultPooledTransport()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if t.MaxIdleConnsPerHost < minIdleConnsPerHost {
		t.MaxIdleConnsPerHost = minIdleConnsPerHost
	}
	return t
}

// Deliver POSTs req.Body to the ingest URL, retrying transient faults up to
// Config.Retries times, and classifies the final answer. It never panics on
// network trouble and always returns a Result.
func (c *Client) Deliver(ctx context.Context, req Request) Result {
	start := time.Now()
	cl := call{st: c.st.Load(), req: &req, ctx: ctx, items: ItemList(req.Items)}
	res := cl.do()
	res.Duration = time.Since(start)
	cl.logOutcome(&res)
	return res
}

// call is the per-Deliver state shared by the retryablehttp hooks, which all
// run synchronously on the Deliver goroutine.
type call struct {
	st    *state
	req   *Request
	ctx   context.Context
	items string

	attempts   int
	lastStatus int
	lastErr    error
	connected  atomic.Bool // this attempt got a connection (httptrace)
	maybe      bool        // an attempt may have reached the receiver
}

func (cl *call) do() Result {
	st := cl.st
	if cl.req.DeliveryID == "" || !validHeaderValue(cl.req.DeliveryID) {
		return Result{Outcome: Rejected, Err: fmt.Errorf("invalid delivery id %q", cl.req.DeliveryID)}
	}
	// GotConn runs before the request is written: an attempt that never
	// had a connection cannot have reached the receiver.
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { cl.connected.Store(true) }}
	rreq, err := retryablehttp.NewRequestWithContext(httptrace.WithClientTrace(cl.ctx, trace), http.MethodPost, st.url, cl.req.Body)
	if err != nil {
		return Result{Outcome: Rejected, Err: fmt.Errorf("building request: %w", err)}
	}
	h := rreq.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", st.userAgent)
	h.Set(signer.HeaderTenant, st.tenant)
	h.Set(signer.HeaderDeliveryID, cl.req.DeliveryID)
	// PrepareRetry only runs before retries: sign the first attempt here.
	cl.sign(rreq.Request)

	rc := &retryablehttp.Client{
		HTTPClient:   st.http,
		Logger:       nil, // the sync log gets our own lines; never stderr
		RetryWaitMin: st.waitMin,
		RetryWaitMax: st.waitMax,
		RetryMax:     st.retries,
		CheckRetry:   cl.checkRetry,
		Backoff:      cl.backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		PrepareRetry: cl.prepareRetry,
	}
	resp, err := rc.Do(rreq)
	if resp == nil {
		if err == nil {
			err = errors.New("no response")
		}
		// Status stays the last one seen: a 503 followed by a cancelled
		// backoff wait still reports 503; a network error reports 0.
		return Result{Outcome: Transient, Status: cl.lastStatus, Attempts: cl.attempts, Err: err, MaybeAccepted: cl.maybe}
	}
	// checkRetry has noted every attempt, this last one included.
	res := cl.finish(resp)
	res.MaybeAccepted = cl.maybe && res.Outcome != Delivered
	return res
}

// sign stamps one attempt: fresh timestamp from the configured clock, fresh
// signature over the unchanged body.
func (cl *call) sign(r *http.Request) {
	cl.attempts++
	cl.connected.Store(false)
	ts := cl.st.now().Unix()
	r.Header.Set(signer.HeaderTimestamp, formatInt(ts))
	r.Header.Set(signer.HeaderSignature, signer.Sign(cl.st.key, ts, cl.req.Body))
	cl.st.logger.LogAttrs(cl.ctx, slog.LevelInfo, "HMAC signed",
		slog.String("delivery_id", cl.req.DeliveryID),
		slog.String("items", cl.items),
		slog.Int("attempt", cl.attempts),
		slog.Int64("timestamp", ts),
		slog.Int("bytes", len(cl.req.Body)))
}

// prepareRetry re-signs a retry. retryablehttp hands us a shallow copy of the
// previous request whose Header map is still shared with it, so give the copy
// its own map before changing it.
func (cl *call) prepareRetry(r *http.Request) error {
	r.Header = r.Header.Clone()
	cl.sign(r)
	return nil
}

func (cl *call) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	cl.lastErr = err
	cl.lastStatus = 0
	retry := false
	if err != nil {
		retry = retryableError(err)
		cl.noteAttempt(0, err)
	} else if resp != nil {
		cl.lastStatus = resp.StatusCode
		retry = transientStatus(resp.StatusCode)
		cl.noteAttempt(resp.StatusCode, nil)
	}
	if retry && ctx.Err() != nil {
		// The caller gave up: no more attempts. The last answer is
		// classified as it stands.
		return false, nil
	}
	return retry, nil
}

// noteAttempt records whether the attempt that just ended, with HTTP status
// (0 for none) or err, may have reached the receiver's state. It may run
// twice for one attempt; the result is the same.
func (cl *call) noteAttempt(status int, err error) {
	if !cl.connected.Load() {
		return // no connection: nothing was sent
	}
	if status == 0 || !refusal(status) {
		cl.maybe = true
	}
}

// refusal reports the statuses that say the receiver did not take the
// request in: every 4xx but 408 (a timeout may strike after the receiver read
// the request), and 503. Other 5xx may come from a gateway after the receiver
// took the request.
func refusal(s int) bool {
	switch {
	case s == http.StatusRequestTimeout:
		return false
	case s >= 400 && s < 500, s == http.StatusServiceUnavailable:
		return true
	}
	return s >= 200 && s < 400
}

// backoff is only called when another attempt will follow: exponential
// with jitter, or the response's Retry-After, always within [min, max].
func (cl *call) backoff(lo, hi time.Duration, attemptNum int, resp *http.Response) time.Duration {
	wait := jitteredBackoff(lo, hi, attemptNum)
	if resp != nil {
		if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			wait = min(max(ra, lo), hi)
		}
	}
	attrs := []slog.Attr{
		slog.String("delivery_id", cl.req.DeliveryID),
		slog.String("items", cl.items),
		slog.Int("attempt", cl.attempts),
	}
	if cl.lastErr != nil {
		attrs = append(attrs, slog.String("error", cl.lastErr.Error()))
	} else {
		attrs = append(attrs, slog.Int("status", cl.lastStatus))
	}
	attrs = append(attrs, slog.Int64("retry_in_ms", wait.Milliseconds()))
	cl.st.logger.LogAttrs(cl.ctx, slog.LevelWarn, "delivery failed, will retry", attrs...)
	return wait
}

// finish reads the excerpt, drains and closes the body, and classifies.
func (cl *call) finish(resp *http.Response) Result {
	res := Result{Status: resp.StatusCode, Attempts: cl.attempts}

	var buf [ResponseExcerpt]byte
	n, _ := io.ReadFull(resp.Body, buf[:])
	if n > 0 {
		res.Response = string(buf[:n])
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	resp.Body.Close()

	if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		res.RetryAfter = min(ra, MaxRetryAfter)
	}

	s := resp.StatusCode
	switch {
	case s >= 200 && s < 300:
		res.Outcome = Delivered
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		res.Outcome = Unauthorized
		res.Err = fmt.Errorf("HMAC rejected (%d): check the tenant secret and the clock: %s",
			s, truncate(res.Response, logExcerpt))
	case s == http.StatusRequestEntityTooLarge:
		res.Outcome = TooLarge
		res.Err = fmt.Errorf("batch too large (413): %s", truncate(res.Response, logExcerpt))
	case s == http.StatusGone:
		res.Outcome = Gone
		res.Err = fmt.Errorf("endpoint gone (410): %s", truncate(res.Response, logExcerpt))
	case transientStatus(s):
		res.Outcome = Transient
		res.Err = fmt.Errorf("ingest answered %d %s after %d attempt(s)", s, http.StatusText(s), cl.attempts)
	case misdirectedStatus(s):
		res.Outcome = Misdirected
		if l, err := resp.Location(); err == nil && s < 400 {
			// Resolved against ingest.url, whose user info it would keep.
			l.User = nil
			res.Location = l.String()
		}
		res.Err = cl.misdirected(s, res.Location)
	default:
		res.Outcome = Rejected
		res.Err = fmt.Errorf("delivery rejected (%d %s): %s", s, http.StatusText(s), truncate(res.Response, logExcerpt))
	}
	return res
}

// misdirectedStatus reports the statuses that say the endpoint itself is
// wrong: every 3xx (not followed), 404 and 405.
func misdirectedStatus(s int) bool {
	return (s >= 300 && s < 400) || s == http.StatusNotFound || s == http.StatusMethodNotAllowed
}

// misdirected says what a Misdirected answer means and how to fix it: the
// status, the redirect target of a 3xx (location, "" when it named none),
// and the setting to check.
func (cl *call) misdirected(s int, location string) error {
	answer := formatInt(int64(s))
	if text := http.StatusText(s); text != "" {
		answer += " " + text
	}
	switch {
	case s < 400 && location == "":
		answer += ", a redirect with no Location header"
	case s < 400:
		answer += ", a redirect to " + location
	}
	return fmt.Errorf("wrong ingest.url: %s answered %s: check ingest.url in the settings; %s",
		cl.st.shownURL, answer, misdirectedFix)
}

// misdirectedFix ends every Misdirected error: the admin may expect a
// moved endpoint to be followed.
const misdirectedFix = "erpsync never follows redirects"

func (cl *call) logOutcome(res *Result) {
	lg := cl.st.logger
	ctx := cl.ctx
	id := slog.String("delivery_id", cl.req.DeliveryID)
	items := slog.String("items", cl.items)
	dur := slog.Int64("duration_ms", res.Duration.Milliseconds())
	switch res.Outcome {
	case Delivered:
		lg.LogAttrs(ctx, slog.LevelInfo, "HMAC accepted", id, items,
			slog.Int("status", res.Status), dur, slog.Int("attempt", res.Attempts))
	case Unauthorized:
		lg.LogAttrs(ctx, slog.LevelWarn,
			"HMAC rejected ("+formatInt(int64(res.Status))+"): check the tenant secret and the clock",
			id, items, slog.Int("status", res.Status),
			slog.String("response", truncate(res.Response, logExcerpt)), dur)
	case TooLarge:
		lg.LogAttrs(ctx, slog.LevelWarn, "batch too large (413)", id, items,
			slog.Int("status", res.Status), slog.Int("bytes", len(cl.req.Body)),
			slog.String("response", truncate(res.Response, logExcerpt)), dur)
	case Misdirected:
		attrs := []slog.Attr{id, items, slog.Int("status", res.Status), slog.String("url", cl.st.shownURL)}
		if res.Location != "" {
			attrs = append(attrs, slog.String("location", res.Location))
		}
		attrs = append(attrs, slog.String("response", truncate(res.Response, logExcerpt)), dur)
		lg.LogAttrs(ctx, slog.LevelWarn,
			"wrong ingest.url ("+formatInt(int64(res.Status))+"): check ingest.url in the settings; "+misdirectedFix,
			attrs...)
	case Gone:
		lg.LogAttrs(ctx, slog.LevelError, "delivery stopped: endpoint gone (410)", id, items,
			slog.Int("status", res.Status), slog.String("response", truncate(res.Response, logExcerpt)), dur)
	case Transient:
		attrs := []slog.Attr{id, items}
		if res.Status != 0 {
			attrs = append(attrs, slog.Int("status", res.Status))
		}
		attrs = append(attrs, slog.String("error", errString(res.Err)))
		attrs = append(attrs, slog.Int("attempts", res.Attempts), dur)
		if res.RetryAfter > 0 {
			attrs = append(attrs, slog.Int64("retry_after_ms", res.RetryAfter.Milliseconds()))
		}
		lg.LogAttrs(ctx, slog.LevelWarn, "delivery failed, will retry", attrs...)
	case Rejected:
		msg := "delivery rejected (" + formatInt(int64(res.Status)) + ")"
		lg.LogAttrs(ctx, slog.LevelError, msg, id, items, slog.Int("status", res.Status),
			slog.String("error", errString(res.Err)),
			slog.String("response", truncate(res.Response, logExcerpt)), dur)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// transientStatus reports the statuses worth retrying: 408, 425, 429, 5xx.
func transientStatus(s int) bool {
	switch s {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return s >= 500 && s < 600
}

// retryableError: network errors and timeouts are retried; a certificate the
// client refuses to trust is not going to change within a burst.
func retryableError(err error) bool {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return false
	}
	var rh tls.RecordHeaderError
	return !errors.As(err, &rh)
}

// ItemList is how log lines list item codes: the first ten, then how many more.
func ItemList(items []string) string {
	const show = 10
	if len(items) <= show {
		return strings.Join(items, ",")
	}
	return strings.Join(items[:show], ",") + " +" + formatInt(int64(len(items)-show)) + " more"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// validHeaderValue rejects control characters (CR, LF, NUL, DEL…) that
// net/http would refuse or that would split a header.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		b := v[i]
		if (b < 0x20 && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}
