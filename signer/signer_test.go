package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Reference vector of PROTOCOL.md.
const (
	refSecret    = "ZXJwc3luYy1yZWZlcmVuY2Utc2VjcmV0LTMyYnl0ZXM="
	refTimestamp = 1700000000
	refBody      = `{"delivery_id":"d-1","items":[{"item_code":"A1","op":"upsert","version":1}],"tenant":"acme"}`
	refSignature = "A0WAbhX8WXPIJvrXdVxQ2ZePLv0QF9etYJFG/71gLbg="
)

func TestReferenceVector(t *testing.T) {
	key, err := DecodeSecret(refSecret)
	if err != nil {
		t.Fatalf("DecodeSecret: %v", err)
	}
	if len(key) != 32 {
		t.Fatalf("reference key is %d bytes, want 32", len(key))
	}

	// The body is what Canonical makes of the message.
	body, err := Canonical(map[string]any{
		"tenant":      "acme",
		"delivery_id": "d-1",
		"items":       []any{map[string]any{"version": 1, "op": "upsert", "item_code": "A1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != refBody {
		t.Fatalf("Canonical body\n got %s\nwant %s", body, refBody)
	}

	if got := Sign(key, refTimestamp, body); got != refSignature {
		t.Errorf("Sign = %s, want %s", got, refSignature)
	}
	ts := strconv.Itoa(refTimestamp)
	if err := Verify(key, ts, body, refSignature, time.Now(), 0); err != nil {
		t.Errorf("Verify with the window check set aside: %v", err)
	}
	if err := Verify(key, ts, body, refSignature, time.Time{}, -1); err != nil {
		t.Errorf("Verify with a negative window: %v", err)
	}
	if err := Verify(key, ts, body, refSignature, time.Now(), Window); !errors.Is(err, ErrExpired) {
		t.Errorf("Verify at the current time = %v, want ErrExpired", err)
	}
	tampered := []byte(refBody)
	tampered[len(tampered)-3] ^= 1 // "acme" -> "acmd"
	if err := Verify(key, ts, tampered, refSignature, time.Now(), 0); !errors.Is(err, ErrSignature) {
		t.Errorf("Verify of a one-byte body change = %v, want ErrSignature", err)
	}
}

func TestVerify(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	otherKey := []byte("0123456789abcdef0123456789abcdeF")
	body := []byte(`{"a":1}`)
	now := time.Unix(1700000000, 250_000_000)
	nowSec := now.Unix()
	at := func(d int64) string { return strconv.FormatInt(nowSec+d, 10) }
	sig := func(d int64) string { return Sign(key, nowSec+d, body) }
	// macRaw signs an arbitrary timestamp text, as a sender might.
	macRaw := func(ts string) string {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(ts + ":"))
		h.Write(body)
		return base64.StdEncoding.EncodeToString(h.Sum(nil))
	}
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	long := base64.StdEncoding.EncodeToString(make([]byte, 33))

	tests := []struct {
		name   string
		key    []byte
		ts     string
		body   []byte
		sig    string
		window time.Duration
		want   error // nil or a sentinel
	}{
		{"now", key, at(0), body, sig(0), Window, nil},
		{"one minute old", key, at(-60), body, sig(-60), Window, nil},
		{"at the window edge", key, at(-299), body, sig(-299), Window, nil},
		{"expired", key, at(-301), body, sig(-301), Window, ErrExpired},
		{"expired long ago", key, at(-3600 * 24), body, sig(-3600 * 24), Window, ErrExpired},
		{"shorter window", key, at(-61), body, sig(-61), time.Minute, ErrExpired},
		{"within future skew", key, at(5), body, sig(5), Window, nil},
		{"future beyond skew", key, at(6), body, sig(6), Window, ErrFuture},
		{"far future", key, at(3600), body, sig(3600), Window, ErrFuture},
		{"window 0 skips time checks", key, at(-1e6), body, sig(-1e6), 0, nil},
		{"window 0 skips future check", key, at(1e6), body, sig(1e6), 0, nil},
		{"leading plus", key, "+" + at(0), body, sig(0), Window, ErrTimestamp},
		{"leading minus", key, "-" + at(0), body, sig(0), Window, ErrTimestamp},
		{"fraction", key, "1.5", body, sig(0), Window, ErrTimestamp},
		{"leading space", key, " 17", body, sig(0), Window, ErrTimestamp},
		{"trailing space", key, at(0) + " ", body, sig(0), Window, ErrTimestamp},
		{"empty", key, "", body, sig(0), Window, ErrTimestamp},
		{"milliseconds overflow", key, "99999999999999999999", body, sig(0), Window, ErrTimestamp},
		{"non-ascii digits", key, "١٧٠٠", body, sig(0), Window, ErrTimestamp},
		{"raw timestamp text is what is signed", key, "0" + at(0), body, macRaw("0" + at(0)), Window, nil},
		{"reformatted timestamp does not match", key, "0" + at(0), body, sig(0), Window, ErrSignature},
		{"bad base64", key, at(0), body, strings.Repeat("!", 44), Window, ErrSignature},
		{"unpadded", key, at(0), body, strings.TrimRight(sig(0), "="), Window, ErrSignature},
		{"url-safe alphabet", key, at(0), body, "-_" + sig(0)[2:], Window, ErrSignature},
		{"empty signature", key, at(0), body, "", Window, ErrSignature},
		{"too short", key, at(0), body, short, Window, ErrSignature},
		{"too long", key, at(0), body, long, Window, ErrSignature},
		{"wrong key", otherKey, at(0), body, sig(0), Window, ErrSignature},
		{"wrong key and expired reports the key", otherKey, at(-400), body, sig(-400), Window, ErrSignature},
		{"other timestamp", key, at(1), body, sig(0), Window, ErrSignature},
		{"changed body", key, at(0), []byte(`{"a":2}`), sig(0), Window, ErrSignature},
		{"empty body", key, at(0), nil, sig(0), Window, ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.key, tc.ts, tc.body, tc.sig, now, tc.window)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrTimestamp, ErrExpired, ErrFuture, ErrSignature} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("Verify error %v also matches %v", err, other)
				}
			}
			if strings.Contains(err.Error(), string(tc.key)) {
				t.Errorf("Verify error %q contains the key", err)
			}
		})
	}
}

