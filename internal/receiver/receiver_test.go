package receiver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderweave/erpsync/client"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/signer"
)

// PROTOCOL.md reference vector.
const (
	refSecret = "ZXJwc3luYy1yZWZlcmVuY2Utc2VjcmV0LTMyYnl0ZXM="
	refTS     = 1700000000
	refBody   = `{"delivery_id":"d-1","items":[{"item_code":"A1","op":"upsert","version":1}],"tenant":"acme"}`
	refSig    = "A0WAbhX8WXPIJvrXdVxQ2ZePLv0QF9etYJFG/71gLbg="
)

var (
	refKey   = mustKey(refSecret)
	otherKey = []byte("fedcba9876543210fedcba9876543210")
	refNow   = func() time.Time { return time.Unix(refTS, 0) }
)

func mustKey(s string) []byte {
	k, err := signer.DecodeSecret(s)
	if err != nil {
		panic(err)
	}
	return k
}

// syncBuffer is a goroutine-safe sink for Out and logs.
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

// post sends one request over real loopback HTTP and returns status and body.
func post(t *testing.T, url string, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signedRequest builds a valid request for tenant acme with body, signed with
// key at ts.
func signedRequest(t *testing.T, url, deliveryID, body string, ts int64, key []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "erpsync/test")
	req.Header.Set(signer.HeaderTenant, "acme")
	req.Header.Set(signer.HeaderDeliveryID, deliveryID)
	ts10 := strconv.FormatInt(ts, 10)
	req.Header.Set(signer.HeaderTimestamp, ts10)
	req.Header.Set(signer.HeaderSignature, signer.Sign(key, ts, []byte(body)))
	return req
}

