package signer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Canonical returns the RFC 8785 (JCS) canonical JSON encoding of v: no insignificant whitespace,
// object members sorted by the UTF-16 code units of their names, strings with the minimal JCS
// escaping, numbers as IEEE doubles in ECMAScript shortest form. Equal values give equal bytes,
// and a receiver that re-serialises the body with a JCS library gets the same bytes back.
//
// These types are encoded directly, without reflection: nil, bool, string, json.Number, float64,
// float32, every int and uint kind, []any, []string, []map[string]any, map[string]any,
// map[string]string, and json.RawMessage (parsed and canonicalised; nil is null). Nil slices and
// maps are null, as encoding/json writes them. Any other value is marshalled with encoding/json,
// parsed again with numbers kept exact, and canonicalised (so struct tags and json.Marshaler
// apply; note that encoding/json replaces invalid UTF-8 in such values with U+FFFD).
//
// Rules and errors:
//   - float32 is taken at its shortest 32-bit decimal form, as encoding/json writes it, so
//     float32(0.1) is 0.1 and not 0.10000000149011612.
//   - NaN, ±Inf, a json.Number that is not a JSON number or lies beyond the double range (or is
//     non-zero but would round to 0) are errors.
//   - An integer that an IEEE double cannot hold exactly (|n| > 2^53 and not a multiple of the
//     double spacing there) is an error instead of being silently rounded; send such values as
//     strings (see Decimal).
//   - Strings and member names must be valid UTF-8. '<', '>', '&', U+2028 and U+2029 are not
//     escaped.
//   - Duplicate member names in parsed JSON are an error.
//
// Errors name the path of the offending value, such as "items[3].price".
func Canonical(v any) ([]byte, error) {
	e := encoder{buf: make([]byte, 0, 512)}
	if err := e.value(v); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return e.buf, nil
}

// CanonicalizeJSON parses the JSON text data and returns its RFC 8785 (JCS) canonical bytes.
// Numbers are read from their exact text and converted once to IEEE doubles (as JCS requires);
// whitespace around the value is allowed, anything else after it is an error. Besides malformed
// JSON, it rejects what JCS cannot canonicalise: invalid UTF-8, lone surrogate escapes, duplicate
// member names, and numbers beyond the double range.
func CanonicalizeJSON(data []byte) ([]byte, error) {
	tree, err := parseJSON(data)
	if err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	e := encoder{buf: make([]byte, 0, len(data))}
	if err := e.value(tree); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return e.buf, nil
}

// encoder appends canonical JSON to buf. keys is a stack of map keys being sorted: each map
// pushes its keys, sorts its own segment, and pops them when done, so nested maps reuse the
// same backing array.
type encoder struct {
	buf   []byte
	keys  []string
	depth int
}

func (e *encoder) value(v any) error {
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case bool:
		if x {
			e.buf = append(e.buf, "true"...)
		} else {
			e.buf = append(e.buf, "false"...)
		}
	case string:
		return e.string(x)
	case json.Number:
		f, err := parseJSONNumber(x)
		if err != nil {
			return err
		}
		return e.float(f)
	case float64:
		return e.float(x)
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return e.float(float64(x)) // error
		}
		var tmp [24]byte
		f, err := strconv.ParseFloat(string(strconv.AppendFloat(tmp[:0], float64(x), 'g', -1, 32)), 64)
		if err != nil {
			return err
		}
		return e.float(f)
	case int:
		return e.int(int64(x))
	case int8:
		return e.int(int64(x))
	case int16:
		return e.int(int64(x))
	case int32:
		return e.int(int64(x))
	case int64:
		return e.int(x)
	case uint:
		return e.uint(uint64(x))
	case uint8:
		return e.uint(uint64(x))
	case uint16:
		return e.uint(uint64(x))
	case uint32:
		return e.uint(uint64(x))
	case uint64:
		return e.uint(x)
	case uintptr:
		return e.uint(uint64(x))
	case map[string]any:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.mapAny(x)
	case map[string]string:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.mapString(x)
	case []any:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.sliceAny(x)
	case []string:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if err := e.enter(); err != nil {
			return err
		}
		e.buf = append(e.buf, '[')
		for i, s := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.string(s); err != nil {
				return withIndex(err, i)
			}
		}
		e.buf = append(e.buf, ']')
		e.depth--
	case []map[string]any:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if err := e.enter(); err != nil {
			return err
		}
		e.buf = append(e.buf, '[')
		for i, m := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.value(m); err != nil {
				return withIndex(err, i)
			}
		}
		e.buf = append(e.buf, ']')
		e.depth--
	case json.RawMessage:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		tree, err := parseJSON(x)
		if err != nil {
			return fmt.Errorf("json.RawMessage: %w", err)
		}
		return e.value(tree)
	case object:
		return e.object(x)
	default:
		return e.fallback(v)
	}
	return nil
}

