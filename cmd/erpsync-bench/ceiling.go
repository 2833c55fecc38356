package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/signer"
)

// The ceilings: a plain net/http client posting pre-built, pre-signed bodies
// of the same items, size and batch as erpsync's to the same receiver, with
// the same concurrency. Nothing is read from a database or an outbox, so this
// is as fast as the receiver and the loopback allow on this machine.

// signedBody is a request ready to send.
type signedBody struct {
	id, ts, sig string
	body        []byte
	items       int
}

// nextEntries returns the receiver's current entries for codes (as erpsync
// sent them, canonical) with the version raised by one, so that the receiver
// applies them as new states.
func nextEntries(items map[string]receiver.Entry, codes []string) ([][]byte, error) {
	out := make([][]byte, 0, len(codes))
	for _, c := range codes {
		e, ok := items[c]
		if !ok {
			return nil, fmt.Errorf("the receiver holds no entry for %s", c)
		}
		old := []byte(`"version":` + strconv.FormatInt(e.Version, 10))
		if bytes.Count(e.Raw, old) != 1 {
			return nil, fmt.Errorf("entry of %s: version not found", c)
		}
		out = append(out, bytes.Replace(e.Raw, old, []byte(`"version":`+strconv.FormatInt(e.Version+1, 10)), 1))
	}
	return out, nil
}

// buildBodies groups entries into canonical bodies of batch entries and signs them.
func buildBodies(key []byte, tenant string, entries [][]byte, batch int) ([]signedBody, error) {
	tenantJSON, err := signer.Canonical(tenant)
	if err != nil {
		return nil, err
	}
	ts := time.Now().Unix()
	var out []signedBody
	for lo := 0; lo < len(entries); lo += batch {
		group := entries[lo:min(lo+batch, len(entries))]
		var rnd [16]byte
		_, _ = rand.Read(rnd[:])
		id := hex.EncodeToString(rnd[:])
		var b bytes.Buffer
		b.WriteString(`{"delivery_id":"` + id + `","items":[`)
		for i, e := range group {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(e)
		}
		b.WriteString(`],"tenant":`)
		b.Write(tenantJSON)
		b.WriteByte('}')
		body := b.Bytes()
		out = append(out, signedBody{id: id, ts: strconv.FormatInt(ts, 10), sig: signer.Sign(key, ts, body), body: body, items: len(group)})
	}
	return out, nil
}

type poster struct {
	url, tenant string
	client      *http.Client
}

func newPoster(url, tenant string, conc int) *poster {
	return &poster{url: url, tenant: tenant, client: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true},
	}}
}

func (p *poster) post(ctx context.Context, b signedBody) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(b.body))
	if err != nil {
		return err
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "erpsync-bench-ceiling")
	h.Set(signer.HeaderTenant, p.tenant)
	h.Set(signer.HeaderDeliveryID, b.id)
	h.Set(signer.HeaderTimestamp, b.ts)
	h.Set(signer.HeaderSignature, b.sig)
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ceiling request %s: HTTP %d", b.id, resp.StatusCode)
	}
	return nil
}

// postAll sends bodies with conc workers and returns the elapsed time.
func (p *poster) postAll(ctx context.Context, bodies []signedBody, conc int) (time.Duration, error) {
	work := make(chan signedBody)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if err := p.post(ctx, b); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, b := range bodies {
		work <- b
	}
	close(work)
	wg.Wait()
	return time.Since(start), firstErr
}

// roundTrips posts each body alone, one after the other, and returns each
// round trip, sorted.
func (p *poster) roundTrips(ctx context.Context, bodies []signedBody) ([]time.Duration, error) {
	// Warm the connection first.
	if len(bodies) == 0 {
		return nil, nil
	}
	out := make([]time.Duration, 0, len(bodies))
	for _, b := range bodies {
		start := time.Now()
		if err := p.post(ctx, b); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}
