// Package signer implements the body and signature rules of the erpsync wire contract
// (PROTOCOL.md): RFC 8785 (JCS) canonical JSON, exact decimals for money and quantities, and
// HMAC-SHA256 request signatures over "<timestamp>:<body>" with a replay window.
//
// The package is pure: it does no I/O and keeps no mutable state, so every function is safe for
// concurrent use.
package signer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names of the wire contract.
const (
	// HeaderSignature carries Sign's result: base64 (standard, padded) HMAC-SHA256.
	HeaderSignature = "X-OrderWeave-Signature"
	// HeaderTimestamp carries the Unix time in whole seconds, decimal digits only.
	HeaderTimestamp = "X-OrderWeave-Timestamp"
	// HeaderTenant carries the tenant id (a slug such as "lighting_co_ke").
	HeaderTenant = "X-Tenant-Id"
	// HeaderDeliveryID carries the outbox message id, identical on every retry of the message.
	HeaderDeliveryID = "X-OrderWeave-Delivery-Id"
)

// Window is the receiver's replay window: a request whose timestamp is older than this is
// rejected.
const Window = 5 * time.Minute

// MaxFutureSkew is how far ahead of the receiver's clock a timestamp may be before it is
// rejected.
const MaxFutureSkew = 5 * time.Second

// Sentinel errors returned (wrapped) by Verify; test with errors.Is.
var (
	// ErrTimestamp: the timestamp header is not decimal digits forming a Unix time.
	ErrTimestamp = errors.New("malformed timestamp")
	// ErrExpired: the timestamp is older than the replay window.
	ErrExpired = errors.New("timestamp outside the replay window")
	// ErrFuture: the timestamp is more than MaxFutureSkew ahead of now.
	ErrFuture = errors.New("timestamp in the future")
	// ErrSignature: the signature is malformed or does not match key, timestamp and body.
	ErrSignature = errors.New("signature mismatch")
)

// mac computes HMAC-SHA256(key, timestamp + ":" + body).
func mac(key []byte, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(timestamp))
	h.Write([]byte{':'})
	h.Write(body)
	return h.Sum(nil)
}

// Sign returns the X-OrderWeave-Signature value for body sent at timestamp (Unix seconds): the
// standard, padded base64 of HMAC-SHA256(key, "<timestamp>:" + body), the timestamp written in
// decimal exactly as it must appear in X-OrderWeave-Timestamp. The body must be sent byte for
// byte as signed.
func Sign(key []byte, timestamp int64, body []byte) string {
	return base64.StdEncoding.EncodeToString(mac(key, strconv.FormatInt(timestamp, 10), body))
}

// verifyError is a Verify failure: a specific message that unwraps to a sentinel error.
type verifyError struct {
	kind error
	msg  string
}

func (e *verifyError) Error() string { return e.msg }
func (e *verifyError) Unwrap() error { return e.kind }

