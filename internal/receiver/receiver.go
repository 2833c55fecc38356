// Package receiver is the reference ingestion endpoint of PROTOCOL.md. It
// backs `erpsync receive`, the demo and the integration tests: it verifies
// every request exactly as a careful receiver author would, keeps the final
// state of every item per tenant, and prints one line per accepted item.
package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderweave/erpsync/signer"
)

// MaxBody is the largest body accepted (413 above it). A declared
// Content-Length above it is refused before any of the body is read.
const MaxBody = 10 << 20

// MaxDeliveryID is the longest X-OrderWeave-Delivery-Id accepted, in bytes
// (400 above it). The agent's ids are 32 hex digits.
const MaxDeliveryID = 128

// Rejection reasons: the keys of Stats.Rejected.
const (
	ReasonFault            = "fault"             // Options.Fault answered
	ReasonMethod           = "method"            // 405
	ReasonContentType      = "content_type"      // 415
	ReasonMissingHeader    = "missing_header"    // 400
	ReasonDeliveryID       = "delivery_id"       // 400: longer than MaxDeliveryID
	ReasonUnknownTenant    = "unknown_tenant"    // 401, answered as ReasonUnauthorized
	ReasonTimestamp        = "timestamp"         // 401: not decimal digits
	ReasonExpired          = "expired"           // 401: older than the window
	ReasonFuture           = "future"            // 401: ahead of the clock
	ReasonSignature        = "signature"         // 401, answered as ReasonUnauthorized
	ReasonTooLarge         = "too_large"         // 413
	ReasonReadBody         = "read_body"         // 400: the body could not be read
	ReasonNotJSON          = "not_json"          // 400
	ReasonNotCanonical     = "not_canonical"     // 400
	ReasonShape            = "shape"             // 400: not an object / wrong types
	ReasonTenantMismatch   = "tenant_mismatch"   // 400
	ReasonDeliveryMismatch = "delivery_mismatch" // 400
	ReasonItems            = "items"             // 422: items or an item entry invalid
)

// ReasonUnauthorized is the reason in the answer to an unknown tenant and to
// a signature that does not match alike: the two answers are the same bytes
// (status 401, headers, body), so a client cannot learn which tenant ids
// exist. The log line and Stats.Rejected keep ReasonUnknownTenant and
// ReasonSignature apart for the operator. It is never a key of
// Stats.Rejected.
const ReasonUnauthorized = "unauthorized"

// unauthorizedError is the error text of every ReasonUnauthorized answer.
const unauthorizedError = "tenant or signature not accepted: check the tenant id (X-Tenant-Id) and the tenant secret"

// Options configure a Receiver.
type Options struct {
	Tenants map[string][]byte // tenant id -> decoded secret
	Window  time.Duration     // replay window; default signer.Window. Delivery ids are remembered for it (see MaxRemembered)
	Now     func() time.Time  // default time.Now
	// Out, when non-nil, gets one line per accepted item entry:
	//   accepted tenant=acme delivery=d-1 op=upsert item=ITEM-1 version=7 name="Lamp"
	Out    io.Writer
	Logger *slog.Logger // rejections (WARN) with reason; nil discards
	// Fault, when set, runs once the headers, the tenant and the timestamp
	// check out and the body is read, before the signature and the body are
	// verified; handled=true answers with status and header instead of
	// processing the request, or, when status is Drop, closes the
	// connection without an answer. Fault may sleep to make the request
	// hang.
	Fault func(r *http.Request, body []byte) (status int, header http.Header, handled bool)
}

// Drop is the status a Fault returns to close the connection without
// answering, as a crashing server or a broken network would.
const Drop = -1

// Entry is the accepted state of one item.
type Entry struct {
	Tenant, DeliveryID, Op, ItemCode string
	Version                          int64
	Item                             map[string]any // the whole decoded entry, numbers as json.Number; read-only
	Raw                              json.RawMessage
}