// canonicalBody builds a canonical delivery body.
func canonicalBody(t testing.TB, tenant, deliveryID string, items ...map[string]any) string {
	t.Helper()
	list := make([]any, len(items))
	for i, it := range items {
		list[i] = it
	}
	b, err := signer.Canonical(map[string]any{"tenant": tenant, "delivery_id": deliveryID, "items": list})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReferenceVector(t *testing.T) {
	out := &syncBuffer{}
	r := receiver.New(receiver.Options{Tenants: map[string][]byte{"acme": refKey}, Now: refNow, Out: out})
	srv := httptest.NewServer(r)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(refBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "erpsync/1.0.0")
	req.Header.Set(signer.HeaderTenant, "acme")
	req.Header.Set(signer.HeaderDeliveryID, "d-1")
	req.Header.Set(signer.HeaderTimestamp, strconv.Itoa(refTS))
	req.Header.Set(signer.HeaderSignature, refSig) // literal, not recomputed

	status, body := post(t, srv.URL, req)
	if status != 200 || body != `{"status":"accepted","items":1}` {
		t.Fatalf("reference vector: %d %s", status, body)
	}
	if got, want := out.String(), "accepted tenant=acme delivery=d-1 op=upsert item=A1 version=1\n"; got != want {
		t.Fatalf("Out = %q, want %q", got, want)
	}
	e, ok := r.Items("acme")["A1"]
	if !ok || e.Version != 1 || e.Op != "upsert" || e.DeliveryID != "d-1" || e.Tenant != "acme" ||
		string(e.Raw) != `{"item_code":"A1","op":"upsert","version":1}` || e.Item["version"] != json.Number("1") {
		t.Fatalf("entry = %+v", e)
	}
	if st := r.Stats(); st.Requests != 1 || st.Accepted != 1 || st.Items != 1 || len(st.Rejected) != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestRejections(t *testing.T) {
	const now = 1_800_000_000
	valid := func(t *testing.T) string {
		return canonicalBody(t, "acme", "d-1", map[string]any{"item_code": "A1", "op": "upsert", "version": 1, "name": "Lamp"})
	}
	withItems := func(items string) func(*testing.T) string {
		return func(*testing.T) string {
			return `{"delivery_id":"d-1","items":` + items + `,"tenant":"acme"}`
		}
	}
	fixed := func(s string) func(*testing.T) string { return func(*testing.T) string { return s } }
	big := `{"delivery_id":"d-1","items":[{"item_code":"A1","name":"` + strings.Repeat("x", receiver.MaxBody) + `","op":"upsert","version":1}],"tenant":"acme"}`

	tests := []struct {
		name   string
		body   func(*testing.T) string // default valid
		ts     int64                   // default now
		key    []byte                  // default refKey
		method string
		header map[string]string // set ("-" deletes) after signing
		// chunked sends the body without a Content-Length.
		chunked bool
		status  int
		reason  string // in Stats.Rejected and the log
		answer  string // the reason in the answer; default reason
		msg     string
	}{
		{name: "method", method: http.MethodPut, status: 405, reason: receiver.ReasonMethod, msg: "method PUT not allowed"},
		{name: "get", method: http.MethodGet, status: 405, reason: receiver.ReasonMethod, msg: "use POST"},
		{name: "content type", header: map[string]string{"Content-Type": "text/plain"}, status: 415, reason: receiver.ReasonContentType, msg: "want application/json"},
		{name: "no content type", header: map[string]string{"Content-Type": "-"}, status: 415, reason: receiver.ReasonContentType},
		{name: "missing signature", header: map[string]string{signer.HeaderSignature: "-"}, status: 400, reason: receiver.ReasonMissingHeader, msg: "missing header X-OrderWeave-Signature"},
		{name: "missing timestamp", header: map[string]string{signer.HeaderTimestamp: "-"}, status: 400, reason: receiver.ReasonMissingHeader, msg: "missing header X-OrderWeave-Timestamp"},
		{name: "missing tenant", header: map[string]string{signer.HeaderTenant: "-"}, status: 400, reason: receiver.ReasonMissingHeader, msg: "missing header X-Tenant-Id"},
		{name: "missing delivery id", header: map[string]string{signer.HeaderDeliveryID: "-"}, status: 400, reason: receiver.ReasonMissingHeader, msg: "missing header X-OrderWeave-Delivery-Id"},
		{name: "missing user agent", header: map[string]string{"User-Agent": "-"}, status: 400, reason: receiver.ReasonMissingHeader, msg: "missing header User-Agent"},
		{name: "delivery id too long", header: map[string]string{signer.HeaderDeliveryID: strings.Repeat("d", receiver.MaxDeliveryID+1)}, status: 400, reason: receiver.ReasonDeliveryID, msg: "longer than the 128 allowed"},
		{name: "unknown tenant", header: map[string]string{signer.HeaderTenant: "nobody"}, status: 401, reason: receiver.ReasonUnknownTenant, answer: receiver.ReasonUnauthorized, msg: "tenant or signature not accepted"},
		// The timestamp and the size are answered alike for every tenant.
		{name: "unknown tenant expired", ts: now - 301, header: map[string]string{signer.HeaderTenant: "nobody"}, status: 401, reason: receiver.ReasonExpired, msg: "window"},
		{name: "unknown tenant future", ts: now + 3600, header: map[string]string{signer.HeaderTenant: "nobody"}, status: 401, reason: receiver.ReasonFuture, msg: "future"},
		{name: "unknown tenant too large", body: fixed(big), header: map[string]string{signer.HeaderTenant: "nobody"}, status: 413, reason: receiver.ReasonTooLarge, msg: "larger than"},
		{name: "timestamp not digits", header: map[string]string{signer.HeaderTimestamp: "1.8e9"}, status: 401, reason: receiver.ReasonTimestamp, msg: "timestamp"},
		{name: "timestamp negative", header: map[string]string{signer.HeaderTimestamp: "-1800000000"}, status: 401, reason: receiver.ReasonTimestamp},
		{name: "expired", ts: now - 301, status: 401, reason: receiver.ReasonExpired, msg: "window"},
		{name: "future", ts: now + 3600, status: 401, reason: receiver.ReasonFuture, msg: "future"},
		{name: "expired wrong secret", ts: now - 301, key: otherKey, status: 401, reason: receiver.ReasonExpired, msg: "window"},
		{name: "wrong secret", key: otherKey, status: 401, reason: receiver.ReasonSignature, answer: receiver.ReasonUnauthorized, msg: "tenant or signature not accepted"},
		{name: "signature garbage", header: map[string]string{signer.HeaderSignature: "not-base64"}, status: 401, reason: receiver.ReasonSignature, answer: receiver.ReasonUnauthorized},
		{name: "too large", body: fixed(big), status: 413, reason: receiver.ReasonTooLarge, msg: "larger than"},
		{name: "too large chunked", body: fixed(big), chunked: true, status: 413, reason: receiver.ReasonTooLarge, msg: "larger than"},
		{name: "not json", body: fixed(`{"delivery_id":"d-1",`), status: 400, reason: receiver.ReasonNotJSON, msg: "body is not JSON"},
		{name: "keys unsorted", body: fixed(`{"tenant":"acme","delivery_id":"d-1","items":[{"item_code":"A1","op":"upsert","version":1}]}`),
			status: 400, reason: receiver.ReasonNotCanonical, msg: "body is not canonical JSON"},
		{name: "whitespace", body: fixed(`{"delivery_id": "d-1","items":[{"item_code":"A1","op":"upsert","version":1}],"tenant":"acme"}`),
			status: 400, reason: receiver.ReasonNotCanonical, msg: "body is not canonical JSON"},
		{name: "number form", body: withItems(`[{"item_code":"A1","op":"upsert","version":1.0}]`), status: 400, reason: receiver.ReasonNotCanonical},
		{name: "not an object", body: fixed(`[1,2]`), status: 400, reason: receiver.ReasonShape, msg: "JSON object"},
		{name: "tenant mismatch", body: func(t *testing.T) string {
			return canonicalBody(t, "other", "d-1", map[string]any{"item_code": "A1", "op": "upsert", "version": 1})
		}, status: 400, reason: receiver.ReasonTenantMismatch, msg: `body tenant "other" does not match`},
		{name: "tenant missing", body: fixed(`{"delivery_id":"d-1","items":[{"item_code":"A1","op":"upsert","version":1}]}`), status: 400, reason: receiver.ReasonTenantMismatch},
		{name: "delivery mismatch", body: func(t *testing.T) string {
			return canonicalBody(t, "acme", "d-2", map[string]any{"item_code": "A1", "op": "upsert", "version": 1})
		}, status: 400, reason: receiver.ReasonDeliveryMismatch, msg: `body delivery_id "d-2" does not match`},
		{name: "items missing", body: fixed(`{"delivery_id":"d-1","tenant":"acme"}`), status: 422, reason: receiver.ReasonItems, msg: "items must be a non-empty array"},
		{name: "items empty", body: withItems(`[]`), status: 422, reason: receiver.ReasonItems, msg: "items must be a non-empty array"},
		{name: "items object", body: withItems(`{"item_code":"A1"}`), status: 422, reason: receiver.ReasonItems, msg: "items must be a non-empty array"},
		{name: "item not object", body: withItems(`["A1"]`), status: 422, reason: receiver.ReasonItems, msg: "items[0] must be an object"},
		{name: "bad op", body: withItems(`[{"item_code":"A1","op":"merge","version":1}]`), status: 422, reason: receiver.ReasonItems, msg: "items[0].op"},
		{name: "missing op", body: withItems(`[{"item_code":"A1","version":1}]`), status: 422, reason: receiver.ReasonItems, msg: "items[0].op"},
		{name: "empty item_code", body: withItems(`[{"item_code":"","op":"upsert","version":1}]`), status: 422, reason: receiver.ReasonItems, msg: "items[0].item_code"},
		{name: "numeric item_code", body: withItems(`[{"item_code":7,"op":"upsert","version":1}]`), status: 422, reason: receiver.ReasonItems, msg: "items[0].item_code"},
		{name: "fractional version", body: withItems(`[{"item_code":"A1","op":"upsert","version":1.5}]`), status: 422, reason: receiver.ReasonItems, msg: "items[0].version"},
		{name: "string version", body: withItems(`[{"item_code":"A1","op":"upsert","version":"1"}]`), status: 422, reason: receiver.ReasonItems, msg: "items[0].version"},
		{name: "missing version", body: withItems(`[{"item_code":"A1","op":"delete"}]`), status: 422, reason: receiver.ReasonItems, msg: "items[0].version"},
		{name: "second entry bad", body: withItems(`[{"item_code":"A1","op":"upsert","version":1},{"item_code":"A2","op":"upsert"}]`), status: 422, reason: receiver.ReasonItems, msg: "items[1].version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := &syncBuffer{}
			logs := &syncBuffer{}
			r := receiver.New(receiver.Options{
				Tenants: map[string][]byte{"acme": refKey},
				Now:     func() time.Time { return time.Unix(now, 0) },
				Out:     out,
				Logger:  slog.New(slog.NewTextHandler(logs, nil)),
			})
			srv := httptest.NewServer(r)
			defer srv.Close()

			body := valid(t)
			if tt.body != nil {
				body = tt.body(t)
			}
			ts, key := int64(now), refKey
			if tt.ts != 0 {
				ts = tt.ts
			}
			if tt.key != nil {
				key = tt.key
			}
			req := signedRequest(t, srv.URL, "d-1", body, ts, key)
			if tt.method != "" {
				req.Method = tt.method
			}
			for h, v := range tt.header {
				if v == "-" {
					req.Header.Del(h)
				} else {
					req.Header.Set(h, v)
				}
			}
			if tt.header["User-Agent"] == "-" {
				req.Header["User-Agent"] = []string{""} // net/http would add its own otherwise
			}
			if tt.chunked {
				req.Body, req.ContentLength = io.NopCloser(strings.NewReader(body)), -1
			}
			answer := tt.reason
			if tt.answer != "" {
				answer = tt.answer
			}

			status, resp := post(t, srv.URL, req)
			if status != tt.status {
				t.Fatalf("status %d (%s), want %d", status, resp, tt.status)
			}
			var parsed struct{ Status, Reason, Error string }
			if err := json.Unmarshal([]byte(resp), &parsed); err != nil || parsed.Status != "rejected" || parsed.Reason != answer {
				t.Fatalf("body %s: want status rejected, reason %s", resp, answer)
			}
			if !strings.Contains(parsed.Error, tt.msg) {
				t.Fatalf("error %q does not contain %q", parsed.Error, tt.msg)
			}
			st := r.Stats()
			if st.Rejected[tt.reason] != 1 || len(st.Rejected) != 1 || st.Accepted != 0 || st.Items != 0 || st.Requests != 1 {
				t.Fatalf("stats = %+v", st)
			}
			if out.String() != "" || len(r.Items("acme")) != 0 {
				t.Fatalf("rejected request printed %q / stored %v", out.String(), r.Items("acme"))
			}
			l := logs.String()
			if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "reason="+tt.reason) {
				t.Fatalf("log lacks a WARN line with reason=%s:\n%s", tt.reason, l)
			}
			if strings.Contains(l, refSecret) || strings.Contains(l, string(refKey)) {
				t.Fatal("log contains the secret")
			}
		})
	}
}