func verifyErrorf(kind error, format string, args ...any) error {
	return &verifyError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// Verify checks a received request: timestamp is the raw X-OrderWeave-Timestamp text, body the
// raw body bytes, signature the X-OrderWeave-Signature text, now the receiver's clock.
//
// Checks, in order (the first failure is returned):
//   - timestamp must be decimal digits only (no sign, space or fraction) fitting an int64, else
//     ErrTimestamp. The MAC is computed over the timestamp text exactly as received.
//   - signature must be standard padded base64 of 32 bytes and equal, compared in constant
//     time, to HMAC-SHA256(key, timestamp + ":" + body), else ErrSignature.
//   - if window > 0: a timestamp older than now-window gives ErrExpired and one later than
//     now+MaxFutureSkew gives ErrFuture. window <= 0 skips both time checks (for fixed
//     reference vectors).
//
// The signature is checked before the clock, so ErrExpired and ErrFuture mean the secret and
// body were right and only the clocks disagree. Errors wrap the sentinels (errors.Is works) and
// say what was wrong, e.g. "timestamp 1700000000 is 52m ago, outside the 5m0s window: check the
// sender's clock". They never contain the key.
func Verify(key []byte, timestamp string, body []byte, signature string, now time.Time, window time.Duration) error {
	ts, err := parseTimestamp(timestamp)
	if err != nil {
		return err
	}

	const sigLen = 44 // base64 of 32 bytes, padded
	if len(signature) != sigLen {
		return verifyErrorf(ErrSignature, "signature is %d characters, want %d (standard padded base64 of an HMAC-SHA256)", len(signature), sigLen)
	}
	got, err := base64.StdEncoding.Strict().DecodeString(signature)
	if err != nil {
		return verifyErrorf(ErrSignature, "signature is not valid standard padded base64: %v", err)
	}
	if len(got) != sha256.Size {
		return verifyErrorf(ErrSignature, "signature decodes to %d bytes, want %d", len(got), sha256.Size)
	}
	if !hmac.Equal(got, mac(key, timestamp, body)) {
		return verifyErrorf(ErrSignature, "signature does not match: the sender's tenant secret differs from the receiver's, or the timestamp or body changed after signing")
	}

	if window <= 0 {
		return nil
	}
	sent := time.Unix(ts, 0)
	if sent.Before(now.Add(-window)) {
		return verifyErrorf(ErrExpired, "timestamp %d is %s ago, outside the %s window: check the sender's clock", ts, shortDuration(now.Sub(sent)), window)
	}
	if sent.After(now.Add(MaxFutureSkew)) {
		return verifyErrorf(ErrFuture, "timestamp %d is %s in the future, more than the %s allowed: check the sender's clock", ts, shortDuration(sent.Sub(now)), MaxFutureSkew)
	}
	return nil
}

// parseTimestamp accepts decimal digits only.
func parseTimestamp(s string) (int64, error) {
	if s == "" {
		return 0, verifyErrorf(ErrTimestamp, "timestamp is empty, want Unix seconds in decimal digits")
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, verifyErrorf(ErrTimestamp, "timestamp %s has a character other than a decimal digit at offset %d, want Unix seconds in decimal digits", strconv.Quote(abbrev(s)), i)
		}
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, verifyErrorf(ErrTimestamp, "timestamp %s is too large for Unix seconds", abbrev(s))
	}
	return ts, nil
}

// shortDuration rounds d to seconds and drops zero trailing units: "52m", "1h", "5m1s".
func shortDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

const secretHint = "generate one with `erpsync keygen` or `openssl rand -base64 32`"

// minSecretLen is the minimum decoded tenant secret length, in bytes.
const minSecretLen = 32

// DecodeSecret decodes a tenant secret from settings into the HMAC key. The secret is base64
// with the standard alphabet; padding is optional, surrounding whitespace (such as the newline a
// file or `openssl rand -base64 32` leaves) is ignored, and it must decode to at least 32 bytes.
// Errors say what is wrong and how to fix it, and never contain the secret or any part of it.
func DecodeSecret(s string) ([]byte, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, errors.New("tenant secret is empty: " + secretHint)
	}
	enc := base64.RawStdEncoding
	if strings.HasSuffix(t, "=") {
		enc = base64.StdEncoding
	}
	key, err := enc.DecodeString(t)
	if err != nil {
		why := ""
		if strings.ContainsAny(t, "-_") {
			why = " (it contains '-' or '_', which is URL-safe base64; the standard alphabet uses '+' and '/')"
		}
		return nil, fmt.Errorf("tenant secret is not valid base64%s: %s", why, secretHint)
	}
	if len(key) < minSecretLen {
		return nil, fmt.Errorf("tenant secret decodes to %d bytes, need at least %d: %s", len(key), minSecretLen, secretHint)
	}
	return key, nil
}

// NewSecret returns a fresh tenant secret: 32 bytes from crypto/rand, standard padded base64
// (44 characters), as DecodeSecret accepts.
func NewSecret() (string, error) {
	b := make([]byte, minSecretLen)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes for a tenant secret: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
