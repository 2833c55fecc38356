package signer

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// BodyOverhead is what a body holds besides its item entries, at most: the
// delivery id, the tenant and the punctuation. Writers that split items into
// bodies of at most so many bytes count it once per body.
const BodyOverhead = 128

// NewDeliveryID returns a new delivery id: 128 random bits in hex, never
// reused for another body.
func NewDeliveryID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make delivery id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Body returns the canonical wire body {"delivery_id":…,"items":[…],"tenant":…}
// of PROTOCOL.md. Each entry must be the canonical JSON of one item entry; the
// members are in JCS order, so the concatenation is the canonical form of the
// whole.
func Body(deliveryID, tenant string, entries [][]byte) ([]byte, error) {
	idJSON, err := Canonical(deliveryID)
	if err != nil {
		return nil, fmt.Errorf("body: delivery id: %w", err)
	}
	tenantJSON, err := Canonical(tenant)
	if err != nil {
		return nil, fmt.Errorf("body: tenant: %w", err)
	}
	n := len(idJSON) + len(tenantJSON) + 40
	for _, e := range entries {
		n += len(e) + 1
	}
	body := make([]byte, 0, n)
	body = append(body, `{"delivery_id":`...)
	body = append(body, idJSON...)
	body = append(body, `,"items":[`...)
	for i, e := range entries {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, e...)
	}
	body = append(body, `],"tenant":`...)
	body = append(body, tenantJSON...)
	body = append(body, '}')
	return body, nil
}

// BodyItems returns the item entries of a wire body as they are in it, in
// order.
func BodyItems(body []byte) ([]json.RawMessage, error) {
	var b struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if b.Items == nil {
		return nil, errors.New(`read body: no "items" array`)
	}
	return b.Items, nil
}