// A body is accepted once valid(...) passes: guards the table above against
// rejecting everything for an unrelated reason.
func TestValidRequestAccepted(t *testing.T) {
	const now = 1_800_000_000
	out := &syncBuffer{}
	r := receiver.New(receiver.Options{Tenants: map[string][]byte{"acme": refKey}, Now: func() time.Time { return time.Unix(now, 0) }, Out: out})
	srv := httptest.NewServer(r)
	defer srv.Close()
	body := canonicalBody(t, "acme", "d-1",
		map[string]any{"item_code": "A1", "op": "upsert", "version": 3, "item_name": `Lamp "Deluxe"` + "\n2nd", "price": json.Number("19.99")},
		map[string]any{"item_code": "B 2", "op": "delete", "version": 4},
	)
	for _, ts := range []int64{now, now - 299, now + 5} { // window edges
		id := fmt.Sprintf("d-%d", ts)
		b := strings.Replace(body, `"d-1"`, strconv.Quote(id), 1)
		req := signedRequest(t, srv.URL, id, b, ts, refKey)
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		if status, resp := post(t, srv.URL, req); status != 200 || resp != `{"status":"accepted","items":2}` {
			t.Fatalf("ts %d: %d %s", ts, status, resp)
		}
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	wantFirst := []string{
		`accepted tenant=acme delivery=d-1800000000 op=upsert item=A1 version=3 name="Lamp \"Deluxe\"\n2nd"`,
		`accepted tenant=acme delivery=d-1800000000 op=delete item="B 2" version=4`,
	}
	if len(lines) != 6 || lines[0] != wantFirst[0] || lines[1] != wantFirst[1] {
		t.Fatalf("Out:\n%s\nwant first lines:\n%s", out.String(), strings.Join(wantFirst, "\n"))
	}
	if e := r.Items("acme")["A1"]; e.Item["price"] != json.Number("19.99") {
		t.Fatalf("price = %#v, want json.Number 19.99", e.Item["price"])
	}
}

func TestDuplicateDelivery(t *testing.T) {
	out := &syncBuffer{}
	r := receiver.New(receiver.Options{Tenants: map[string][]byte{"acme": refKey, "beta": otherKey}, Out: out})
	srv := httptest.NewServer(r)
	defer srv.Close()
	body := canonicalBody(t, "acme", "d-dup", map[string]any{"item_code": "A1", "op": "upsert", "version": 1})

	want := []string{`{"status":"accepted","items":1}`, `{"status":"duplicate"}`, `{"status":"duplicate"}`}
	for i, w := range want {
		// Each retry is signed afresh, as the agent does.
		req := signedRequest(t, srv.URL, "d-dup", body, time.Now().Unix()+int64(i%2), refKey)
		if status, resp := post(t, srv.URL, req); status != 200 || resp != w {
			t.Fatalf("request %d: %d %s, want 200 %s", i, status, resp, w)
		}
	}
	// The same delivery id for another tenant is a different message.
	betaBody := canonicalBody(t, "beta", "d-dup", map[string]any{"item_code": "A1", "op": "upsert", "version": 1})
	req := signedRequest(t, srv.URL, "d-dup", betaBody, time.Now().Unix(), otherKey)
	req.Header.Set(signer.HeaderTenant, "beta")
	if status, resp := post(t, srv.URL, req); status != 200 || resp != `{"status":"accepted","items":1}` {
		t.Fatalf("other tenant: %d %s", status, resp)
	}

	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Fatalf("Out has %d lines, want 2:\n%s", n, out.String())
	}
	if st := r.Stats(); st.Accepted != 2 || st.Duplicates != 2 || st.Items != 2 || st.Requests != 4 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestStaleVersions(t *testing.T) {
	tests := []struct {
		name      string
		versions  []int64 // one delivery each, same item, in arrival order
		wantFinal int64
		wantStale int64
		wantLines int
	}{
		{"in order", []int64{1, 2, 3}, 3, 0, 3},
		{"older arrives late", []int64{2, 1}, 2, 1, 1},
		{"several late", []int64{5, 3, 4, 6, 1}, 6, 3, 2},
		{"same version again", []int64{2, 2}, 2, 0, 2},
	}
	restated := map[string]int64{"same version again": 1}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := &syncBuffer{}
			r := receiver.New(receiver.Options{Tenants: map[string][]byte{"acme": refKey}, Out: out})
			srv := httptest.NewServer(r)
			defer srv.Close()
			for i, v := range tt.versions {
				id := fmt.Sprintf("d-%d", i)
				body := canonicalBody(t, "acme", id, map[string]any{"item_code": "A1", "op": "upsert", "version": v, "name": fmt.Sprint("v", v)})
				if status, resp := post(t, srv.URL, signedRequest(t, srv.URL, id, body, time.Now().Unix(), refKey)); status != 200 {
					t.Fatalf("delivery %d: %d %s", i, status, resp)
				}
			}
			e := r.Items("acme")["A1"]
			if e.Version != tt.wantFinal || e.Item["name"] != fmt.Sprint("v", tt.wantFinal) {
				t.Fatalf("final = v%d %v, want v%d", e.Version, e.Item["name"], tt.wantFinal)
			}
			st := r.Stats()
			if st.Stale != tt.wantStale || st.Items != int64(len(tt.versions))-tt.wantStale || st.Accepted != int64(len(tt.versions)) || st.Restated != restated[tt.name] {
				t.Fatalf("stats = %+v", st)
			}
			if n := strings.Count(out.String(), "\n"); n != tt.wantLines {
				t.Fatalf("Out has %d lines, want %d:\n%s", n, tt.wantLines, out.String())
			}
		})
	}
}

