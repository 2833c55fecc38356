package receiver_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/signer"
)

// BenchmarkServeHTTP: the receiver's own cost per ~1 KiB delivery (verify,
// canonical check, decode, apply), without the network.
func BenchmarkServeHTTP(b *testing.B) {
	r := receiver.New(receiver.Options{Tenants: map[string][]byte{"acme": refKey}})
	now := time.Now().Unix()
	type signed struct {
		id, sig string
		body    []byte
	}
	reqs := make([]signed, b.N)
	for i := range reqs {
		id := "bench-" + strconv.Itoa(i)
		items := make([]any, 4)
		for j := range items {
			items[j] = map[string]any{
				"op": "upsert", "item_code": fmt.Sprintf("ITEM-%d", j), "version": i,
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
		reqs[i] = signed{id: id, sig: signer.Sign(refKey, now, body), body: body}
	}
	ts := strconv.FormatInt(now, 10)
	b.SetBytes(int64(len(reqs[0].body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s := &reqs[i]
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(s.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "erpsync/bench")
		req.Header.Set(signer.HeaderTenant, "acme")
		req.Header.Set(signer.HeaderDeliveryID, s.id)
		req.Header.Set(signer.HeaderTimestamp, ts)
		req.Header.Set(signer.HeaderSignature, s.sig)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