// fallback encodes v with encoding/json and canonicalises the result.
func (e *encoder) fallback(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %T: %w", v, err)
	}
	tree, err := parseJSON(data)
	if err != nil { // encoding/json wrote something JCS cannot take (e.g. a huge number)
		return fmt.Errorf("encoding %T: %w", v, err)
	}
	return e.value(tree)
}

func (e *encoder) enter() error {
	e.depth++
	if e.depth > maxDepth {
		return fmt.Errorf("nesting deeper than %d levels (is the value cyclic?)", maxDepth)
	}
	return nil
}

func (e *encoder) float(f float64) error {
	var err error
	e.buf, err = appendNumber(e.buf, f)
	return err
}

// maxExactInt is 2^53: every integer of at most this magnitude is an exact double.
const maxExactInt = 1 << 53

func (e *encoder) int(n int64) error {
	if -maxExactInt <= n && n <= maxExactInt {
		e.buf = strconv.AppendInt(e.buf, n, 10)
		return nil
	}
	f := float64(n)
	// float64(n) rounds; it is exact iff converting back gives n. 2^63 itself does not fit int64.
	if f >= 1<<63 || int64(f) != n {
		return fmt.Errorf("integer %d cannot be represented exactly as an IEEE double (JSON numbers are doubles); send it as a string", n)
	}
	return e.float(f)
}

func (e *encoder) uint(n uint64) error {
	if n <= maxExactInt {
		e.buf = strconv.AppendUint(e.buf, n, 10)
		return nil
	}
	f := float64(n)
	if f >= 1<<64 || uint64(f) != n {
		return fmt.Errorf("integer %d cannot be represented exactly as an IEEE double (JSON numbers are doubles); send it as a string", n)
	}
	return e.float(f)
}

func (e *encoder) sliceAny(x []any) error {
	if err := e.enter(); err != nil {
		return err
	}
	e.buf = append(e.buf, '[')
	for i, v := range x {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		if err := e.value(v); err != nil {
			return withIndex(err, i)
		}
	}
	e.buf = append(e.buf, ']')
	e.depth--
	return nil
}

// pushKeys pushes the keys of a map onto e.keys, sorts them, and returns their segment bounds.
func pushKeys[V any](e *encoder, m map[string]V) (start, end int) {
	start = len(e.keys)
	for k := range m {
		e.keys = append(e.keys, k)
	}
	end = len(e.keys)
	slices.SortFunc(e.keys[start:end], compareKeys)
	return start, end
}

func (e *encoder) mapAny(m map[string]any) error {
	if err := e.enter(); err != nil {
		return err
	}
	start, end := pushKeys(e, m)
	e.buf = append(e.buf, '{')
	for i := start; i < end; i++ {
		k := e.keys[i] // index each time: nested maps may reallocate e.keys
		if i > start {
			e.buf = append(e.buf, ',')
		}
		if err := e.string(k); err != nil {
			return withKey(fmt.Errorf("member name: %w", err), k)
		}
		e.buf = append(e.buf, ':')
		if err := e.value(m[k]); err != nil {
			return withKey(err, k)
		}
	}
	e.buf = append(e.buf, '}')
	clear(e.keys[start:end]) // do not pin the strings
	e.keys = e.keys[:start]
	e.depth--
	return nil
}