func newClient(t *testing.T, url string, key []byte) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{
		URL: url, TenantID: "acme", Key: key, Timeout: 5 * time.Second,
		Retries: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond,
		UserAgent: "erpsync/test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func clientRequest(t *testing.T, id string, items ...map[string]any) client.Request {
	codes := make([]string, len(items))
	for i, it := range items {
		codes[i] = it["item_code"].(string)
	}
	return client.Request{DeliveryID: id, Items: codes, Body: []byte(canonicalBody(t, "acme", id, items...))}
}

// Client → receiver over a real listener from Serve, with injected faults
// and a graceful shutdown.
func TestRoundTrip(t *testing.T) {
	var faults atomic.Int32
	out := &syncBuffer{}
	r := receiver.New(receiver.Options{
		Tenants: map[string][]byte{"acme": refKey},
		Out:     out,
		Fault: func(req *http.Request, body []byte) (int, http.Header, bool) {
			// The first attempt of d-2 meets a 503, the next a 429.
			if req.Header.Get(signer.HeaderDeliveryID) != "d-2" || !bytes.Contains(body, []byte(`"d-2"`)) {
				return 0, nil, false
			}
			switch faults.Add(1) {
			case 1:
				return http.StatusServiceUnavailable, http.Header{"Retry-After": {"1"}}, true
			case 2:
				return http.StatusTooManyRequests, nil, true
			}
			return 0, nil, false
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, wait, err := receiver.Serve(ctx, "127.0.0.1:0", r)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, url, refKey)

	res := c.Deliver(ctx, clientRequest(t, "d-1",
		map[string]any{"item_code": "A1", "op": "upsert", "version": 1, "item_name": "Lamp", "price": json.Number("19.99")},
		map[string]any{"item_code": "A2", "op": "delete", "version": 7}))
	if res.Outcome != client.Delivered || res.Status != 200 || res.Attempts != 1 || res.Response != `{"status":"accepted","items":2}` {
		t.Fatalf("d-1: %+v", res)
	}
	res = c.Deliver(ctx, clientRequest(t, "d-2", map[string]any{"item_code": "A1", "op": "upsert", "version": 2, "item_name": "Lamp v2"}))
	if res.Outcome != client.Delivered || res.Attempts != 3 || faults.Load() != 3 {
		t.Fatalf("d-2 through faults: %+v (faults %d)", res, faults.Load())
	}
	// A replay of d-1 (e.g. the agent crashed before marking it) is a 2xx duplicate.
	res = c.Deliver(ctx, clientRequest(t, "d-1", map[string]any{"item_code": "A1", "op": "upsert", "version": 1}))
	if res.Outcome != client.Delivered || res.Response != `{"status":"duplicate"}` {
		t.Fatalf("replay: %+v", res)
	}

	items := r.Items("acme")
	if len(items) != 2 || items["A1"].Version != 2 || items["A1"].Item["item_name"] != "Lamp v2" || items["A2"].Op != "delete" {
		t.Fatalf("items = %+v", items)
	}
	want := "accepted tenant=acme delivery=d-1 op=upsert item=A1 version=1 name=\"Lamp\"\n" +
		"accepted tenant=acme delivery=d-1 op=delete item=A2 version=7\n" +
		"accepted tenant=acme delivery=d-2 op=upsert item=A1 version=2 name=\"Lamp v2\"\n"
	if out.String() != want {
		t.Fatalf("Out:\n%s\nwant:\n%s", out.String(), want)
	}
	st := r.Stats()
	if st.Requests != 5 || st.Accepted != 2 || st.Duplicates != 1 || st.Rejected[receiver.ReasonFault] != 2 {
		t.Fatalf("stats = %+v", st)
	}

	cancel()
	if err := wait(); err != nil {
		t.Fatalf("wait after shutdown: %v", err)
	}
	if resp, err := http.Post(url, "application/json", strings.NewReader("{}")); err == nil {
		resp.Body.Close()
		t.Fatal("server still answering after shutdown")
	}
}

// The "wrong secret, then fixed" story: 401 while the secrets differ, 200
// once the receiver learns the agent's secret, without restarting either.
func TestWrongSecretThenFixed(t *testing.T) {
	logs := &syncBuffer{}
	r := receiver.New(receiver.Options{Tenants: map[string][]byte{"acme": otherKey}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	srv := httptest.NewServer(r)
	defer srv.Close()
	c := newClient(t, srv.URL, refKey)
	req := clientRequest(t, "d-1", map[string]any{"item_code": "A1", "op": "upsert", "version": 1})

	res := c.Deliver(context.Background(), req)
	if res.Outcome != client.Unauthorized || res.Status != 401 || res.Attempts != 1 || !strings.Contains(res.Response, `"reason":"unauthorized"`) {
		t.Fatalf("wrong secret: %+v", res)
	}
	r.SetTenant("acme", refKey)
	res = c.Deliver(context.Background(), req)
	if res.Outcome != client.Delivered {
		t.Fatalf("after fix: %+v", res)
	}
	r.SetTenant("acme", nil) // removal
	res = c.Deliver(context.Background(), clientRequest(t, "d-2", map[string]any{"item_code": "A1", "op": "upsert", "version": 2}))
	if res.Outcome != client.Unauthorized || !strings.Contains(res.Response, `"reason":"unauthorized"`) {
		t.Fatalf("after removal: %+v", res)
	}
	// The operator still tells the two apart.
	if st := r.Stats(); st.Rejected[receiver.ReasonSignature] != 1 || st.Rejected[receiver.ReasonUnknownTenant] != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if l := logs.String(); !strings.Contains(l, "reason=signature") || !strings.Contains(l, "reason=unknown_tenant") {
		t.Fatalf("log does not name both reasons:\n%s", l)
	}
}

func TestConcurrentDeliveries(t *testing.T) {
	r := receiver.New(receiver.Options{Tenants: map[string][]byte{"acme": refKey}, Out: io.Discard})
	srv := httptest.NewServer(r)
	defer srv.Close()
	c := newClient(t, srv.URL, refKey)

	const workers, per = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				id := fmt.Sprintf("d-%d-%d", w, i)
				// Everyone updates the shared item S; versions interleave.
				res := c.Deliver(context.Background(), clientRequest(t, id,
					map[string]any{"item_code": fmt.Sprintf("W%d", w), "op": "upsert", "version": i},
					map[string]any{"item_code": "S", "op": "upsert", "version": w*per + i}))
				if res.Outcome != client.Delivered {
					t.Errorf("%s: %+v", id, res)
				}
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := r.Wait(ctx, func(r *receiver.Receiver) bool { return r.Stats().Accepted == workers*per })
	wg.Wait()
	if err != nil {
		t.Fatalf("Wait: %v (stats %+v)", err, r.Stats())
	}
	items := r.Items("acme")
	if len(items) != workers+1 || items["S"].Version != workers*per-1 {
		t.Fatalf("%d items, S at v%d", len(items), items["S"].Version)
	}
	for w := range workers {
		if v := items[fmt.Sprintf("W%d", w)].Version; v != per-1 {
			t.Fatalf("W%d at v%d", w, v)
		}
	}
	st := r.Stats()
	if st.Items+st.Stale != 2*workers*per {
		t.Fatalf("stats = %+v", st)
	}
}

func TestWaitTimesOut(t *testing.T) {
	r := receiver.New(receiver.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var calls int
	err := r.Wait(ctx, func(*receiver.Receiver) bool { calls++; return false })
	if !errors.Is(err, context.DeadlineExceeded) || calls < 2 {
		t.Fatalf("Wait = %v after %d polls", err, calls)
	}
	if err := r.Wait(context.Background(), func(*receiver.Receiver) bool { return true }); err != nil {
		t.Fatal(err)
	}
}

func TestServeBadAddress(t *testing.T) {
	if _, _, err := receiver.Serve(context.Background(), "256.0.0.1:http-nope", receiver.New(receiver.Options{})); err == nil {
		t.Fatal("Serve on a bad address succeeded")
	}
}

// TestFaultDrop: a Fault answering Drop closes the connection without a
// response; the request applies nothing.
func TestFaultDrop(t *testing.T) {
	r := receiver.New(receiver.Options{
		Tenants: map[string][]byte{"acme": refKey},
		Fault:   func(*http.Request, []byte) (int, http.Header, bool) { return receiver.Drop, nil, true },
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	body := canonicalBody(t, "acme", "d-1", map[string]any{"item_code": "A1", "op": "upsert", "version": 1})
	resp, err := http.DefaultClient.Do(signedRequest(t, srv.URL, "d-1", body, time.Now().Unix(), refKey))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got an answer (%d), want the connection closed", resp.StatusCode)
	}
	if st := r.Stats(); st.Accepted != 0 || st.Rejected[receiver.ReasonFault] != 1 || len(r.Items("acme")) != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// rawAnswer sends req on a connection of its own and returns the bytes that
// came back until the server closed it, but for the Date header line, which
// names the second it was sent.
func rawAnswer(t *testing.T, addr string, req *http.Request) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req.Close = true // so that the answer ends with the connection
	if err := req.Write(conn); err != nil {
		t.Fatalf("send: %v", err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read the answer: %v (got %q)", err, b)
	}
	return regexp.MustCompile(`(?m)^Date: [^\r\n]*\r\n`).ReplaceAllString(string(b), "")
}

// TestUnauthorizedIndistinguishable: an unknown tenant and a signature that
// does not match get the same answer, byte for byte; only the operator's
// log and Stats tell them apart.
func TestUnauthorizedIndistinguishable(t *testing.T) {
	logs := &syncBuffer{}
	r := receiver.New(receiver.Options{
		Tenants: map[string][]byte{"acme": refKey},
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	tests := []struct {
		name   string
		tenant string // header and body; default acme
		key    []byte // default refKey
		sig    string // replaces the signature
		reason string // in Stats and the log
	}{
		{name: "unknown tenant", tenant: "nobody", reason: receiver.ReasonUnknownTenant},
		{name: "unknown tenant signed with a tenant's key", tenant: "acme2", reason: receiver.ReasonUnknownTenant},
		{name: "wrong secret", key: otherKey, reason: receiver.ReasonSignature},
		{name: "signature not base64", sig: "not-base64", reason: receiver.ReasonSignature},
		{name: "signature of another body", sig: signer.Sign(refKey, time.Now().Unix(), []byte("{}")), reason: receiver.ReasonSignature},
	}
	var first string
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant, key := "acme", refKey
			if tt.tenant != "" {
				tenant = tt.tenant
			}
			if tt.key != nil {
				key = tt.key
			}
			body := canonicalBody(t, tenant, "d-1", map[string]any{"item_code": "A1", "op": "upsert", "version": 1})
			req := signedRequest(t, srv.URL, "d-1", body, time.Now().Unix(), key)
			req.Header.Set(signer.HeaderTenant, tenant)
			if tt.sig != "" {
				req.Header.Set(signer.HeaderSignature, tt.sig)
			}
			before := r.Stats().Rejected[tt.reason]
			got := rawAnswer(t, srv.Listener.Addr().String(), req)
			if !strings.HasPrefix(got, "HTTP/1.1 401 ") || !strings.Contains(got, `"reason":"`+receiver.ReasonUnauthorized+`"`) {
				t.Fatalf("answer:\n%s\nwant 401 with reason %s", got, receiver.ReasonUnauthorized)
			}
			if i == 0 {
				first = got
			} else if got != first {
				t.Fatalf("answer differs from the one to %q:\n%s\nfirst:\n%s", tests[0].name, got, first)
			}
			if r.Stats().Rejected[tt.reason] != before+1 {
				t.Fatalf("Stats.Rejected[%s] not counted: %+v", tt.reason, r.Stats())
			}
		})
	}
	l := logs.String()
	for _, want := range []string{"reason=" + receiver.ReasonUnknownTenant, "reason=" + receiver.ReasonSignature, "request rejected: unknown tenant", "request rejected: signature does not match"} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	if st := r.Stats(); st.Rejected[receiver.ReasonUnauthorized] != 0 {
		t.Errorf("%s is a Stats key: %+v", receiver.ReasonUnauthorized, st)
	}
}

// TestRefusedBeforeBody: a request refused on its method, headers,
// timestamp, declared size or tenant is answered while its body is still
// coming: the body here never ends.
func TestRefusedBeforeBody(t *testing.T) {
	r := receiver.New(receiver.Options{Tenants: map[string][]byte{"acme": refKey}})
	srv := httptest.NewServer(r)
	defer srv.Close()

	now := time.Now().Unix()
	tests := []struct {
		name          string
		method        string
		header        map[string]string
		ts            int64 // default now
		contentLength int64 // declared; default none (chunked)
		status        int
		reason        string // in Stats
	}{
		{name: "unknown tenant", header: map[string]string{signer.HeaderTenant: "nobody"}, status: 401, reason: receiver.ReasonUnknownTenant},
		{name: "unknown tenant, length declared", header: map[string]string{signer.HeaderTenant: "nobody"}, contentLength: 1000, status: 401, reason: receiver.ReasonUnknownTenant},
		{name: "expired", ts: now - 3600, status: 401, reason: receiver.ReasonExpired},
		{name: "future", ts: now + 3600, status: 401, reason: receiver.ReasonFuture},
		{name: "timestamp not digits", header: map[string]string{signer.HeaderTimestamp: "soon"}, status: 401, reason: receiver.ReasonTimestamp},
		{name: "missing signature", header: map[string]string{signer.HeaderSignature: "-"}, status: 400, reason: receiver.ReasonMissingHeader},
		{name: "delivery id too long", header: map[string]string{signer.HeaderDeliveryID: strings.Repeat("x", 1000)}, status: 400, reason: receiver.ReasonDeliveryID},
		{name: "content type", header: map[string]string{"Content-Type": "text/plain"}, status: 415, reason: receiver.ReasonContentType},
		{name: "method", method: http.MethodPut, status: 405, reason: receiver.ReasonMethod},
		{name: "declared too large", contentLength: receiver.MaxBody + 1, status: 413, reason: receiver.ReasonTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			defer pw.Close()
			go func() { _, _ = io.WriteString(pw, `{"delivery_id":"d-1","items":[`) }() // and never more
			// A watchdog, not a speed limit: a receiver that waits for the
			// body would otherwise hang the test (and the client with it,
			// as it waits for its body write to end).
			watchdog := time.AfterFunc(20*time.Second, func() { pw.CloseWithError(errors.New("watchdog: no answer within 20s")) })
			defer watchdog.Stop()

			ts := now
			if tt.ts != 0 {
				ts = tt.ts
			}
			method := http.MethodPost
			if tt.method != "" {
				method = tt.method
			}
			req, err := http.NewRequest(method, srv.URL, pr)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = tt.contentLength
			if tt.contentLength == 0 {
				req.ContentLength = -1
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "erpsync/test")
			req.Header.Set(signer.HeaderTenant, "acme")
			req.Header.Set(signer.HeaderDeliveryID, "d-1")
			req.Header.Set(signer.HeaderTimestamp, strconv.FormatInt(ts, 10))
			req.Header.Set(signer.HeaderSignature, signer.Sign(refKey, ts, []byte("{}")))
			for h, v := range tt.header {
				if v == "-" {
					req.Header.Del(h)
				} else {
					req.Header.Set(h, v)
				}
			}
			before := r.Stats().Rejected[tt.reason]
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("no answer while the body was still coming: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if n := r.Stats().Rejected[tt.reason]; n != before+1 {
				t.Fatalf("Stats.Rejected[%s] = %d, want %d", tt.reason, n, before+1)
			}
			if !resp.Close {
				t.Errorf("answer without Connection: close (the rest of the body must not be read as a request)")
			}
		})
	}
}

// TestDuplicateWindow: a delivery id is a duplicate while a request carrying
// it could pass the timestamp check, and is forgotten after that; the items'
// versions keep a late repeat harmless.
func TestDuplicateWindow(t *testing.T) {
	const t0 = 1_800_000_000
	const window = 5 * time.Minute
	type send struct {
		at   time.Duration // receiver clock, after t0
		ts   time.Duration // X-OrderWeave-Timestamp, after t0
		want string        // answer body, or the status when not 200
	}
	accepted := `{"status":"accepted","items":1}`
	duplicate := `{"status":"duplicate"}`
	tests := []struct {
		name          string
		sends         []send // all with the delivery id d-1
		wantDuplicate int64
		wantRestated  int64
	}{
		{name: "repeat at once", sends: []send{{0, 0, accepted}, {time.Second, time.Second, duplicate}}, wantDuplicate: 1},
		{name: "same request replayed at the window's end", sends: []send{{0, 0, accepted}, {window, 0, duplicate}}, wantDuplicate: 1},
		{name: "same request replayed after the window", sends: []send{{0, 0, accepted}, {window + time.Second, 0, "401"}}},
		{name: "repeat signed afresh within the window and the slack", sends: []send{{0, 0, accepted}, {window + 30*time.Second, window + 30*time.Second, duplicate}}, wantDuplicate: 1},
		{name: "repeat signed afresh long after", sends: []send{{0, 0, accepted}, {time.Hour, time.Hour, accepted}}, wantRestated: 1},
		{
			// The second request's later timestamp keeps the id until its own
			// window ends: a replay of it is still a duplicate.
			name:          "a repeat extends the memory",
			sends:         []send{{0, 0, accepted}, {4 * time.Minute, 4 * time.Minute, duplicate}, {window + 3*time.Minute, 4 * time.Minute, duplicate}},
			wantDuplicate: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var clock atomic.Int64
			r := receiver.New(receiver.Options{
				Tenants: map[string][]byte{"acme": refKey},
				Window:  window,
				Now:     func() time.Time { return time.Unix(0, clock.Load()) },
			})
			srv := httptest.NewServer(r)
			defer srv.Close()
			body := canonicalBody(t, "acme", "d-1", map[string]any{"item_code": "A1", "op": "upsert", "version": 1})
			for i, s := range tt.sends {
				clock.Store(time.Unix(t0, 0).Add(s.at).UnixNano())
				req := signedRequest(t, srv.URL, "d-1", body, time.Unix(t0, 0).Add(s.ts).Unix(), refKey)
				status, resp := post(t, srv.URL, req)
				if got := strconv.Itoa(status); status != 200 && got != s.want || status == 200 && resp != s.want {
					t.Fatalf("send %d: %d %s, want %s", i, status, resp, s.want)
				}
			}
			if st := r.Stats(); st.Duplicates != tt.wantDuplicate || st.Restated != tt.wantRestated {
				t.Fatalf("stats = %+v, want %d duplicates and %d restated", st, tt.wantDuplicate, tt.wantRestated)
			}
		})
	}
}