// Stats counts requests since New.
type Stats struct {
	Requests   int64 // every request served
	Accepted   int64 // requests accepted (not counting duplicates)
	Items      int64 // item entries applied
	Duplicates int64 // requests repeating a delivery id accepted within its replay window (answered 200)
	Evicted    int64 // delivery ids forgotten before their window ended, because MaxRemembered were held
	Stale      int64 // item entries ignored because a newer version was already held
	Restated   int64 // item entries repeating, under another delivery id, the version already held: one state accepted twice
	Rejected   map[string]int64
}

// Receiver is an http.Handler, safe for concurrent use.
type Receiver struct {
	window time.Duration
	now    func() time.Time
	out    io.Writer
	log    *slog.Logger
	fault  func(*http.Request, []byte) (int, http.Header, bool)

	requests atomic.Int64

	mu         sync.Mutex
	keys       map[string][]byte
	tenants    map[string]*tenantState
	ids        *deliveryIDs // accepted delivery ids, for duplicates; see MaxRemembered
	accepted   int64
	items      int64
	duplicates int64
	stale      int64
	restated   int64
	rejected   map[string]int64

	outMu sync.Mutex // one Write per request, in acceptance order
}

type tenantState struct {
	items map[string]Entry
}

// New returns a Receiver. Secrets are copied.
func New(opts Options) *Receiver {
	r := &Receiver{
		window:   opts.Window,
		now:      opts.Now,
		out:      opts.Out,
		log:      opts.Logger,
		fault:    opts.Fault,
		keys:     make(map[string][]byte, len(opts.Tenants)),
		tenants:  make(map[string]*tenantState),
		ids:      newDeliveryIDs(MaxRemembered),
		rejected: make(map[string]int64),
	}
	if r.window <= 0 {
		r.window = signer.Window
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for id, k := range opts.Tenants {
		r.keys[id] = bytes.Clone(k)
	}
	return r
}

// SetTenant adds a tenant or rotates its secret (a nil/empty key removes it).
func (r *Receiver) SetTenant(id string, key []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(key) == 0 {
		delete(r.keys, id)
		return
	}
	r.keys[id] = bytes.Clone(key)
}

// Items returns a copy of the final state per item code for tenant.
func (r *Receiver) Items(tenant string) map[string]Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.tenants[tenant]
	out := make(map[string]Entry)
	if ts != nil {
		for k, v := range ts.items {
			out[k] = v
		}
	}
	return out
}

// Stats returns a snapshot of the counters.
func (r *Receiver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{
		Requests:   r.requests.Load(),
		Accepted:   r.accepted,
		Items:      r.items,
		Duplicates: r.duplicates,
		Evicted:    r.ids.evicted,
		Stale:      r.stale,
		Restated:   r.restated,
		Rejected:   make(map[string]int64, len(r.rejected)),
	}
	for k, v := range r.rejected {
		s.Rejected[k] = v
	}
	return s
}

