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

// MaxBody is the largest body accepted (413 above it).
const MaxBody = 10 << 20

// Rejection reasons: the keys of Stats.Rejected.
const (
	ReasonFault            = "fault"             // Options.Fault answered
	ReasonMethod           = "method"            // 405
	ReasonContentType      = "content_type"      // 415
	ReasonMissingHeader    = "missing_header"    // 400
	ReasonUnknownTenant    = "unknown_tenant"    // 401
	ReasonTimestamp        = "timestamp"         // 401: not decimal digits
	ReasonExpired          = "expired"           // 401: older than the window
	ReasonFuture           = "future"            // 401: ahead of the clock
	ReasonSignature        = "signature"         // 401
	ReasonTooLarge         = "too_large"         // 413
	ReasonReadBody         = "read_body"         // 400: the body could not be read
	ReasonNotJSON          = "not_json"          // 400
	ReasonNotCanonical     = "not_canonical"     // 400
	ReasonShape            = "shape"             // 400: not an object / wrong types
	ReasonTenantMismatch   = "tenant_mismatch"   // 400
	ReasonDeliveryMismatch = "delivery_mismatch" // 400
	ReasonItems            = "items"             // 422: items or an item entry invalid
)

// Options configure a Receiver.
type Options struct {
	Tenants map[string][]byte // tenant id -> decoded secret
	Window  time.Duration     // replay window; default signer.Window
	Now     func() time.Time  // default time.Now
	// Out, when non-nil, gets one line per accepted item entry:
	//   accepted tenant=acme delivery=d-1 op=upsert item=ITEM-1 version=7 name="Lamp"
	Out    io.Writer
	Logger *slog.Logger // rejections (WARN) with reason; nil discards
	// Fault, when set, runs before any verification; handled=true answers
	// with status and header instead of processing the request, or, when
	// status is Drop, closes the connection without an answer. Fault may
	// sleep to make the request hang.
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
	Duplicates int64 // requests repeating an already-accepted delivery id (answered 200)
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
	accepted   int64
	items      int64
	duplicates int64
	stale      int64
	restated   int64
	rejected   map[string]int64

	outMu sync.Mutex // one Write per request, in acceptance order
}

type tenantState struct {
	deliveries map[string]struct{}
	items      map[string]Entry
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

// ServeHTTP verifies and applies one delivery.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)

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
					slog.String("delivery_id", req.Header.Get(signer.HeaderDeliveryID)))
				panic(http.ErrAbortHandler) // net/http closes the connection, logging nothing
			}
			r.log.LogAttrs(req.Context(), slog.LevelWarn, "request rejected",
				slog.String("reason", ReasonFault), slog.Int("status", status),
				slog.String("delivery_id", req.Header.Get(signer.HeaderDeliveryID)))
			writeJSON(w, status, map[string]any{"status": "fault", "error": "injected fault"})
			return
		}
	}

	tenant := req.Header.Get(signer.HeaderTenant)
	delivery := req.Header.Get(signer.HeaderDeliveryID)
	d, rej := r.verify(req, body, tooLarge, readErr)
	if rej != nil {
		r.count(rej.reason)
		r.log.LogAttrs(req.Context(), slog.LevelWarn, "request rejected: "+rej.msg,
			slog.String("reason", rej.reason), slog.Int("status", rej.status),
			slog.String("tenant", tenant), slog.String("delivery_id", delivery),
			slog.String("remote", req.RemoteAddr))
		if rej.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		writeJSON(w, rej.status, map[string]any{"status": "rejected", "reason": rej.reason, "error": rej.msg})
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

func (r *Receiver) count(reason string) {
	r.mu.Lock()
	r.rejected[reason]++
	r.mu.Unlock()
}

// readBody reads at most MaxBody bytes; tooLarge reports that more followed.
// A declared Content-Length sizes the buffer in one allocation.
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
	entries  []Entry
}

var requiredHeaders = [...]string{
	signer.HeaderSignature,
	signer.HeaderTimestamp,
	signer.HeaderTenant,
	signer.HeaderDeliveryID,
	"User-Agent",
}

func (r *Receiver) verify(req *http.Request, body []byte, tooLarge bool, readErr error) (*delivery, *rejection) {
	if req.Method != http.MethodPost {
		return nil, reject(http.StatusMethodNotAllowed, ReasonMethod, "method %s not allowed: use POST", req.Method)
	}
	ct := req.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, reject(http.StatusUnsupportedMediaType, ReasonContentType, "content type %q: want application/json", ct)
	}
	for _, h := range requiredHeaders {
		if req.Header.Get(h) == "" {
			return nil, reject(http.StatusBadRequest, ReasonMissingHeader, "missing header %s", h)
		}
	}
	tenant := req.Header.Get(signer.HeaderTenant)
	r.mu.Lock()
	key := r.keys[tenant]
	r.mu.Unlock()
	if key == nil {
		return nil, reject(http.StatusUnauthorized, ReasonUnknownTenant, "unknown tenant")
	}
	if readErr != nil {
		return nil, reject(http.StatusBadRequest, ReasonReadBody, "reading body: %v", readErr)
	}

	// signer.Verify checks, in order: timestamp digits, signature, window.
	// The signature can only be checked over the whole body, so an
	// oversized body is refused (413) once the timestamp is well formed.
	err := signer.Verify(key, req.Header.Get(signer.HeaderTimestamp), body,
		req.Header.Get(signer.HeaderSignature), r.now(), r.window)
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
	if bodyTenant != tenant {
		return nil, reject(http.StatusBadRequest, ReasonTenantMismatch,
			"body tenant %q does not match header %s %q", bodyTenant, signer.HeaderTenant, tenant)
	}
	hdrDelivery := req.Header.Get(signer.HeaderDeliveryID)
	if err := json.Unmarshal(top["delivery_id"], &bodyDelivery); err != nil {
		return nil, reject(http.StatusBadRequest, ReasonDeliveryMismatch, "body delivery_id must be a string")
	}
	if bodyDelivery != hdrDelivery {
		return nil, reject(http.StatusBadRequest, ReasonDeliveryMismatch,
			"body delivery_id %q does not match header %s %q", bodyDelivery, signer.HeaderDeliveryID, hdrDelivery)
	}

	entries, rej := parseItems(top["items"], tenant, hdrDelivery)
	if rej != nil {
		return nil, rej
	}
	return &delivery{tenant: tenant, delivery: hdrDelivery, entries: entries}, nil
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
// already been accepted for this tenant.
func (r *Receiver) apply(d *delivery) (duplicate bool) {
	var lines []byte
	r.mu.Lock()
	ts := r.tenants[d.tenant]
	if ts == nil {
		ts = &tenantState{deliveries: make(map[string]struct{}), items: make(map[string]Entry)}
		r.tenants[d.tenant] = ts
	}
	if _, seen := ts.deliveries[d.delivery]; seen {
		r.duplicates++
		r.mu.Unlock()
		return true
	}
	ts.deliveries[d.delivery] = struct{}{}
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