func TestVerifyMessages(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	body := []byte("{}")
	tests := []struct {
		name string
		ts   int64
		now  time.Time
		want string
	}{
		{"expired", 1700000000, time.Unix(1700000000+52*60, 0),
			"timestamp 1700000000 is 52m ago, outside the 5m0s window: check the sender's clock"},
		{"expired hours", 1700000000, time.Unix(1700000000+3600+5, 0),
			"timestamp 1700000000 is 1h0m5s ago, outside the 5m0s window: check the sender's clock"},
		{"future", 1700000000, time.Unix(1700000000-90, 0),
			"timestamp 1700000000 is 1m30s in the future, more than the 5s allowed: check the sender's clock"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(key, strconv.FormatInt(tc.ts, 10), body, Sign(key, tc.ts, body), tc.now, Window)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Verify error = %v\nwant %s", err, tc.want)
			}
		})
	}
	err := Verify(key, "17 ", body, "", time.Now(), Window)
	if err == nil || !strings.Contains(err.Error(), `"17 "`) {
		t.Errorf("malformed timestamp error %v does not quote the value", err)
	}
}

func TestSign(t *testing.T) {
	key := []byte("k")
	a := Sign(key, 1, []byte("x"))
	tests := []struct {
		name string
		sig  string
	}{
		{"other timestamp", Sign(key, 2, []byte("x"))},
		{"other body", Sign(key, 1, []byte("y"))},
		{"other key", Sign([]byte("K"), 1, []byte("x"))},
		{"separator is part of the input", Sign(key, 11, []byte(""))}, // "11:" vs "1:x"
	}
	for _, tc := range tests {
		if tc.sig == a {
			t.Errorf("%s: signature did not change", tc.name)
		}
	}
	if raw, err := base64.StdEncoding.Strict().DecodeString(a); err != nil || len(raw) != 32 {
		t.Errorf("Sign = %q: not padded std base64 of 32 bytes (%v)", a, err)
	}
}

func TestDecodeSecret(t *testing.T) {
	ok := []struct {
		name, in string
		wantLen  int
	}{
		{"reference", refSecret, 32},
		{"trailing newline", refSecret + "\n", 32},
		{"crlf and spaces", "  " + refSecret + "\r\n", 32},
		{"unpadded", strings.TrimRight(refSecret, "="), 32},
		{"64 bytes", base64.StdEncoding.EncodeToString(make([]byte, 64)), 64},
		{"33 bytes unpadded", base64.RawStdEncoding.EncodeToString(make([]byte, 33)), 33},
	}
	for _, tc := range ok {
		key, err := DecodeSecret(tc.in)
		if err != nil {
			t.Errorf("%s: DecodeSecret: %v", tc.name, err)
			continue
		}
		if len(key) != tc.wantLen {
			t.Errorf("%s: key is %d bytes, want %d", tc.name, len(key), tc.wantLen)
		}
	}

	// A secret that is URL-safe base64 of 32 bytes: 0xfb 0xff ... encodes with '-' and '_'.
	urlSafe := base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xfb\xff\xbf", 11)[:32]))
	bad := []struct {
		name, in, wantSub string
	}{
		{"empty", "", "tenant secret is empty"},
		{"whitespace", " \n", "tenant secret is empty"},
		{"not base64", "Qm9v!!Zm9vYmFy$$cXV4eHh4eHh4eHh4", "tenant secret is not valid base64: generate one with `erpsync keygen` or `openssl rand -base64 32`"},
		{"url-safe", urlSafe, "URL-safe"},
		{"bad padding", "QUJD=", "not valid base64"},
		{"16 bytes", base64.StdEncoding.EncodeToString([]byte("sixteen-byte-key")), "tenant secret decodes to 16 bytes, need at least 32: generate one with"},
		{"31 bytes", base64.StdEncoding.EncodeToString(make([]byte, 31)), "decodes to 31 bytes"},
	}
	for _, tc := range bad {
		key, err := DecodeSecret(tc.in)
		if err == nil {
			t.Errorf("%s: DecodeSecret = %d bytes, want an error", tc.name, len(key))
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.wantSub) {
			t.Errorf("%s: error %q does not contain %q", tc.name, msg, tc.wantSub)
		}
		// The message must not leak the secret or any 8-character piece of it.
		s := strings.TrimSpace(tc.in)
		for i := 0; i+8 <= len(s); i++ {
			if strings.Contains(msg, s[i:i+8]) {
				t.Errorf("%s: error %q contains part of the secret %q", tc.name, msg, s[i:i+8])
				break
			}
		}
	}
}

func TestNewSecret(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("two secrets are equal")
	}
	if len(a) != 44 {
		t.Errorf("secret %q is %d characters, want 44", a, len(a))
	}
	key, err := DecodeSecret(a)
	if err != nil {
		t.Fatalf("DecodeSecret(NewSecret()): %v", err)
	}
	if len(key) != 32 {
		t.Errorf("NewSecret key is %d bytes, want 32", len(key))
	}
}