// Wait polls cond every 10ms until it returns true or ctx is done.
func (r *Receiver) Wait(ctx context.Context, cond func(*Receiver) bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if cond(r) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// rejection is a verification failure: HTTP status, Stats key, message.
type rejection struct {
	status int
	reason string
	msg    string
}

func reject(status int, reason, format string, args ...any) *rejection {
	return &rejection{status: status, reason: reason, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP verifies and applies one delivery. The body is read only once
// the method, the content type, the headers, the timestamp and the tenant
// check out: a request refused on those is answered without waiting for its
// body, and its connection is closed.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)

	h, rej := r.checkHeaders(req)
	if rej != nil {
		r.refuse(w, req, rej, false)
		return
	}

	body, tooLarge, readErr := readBody(req)

	if r.fault != nil {
		if status, hdr, handled := r.fault(req, body); handled {
			for k, vs := range hdr {
				for _, v := range vs {
					w.Header().Add(k, v)
				}
			}
			if status == 0 {
				status = http.StatusServiceUnavailable
			}
			r.count(ReasonFault)
			if status == Drop {
				r.log.LogAttrs(req.Context(), slog.LevelWarn, "request dropped",
					slog.String("reason", ReasonFault),
					slog.String("delivery_id", h.delivery))
				panic(http.ErrAbortHandler) // net/http closes the connection, logging nothing
			}
			r.log.LogAttrs(req.Context(), slog.LevelWarn, "request rejected",
				slog.String("reason", ReasonFault), slog.Int("status", status),
				slog.String("delivery_id", h.delivery))
			writeJSON(w, status, map[string]any{"status": "fault", "error": "injected fault"})
			return
		}
	}

	d, rej := r.verify(h, body, tooLarge, readErr)
	if rej != nil {
		r.refuse(w, req, rej, readErr == nil && !tooLarge)
		return
	}

	if dup := r.apply(d); dup {
		r.log.LogAttrs(req.Context(), slog.LevelInfo, "duplicate delivery",
			slog.String("tenant", d.tenant), slog.String("delivery_id", d.delivery))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"status":"duplicate"}`)
		return
	}
	r.log.LogAttrs(req.Context(), slog.LevelInfo, "delivery accepted",
		slog.String("tenant", d.tenant), slog.String("delivery_id", d.delivery),
		slog.Int("items", len(d.entries)))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"status":"accepted","items":`+strconv.Itoa(len(d.entries))+`}`)
}

// refuse counts, logs and answers a rejection. The log line names the exact
// reason; the answer to an unknown tenant and to a wrong signature is the
// same ReasonUnauthorized one. bodyRead tells whether the body was read to
// its end; when it was not, the connection is closed after the answer
// without reading any more of it.
func (r *Receiver) refuse(w http.ResponseWriter, req *http.Request, rej *rejection, bodyRead bool) {
	r.count(rej.reason)
	r.log.LogAttrs(req.Context(), slog.LevelWarn, "request rejected: "+rej.msg,
		slog.String("reason", rej.reason), slog.Int("status", rej.status),
		slog.String("tenant", req.Header.Get(signer.HeaderTenant)),
		slog.String("delivery_id", req.Header.Get(signer.HeaderDeliveryID)),
		slog.String("remote", req.RemoteAddr))
	if !bodyRead && req.Body != nil && req.Body != http.NoBody {
		// Left alone, net/http would read up to 256 KiB of the unread body
		// before answering and more after it, waiting on a body that may
		// never end. A read deadline in the past stops those reads, and
		// the connection is closed, as what follows on it is body.
		w.Header().Set("Connection", "close")
		_ = http.NewResponseController(w).SetReadDeadline(time.Unix(1, 0))
	}
	switch rej.reason {
	case ReasonUnknownTenant, ReasonSignature:
		// The same bytes for both, whether or not the body was read.
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusUnauthorized, map[string]any{
			"status": "rejected", "reason": ReasonUnauthorized, "error": unauthorizedError})
		return
	case ReasonMethod:
		w.Header().Set("Allow", http.MethodPost)
	}
	writeJSON(w, rej.status, map[string]any{"status": "rejected", "reason": rej.reason, "error": rej.msg})
}

func (r *Receiver) count(reason string) {
	r.mu.Lock()
	r.rejected[reason]++
	r.mu.Unlock()
}

// readBody reads at most MaxBody bytes; tooLarge reports that more followed.
// A declared Content-Length (at most MaxBody: checkHeaders refuses more)
// sizes the buffer in one allocation.
func readBody(req *http.Request) (body []byte, tooLarge bool, err error) {
	rc := req.Body
	if rc == nil || rc == http.NoBody {
		return nil, false, nil
	}
	if cl := req.ContentLength; cl >= 0 && cl <= MaxBody {
		body = make([]byte, cl, cl+1)
		if _, err := io.ReadFull(rc, body); err != nil {
			return nil, false, err
		}
		// A body longer than declared is cut off by net/http; nothing
		// more to read.
		return body, false, nil
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(rc, MaxBody+1))
	if err != nil {
		return buf.Bytes(), false, err
	}
	if n > MaxBody {
		return buf.Bytes()[:MaxBody], true, nil
	}
	return buf.Bytes(), false, nil
}

// delivery is a verified request.
type delivery struct {
	tenant   string
	delivery string
	sent     time.Time // its X-OrderWeave-Timestamp
	entries  []Entry
}

var requiredHeaders = [...]string{
	signer.HeaderSignature,
	signer.HeaderTimestamp,
	signer.HeaderTenant,
	signer.HeaderDeliveryID,
	"User-Agent",
}