func (e *encoder) mapString(m map[string]string) error {
	if err := e.enter(); err != nil {
		return err
	}
	start, end := pushKeys(e, m)
	e.buf = append(e.buf, '{')
	for i := start; i < end; i++ {
		k := e.keys[i]
		if i > start {
			e.buf = append(e.buf, ',')
		}
		if err := e.string(k); err != nil {
			return withKey(fmt.Errorf("member name: %w", err), k)
		}
		e.buf = append(e.buf, ':')
		if err := e.string(m[k]); err != nil {
			return withKey(err, k)
		}
	}
	e.buf = append(e.buf, '}')
	clear(e.keys[start:end])
	e.keys = e.keys[:start]
	e.depth--
	return nil
}

// object encodes a parsed object. It sorts the members in place (the tree is ours) and rejects
// duplicate names, which sorting makes adjacent.
func (e *encoder) object(o object) error {
	if err := e.enter(); err != nil {
		return err
	}
	slices.SortFunc(o, func(a, b member) int { return compareKeys(a.key, b.key) })
	e.buf = append(e.buf, '{')
	for i, m := range o {
		if i > 0 {
			if o[i-1].key == m.key {
				return withKey(errors.New("duplicate member name"), m.key)
			}
			e.buf = append(e.buf, ',')
		}
		if err := e.string(m.key); err != nil {
			return withKey(fmt.Errorf("member name: %w", err), m.key)
		}
		e.buf = append(e.buf, ':')
		if err := e.value(m.val); err != nil {
			return withKey(err, m.key)
		}
	}
	e.buf = append(e.buf, '}')
	e.depth--
	return nil
}

// compareKeys orders UTF-8 strings by their UTF-16 code units, as JCS §3.2.3 requires.
//
// UTF-8 byte order is code point order, which differs from UTF-16 order only between
// supplementary characters (U+10000 and up, UTF-8 lead byte 0xF0-0xF4, UTF-16 surrogates
// 0xD800-0xDFFF) and U+E000-U+FFFF (lead byte 0xEE or 0xEF): in UTF-16 the supplementary
// character comes first. Both are lead bytes, so the first differing byte decides.
func compareKeys(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	if i == n {
		return len(a) - len(b)
	}
	ca, cb := a[i], b[i]
	if ca >= 0xF0 && (cb == 0xEE || cb == 0xEF) {
		return -1
	}
	if cb >= 0xF0 && (ca == 0xEE || ca == 0xEF) {
		return 1
	}
	return int(ca) - int(cb)
}

const hexDigits = "0123456789abcdef"

// string appends s as a JCS string: only '"', '\\' and control characters are escaped, the
// latter as \b \t \n \f \r or \u00xx with lowercase hex.
func (e *encoder) string(s string) error {
	if !utf8.ValidString(s) {
		i := 0
		for i < len(s) {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			i += size
		}
		return fmt.Errorf("string is not valid UTF-8 (byte 0x%02x at offset %d)", s[i], i)
	}
	e.buf = append(e.buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		e.buf = append(e.buf, s[start:i]...)
		switch c {
		case '"', '\\':
			e.buf = append(e.buf, '\\', c)
		case '\b':
			e.buf = append(e.buf, '\\', 'b')
		case '\t':
			e.buf = append(e.buf, '\\', 't')
		case '\n':
			e.buf = append(e.buf, '\\', 'n')
		case '\f':
			e.buf = append(e.buf, '\\', 'f')
		case '\r':
			e.buf = append(e.buf, '\\', 'r')
		default:
			e.buf = append(e.buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	e.buf = append(e.buf, s[start:]...)
	e.buf = append(e.buf, '"')
	return nil
}

// pathError attaches the location of a failing value, such as "items[3].price".
type pathError struct {
	path string // built from the innermost segment outwards
	err  error
}

func (p *pathError) Error() string {
	path := p.path
	if len(path) > 0 && path[0] == '.' {
		path = path[1:]
	}
	return "at " + path + ": " + p.err.Error()
}

func (p *pathError) Unwrap() error { return p.err }

func withIndex(err error, i int) error {
	return withSegment(err, "["+strconv.Itoa(i)+"]")
}

func withKey(err error, key string) error {
	if isPlainKey(key) {
		return withSegment(err, "."+key)
	}
	return withSegment(err, "["+strconv.Quote(abbrev(key))+"]")
}

func withSegment(err error, seg string) error {
	if pe, ok := err.(*pathError); ok {
		pe.path = seg + pe.path
		return pe
	}
	return &pathError{path: seg, err: err}
}

func isPlainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c == '-' || isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return true
}
