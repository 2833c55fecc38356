package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cleanhttp "github.com/hashicorp/go-cleanhttp"

	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/signer"
)

// benchBody returns a canonical delivery body of about 1 KiB.
func benchBody(b *testing.B, id string, version int) []byte {
	b.Helper()
	items := make([]any, 4)
	for i := range items {
		items[i] = map[string]any{
			"op": "upsert", "item_code": fmt.Sprintf("ITEM-%d", i), "version": version,
			"name": "Desk lamp", "item_group": "Lighting", "stock_uom": "Nos", "disabled": false,
			"description": strings.Repeat("warm white ", 2),
			"prices":      map[string]any{"Standard Selling": "19.99"},
			"stock":       map[string]any{"Stores - LC": 12, "total": 12},
		}
	}
	body, err := signer.Canonical(map[string]any{"tenant": "acme", "delivery_id": id, "items": items})
	if err != nil {
		b.Fatal(err)
	}
	if len(body) < 900 || len(body) > 1200 {
		b.Fatalf("bench body is %d bytes, want about 1 KiB", len(body))
	}
	return body
}

// benchServer starts a fresh reference receiver over loopback HTTP.
func benchServer(b *testing.B) *httptest.Server {
	r := receiver.New(receiver.Options{Tenants: map[string][]byte{"acme": testKey}})
	srv := httptest.NewServer(r)
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkDeliver: Client.Deliver → reference receiver over loopback, one
// fresh ~1 KiB delivery per op (signing, retry machinery, classification).
func BenchmarkDeliver(b *testing.B) {
	srv := benchServer(b)
	c, err := New(Config{URL: srv.URL, TenantID: "acme", Key: testKey, Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]Request, b.N)
	for i := range reqs {
		id := "bench-" + strconv.Itoa(i)
		reqs[i] = Request{DeliveryID: id, Items: []string{"ITEM-0", "ITEM-1", "ITEM-2", "ITEM-3"}, Body: benchBody(b, id, i)}
	}
	ctx := context.Background()
	b.SetBytes(int64(len(reqs[0].Body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if res := c.Deliver(ctx, reqs[i]); res.Outcome != Delivered {
			b.Fatalf("delivery %d: %v %v", i, res.Outcome, res.Err)
		}
	}
}

// BenchmarkPlainPost: the raw ceiling, a plain net/http client posting
// pre-signed bodies to the same receiver.
func BenchmarkPlainPost(b *testing.B) {
	srv := benchServer(b)
	hc := &http.Client{Transport: cleanhttp.DefaultPooledTransport(), Timeout: 10 * time.Second}
	type signed struct {
		id, ts, sig string
		body        []byte
	}
	reqs := make([]signed, b.N)
	now := time.Now().Unix()
	for i := range reqs {
		id := "bench-" + strconv.Itoa(i)
		body := benchBody(b, id, i)
		reqs[i] = signed{id: id, ts: strconv.FormatInt(now, 10), sig: signer.Sign(testKey, now, body), body: body}
	}
	b.SetBytes(int64(len(reqs[0].body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s := &reqs[i]
		req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(s.body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "erpsync/bench")
		req.Header.Set(signer.HeaderTenant, "acme")
		req.Header.Set(signer.HeaderDeliveryID, s.id)
		req.Header.Set(signer.HeaderTimestamp, s.ts)
		req.Header.Set(signer.HeaderSignature, s.sig)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkDeliverParallel: many goroutines sharing one Client (pool reuse).
func BenchmarkDeliverParallel(b *testing.B) {
	srv := benchServer(b)
	c, err := New(Config{URL: srv.URL, TenantID: "acme", Key: testKey, Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]Request, b.N)
	for i := range reqs {
		id := "bench-" + strconv.Itoa(i)
		reqs[i] = Request{DeliveryID: id, Body: benchBody(b, id, i)}
	}
	var next atomic.Int64
	b.SetBytes(int64(len(reqs[0].Body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if res := c.Deliver(context.Background(), reqs[i]); res.Outcome != Delivered {
				b.Errorf("delivery %d: %v %v", i, res.Outcome, res.Err)
				return
			}
		}
	})
}