// headers are a request's headers once checkHeaders passed them.
type headers struct {
	tenant, delivery, timestamp, signature string
	sent                                   time.Time // timestamp, parsed
	key                                    []byte    // the tenant's
}

// checkHeaders checks what can be checked before reading the body, in this
// order: method, content type, the required headers present, the delivery
// id's length, the timestamp (digits, then inside the window), a declared
// Content-Length (at most MaxBody), and last the tenant. The timestamp and
// the size are checked before the tenant so that their answers are the same
// for a tenant that exists and one that does not.
func (r *Receiver) checkHeaders(req *http.Request) (*headers, *rejection) {
	if req.Method != http.MethodPost {
		return nil, reject(http.StatusMethodNotAllowed, ReasonMethod, "method %s not allowed: use POST", req.Method)
	}
	ct := req.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, reject(http.StatusUnsupportedMediaType, ReasonContentType, "content type %q: want application/json", ct)
	}
	for _, name := range requiredHeaders {
		if req.Header.Get(name) == "" {
			return nil, reject(http.StatusBadRequest, ReasonMissingHeader, "missing header %s", name)
		}
	}
	h := &headers{
		tenant:    req.Header.Get(signer.HeaderTenant),
		delivery:  req.Header.Get(signer.HeaderDeliveryID),
		timestamp: req.Header.Get(signer.HeaderTimestamp),
		signature: req.Header.Get(signer.HeaderSignature),
	}
	if len(h.delivery) > MaxDeliveryID {
		return nil, reject(http.StatusBadRequest, ReasonDeliveryID,
			"header %s is %d bytes, longer than the %d allowed", signer.HeaderDeliveryID, len(h.delivery), MaxDeliveryID)
	}
	sent, rej := checkTimestamp(h.timestamp, r.now(), r.window)
	if rej != nil {
		return nil, rej
	}
	h.sent = sent
	if req.ContentLength > MaxBody {
		return nil, reject(http.StatusRequestEntityTooLarge, ReasonTooLarge,
			"body larger than %d bytes (Content-Length %d)", MaxBody, req.ContentLength)
	}
	r.mu.Lock()
	h.key = r.keys[h.tenant]
	r.mu.Unlock()
	if h.key == nil {
		return nil, reject(http.StatusUnauthorized, ReasonUnknownTenant, "unknown tenant")
	}
	return h, nil
}

// checkTimestamp parses the X-OrderWeave-Timestamp text (decimal digits
// only) and checks it lies within [now-window, now+signer.MaxFutureSkew], as
// signer.Verify does after the signature.
func checkTimestamp(text string, now time.Time, window time.Duration) (time.Time, *rejection) {
	for i := 0; i < len(text); i++ {
		if text[i] < '0' || text[i] > '9' {
			return time.Time{}, reject(http.StatusUnauthorized, ReasonTimestamp,
				"timestamp has a character other than a decimal digit at offset %d, want Unix seconds in decimal digits", i)
		}
	}
	ts, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return time.Time{}, reject(http.StatusUnauthorized, ReasonTimestamp, "timestamp is too large for Unix seconds")
	}
	sent := time.Unix(ts, 0)
	if sent.Before(now.Add(-window)) {
		return time.Time{}, reject(http.StatusUnauthorized, ReasonExpired,
			"timestamp %d is %s ago, outside the %s window: check the sender's clock", ts, now.Sub(sent).Round(time.Second), window)
	}
	if sent.After(now.Add(signer.MaxFutureSkew)) {
		return time.Time{}, reject(http.StatusUnauthorized, ReasonFuture,
			"timestamp %d is %s in the future, more than the %s allowed: check the sender's clock", ts, sent.Sub(now).Round(time.Second), signer.MaxFutureSkew)
	}
	return sent, nil
}

// verify checks the body of a request whose headers checkHeaders passed:
// its size, the signature (and the window again, after the read), canonical
// JSON, the shape, the tenant and delivery id repeated, and the items.
func (r *Receiver) verify(h *headers, body []byte, tooLarge bool, readErr error) (*delivery, *rejection) {
	if readErr != nil {
		return nil, reject(http.StatusBadRequest, ReasonReadBody, "reading body: %v", readErr)
	}

	// signer.Verify checks, in order: timestamp digits, signature, window.
	// The signature can only be checked over the whole body, so an
	// oversized body (one sent without a Content-Length) is refused (413)
	// first.
	err := signer.Verify(h.key, h.timestamp, body, h.signature, r.now(), r.window)
	switch {
	case errors.Is(err, signer.ErrTimestamp):
		return nil, reject(http.StatusUnauthorized, ReasonTimestamp, "%v", err)
	case tooLarge:
		return nil, reject(http.StatusRequestEntityTooLarge, ReasonTooLarge, "body larger than %d bytes", MaxBody)
	case errors.Is(err, signer.ErrExpired):
		return nil, reject(http.StatusUnauthorized, ReasonExpired, "%v", err)
	case errors.Is(err, signer.ErrFuture):
		return nil, reject(http.StatusUnauthorized, ReasonFuture, "%v", err)
	case err != nil:
		return nil, reject(http.StatusUnauthorized, ReasonSignature, "%v", err)
	}

	canon, err := signer.CanonicalizeJSON(body)
	if err != nil {
		return nil, reject(http.StatusBadRequest, ReasonNotJSON, "body is not JSON: %v", err)
	}
	if !bytes.Equal(canon, body) {
		return nil, reject(http.StatusBadRequest, ReasonNotCanonical, "body is not canonical JSON")
	}

	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, reject(http.StatusBadRequest, ReasonShape, "body must be a JSON object")
	}
	var bodyTenant, bodyDelivery string
	if err := json.Unmarshal(top["tenant"], &bodyTenant); err != nil {
		return nil, reject(http.StatusBadRequest, ReasonTenantMismatch, "body tenant must be a string")
	}
	if bodyTenant != h.tenant {
		return nil, reject(http.StatusBadRequest, ReasonTenantMismatch,
			"body tenant %q does not match header %s %q", bodyTenant, signer.HeaderTenant, h.tenant)
	}
	if err := json.Unmarshal(top["delivery_id"], &bodyDelivery); err != nil {
		return nil, reject(http.StatusBadRequest, ReasonDeliveryMismatch, "body delivery_id must be a string")
	}
	if bodyDelivery != h.delivery {
		return nil, reject(http.StatusBadRequest, ReasonDeliveryMismatch,
			"body delivery_id %q does not match header %s %q", bodyDelivery, signer.HeaderDeliveryID, h.delivery)
	}

	entries, rej := parseItems(top["items"], h.tenant, h.delivery)
	if rej != nil {
		return nil, rej
	}
	return &delivery{tenant: h.tenant, delivery: h.delivery, sent: h.sent, entries: entries}, nil
}

func parseItems(raw json.RawMessage, tenant, deliveryID string) ([]Entry, *rejection) {
	var list []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, reject(http.StatusUnprocessableEntity, ReasonItems, "items must be a non-empty array")
	}
	if len(list) == 0 {
		return nil, reject(http.StatusUnprocessableEntity, ReasonItems, "items must be a non-empty array")
	}
	entries := make([]Entry, 0, len(list))
	for i, itemRaw := range list {
		var item map[string]any
		dec := json.NewDecoder(bytes.NewReader(itemRaw))
		dec.UseNumber()
		if err := dec.Decode(&item); err != nil || item == nil {
			return nil, reject(http.StatusUnprocessableEntity, ReasonItems, "items[%d] must be an object", i)
		}
		op, _ := item["op"].(string)
		if op != "upsert" && op != "delete" {
			return nil, reject(http.StatusUnprocessableEntity, ReasonItems,
				"items[%d].op must be \"upsert\" or \"delete\"", i)
		}
		code, _ := item["item_code"].(string)
		if code == "" {
			return nil, reject(http.StatusUnprocessableEntity, ReasonItems,
				"items[%d].item_code must be a non-empty string", i)
		}
		num, ok := item["version"].(json.Number)
		if !ok {
			return nil, reject(http.StatusUnprocessableEntity, ReasonItems,
				"items[%d].version must be an integer", i)
		}
		version, err := strconv.ParseInt(num.String(), 10, 64)
		if err != nil {
			return nil, reject(http.StatusUnprocessableEntity, ReasonItems,
				"items[%d].version must be an integer, got %s", i, num)
		}
		entries = append(entries, Entry{
			Tenant: tenant, DeliveryID: deliveryID, Op: op, ItemCode: code,
			Version: version, Item: item, Raw: itemRaw,
		})
	}
	return entries, nil
}

// apply records a verified delivery; it reports whether the delivery id had
// already been accepted for this tenant within the id's replay window (see
// MaxRemembered), and then applies nothing.
func (r *Receiver) apply(d *delivery) (duplicate bool) {
	key := keyOf(d.tenant, d.delivery)
	var lines []byte
	r.mu.Lock()
	r.ids.expire(r.now())
	if r.ids.remember(key, d.sent.Add(r.window+rememberSlack)) {
		r.duplicates++
		r.mu.Unlock()
		return true
	}
	ts := r.tenants[d.tenant]
	if ts == nil {
		ts = &tenantState{items: make(map[string]Entry)}
		r.tenants[d.tenant] = ts
	}
	r.accepted++
	for _, e := range d.entries {
		if old, ok := ts.items[e.ItemCode]; ok {
			if old.Version > e.Version {
				r.stale++
				continue
			}
			if old.Version == e.Version {
				r.restated++
			}
		}
		ts.items[e.ItemCode] = e
		r.items++
		if r.out != nil {
			lines = appendLine(lines, &e)
		}
	}
	// Take the output lock before releasing the state lock so that lines
	// reach Out in the order the deliveries were applied.
	if len(lines) > 0 {
		r.outMu.Lock()
	}
	r.mu.Unlock()
	if len(lines) > 0 {
		_, _ = r.out.Write(lines)
		r.outMu.Unlock()
	}
	return false
}

// appendLine formats one accepted item:
//
//	accepted tenant=acme delivery=d-1 op=upsert item=ITEM-1 version=7 name="Lamp"
//
// Values that are not plain tokens are quoted with %q, so a hostile value
// cannot forge a line; name is always quoted and omitted when absent.
func appendLine(b []byte, e *Entry) []byte {
	b = append(b, "accepted tenant="...)
	b = appendValue(b, e.Tenant)
	b = append(b, " delivery="...)
	b = appendValue(b, e.DeliveryID)
	b = append(b, " op="...)
	b = appendValue(b, e.Op)
	b = append(b, " item="...)
	b = appendValue(b, e.ItemCode)
	b = append(b, " version="...)
	b = strconv.AppendInt(b, e.Version, 10)
	if name, ok := e.Item["item_name"]; ok && name != nil {
		s, isStr := name.(string)
		if !isStr {
			s = fmt.Sprint(name)
		}
		b = append(b, " name="...)
		b = strconv.AppendQuote(b, s)
	}
	return append(b, '\n')
}

func appendValue(b []byte, s string) []byte {
	if s == "" {
		return append(b, `""`...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f {
			return strconv.AppendQuote(b, s)
		}
	}
	return append(b, s...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve listens on addr (for example "127.0.0.1:0") and serves r until ctx is
// done, then shuts down gracefully (in-flight requests get up to 5s). url is
// the base URL ("http://127.0.0.1:PORT"); wait blocks until the server has
// stopped and returns its error, nil after a clean shutdown.
func Serve(ctx context.Context, addr string, r *Receiver) (url string, wait func() error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	done := make(chan error, 1)
	go func() {
		var err error
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = srv.Shutdown(sctx)
			cancel()
			if e := <-serveErr; e != nil && !errors.Is(e, http.ErrServerClosed) && err == nil {
				err = e
			}
		case e := <-serveErr: // listener failed on its own
			if !errors.Is(e, http.ErrServerClosed) {
				err = e
			}
		}
		done <- err
	}()

	var once sync.Once
	var result error
	wait = func() error {
		once.Do(func() { result = <-done })
		return result
	}
	return "http://" + ln.Addr().String(), wait, nil
}
