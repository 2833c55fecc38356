package signer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
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
	e := encoder{buf: make([]byte, 0, sizeHint(v))}
	if err := e.value(v); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return e.buf, nil
}

// sizeHint guesses the capacity Canonical(v) needs, to spare most growing and copying of the
// output: strings need little more than their length, and maps roughly 80 bytes per member
// (an item entry, with its lists of prices and stock, runs to about that).
func sizeHint(v any) int {
	switch x := v.(type) {
	case string:
		return len(x) + 8
	case map[string]any:
		return max(512, 80*len(x))
	}
	return 512
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

// encoder appends canonical JSON to buf. members is a stack of the members of the maps being
// encoded: each map pushes its members, sorts its own segment of order, and pops both when done,
// so nested maps reuse the same backing arrays.
type encoder struct {
	buf     []byte
	members []member
	order   []int32 // indexes into members; each map's segment is sorted by name
	depth   int
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
		if isShortestNumber(string(x)) {
			e.buf = append(e.buf, x...)
			return nil
		}
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

// pushMembers pushes the members of m onto e.members and their order by name onto e.order, and
// returns the bounds of their segment of both. The caller truncates both back to start when
// done. The members are not cleared: the encoder lives for one call.
func (e *encoder) pushMembers(m map[string]any) (start, end int) {
	start = len(e.members)
	e.grow(len(m))
	for k, v := range m {
		e.order = append(e.order, int32(len(e.members)))
		e.members = append(e.members, member{key: k, val: v})
	}
	end = len(e.members)
	sortOrder(e.members, e.order[start:end])
	return start, end
}

// grow makes room on the member stacks for the n members of a map, and as many again for the
// maps nested in it, so that those seldom need to grow the stacks once more.
func (e *encoder) grow(n int) {
	if cap(e.members)-len(e.members) < n {
		e.members = slices.Grow(e.members, 2*n)
	}
	if cap(e.order)-len(e.order) < n {
		e.order = slices.Grow(e.order, 2*n)
	}
}

// pushKeys is pushMembers for a map[string]string, leaving the values out (boxing each string
// would allocate): the caller looks them up.
func (e *encoder) pushKeys(m map[string]string) (start, end int) {
	start = len(e.members)
	e.grow(len(m))
	for k := range m {
		e.order = append(e.order, int32(len(e.members)))
		e.members = append(e.members, member{key: k})
	}
	end = len(e.members)
	sortOrder(e.members, e.order[start:end])
	return start, end
}

// sortOrder sorts the indexes order into ms by member name, in JCS order (see CompareKeys).
// Sorting indexes rather than the members themselves moves no pointers, which costs write
// barriers while the garbage collector runs. It sorts by plain byte order first, which is the
// JCS order unless names mix characters beyond U+FFFF with U+E000-U+FFFF, and falls back to
// CompareKeys only when an adjacent pair shows otherwise (a sequence is sorted by a total order
// iff each adjacent pair is).
func sortOrder(ms []member, order []int32) {
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(ms[a].key, ms[b].key) })
	for i := 1; i < len(order); i++ {
		if CompareKeys(ms[order[i-1]].key, ms[order[i]].key) > 0 {
			slices.SortFunc(order, func(a, b int32) int { return CompareKeys(ms[a].key, ms[b].key) })
			return
		}
	}
}

// sortMembers sorts the members of a parsed object in place, in JCS order, the same way.
func sortMembers(ms []member) {
	slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.key, b.key) })
	for i := 1; i < len(ms); i++ {
		if CompareKeys(ms[i-1].key, ms[i].key) > 0 {
			slices.SortFunc(ms, func(a, b member) int { return CompareKeys(a.key, b.key) })
			return
		}
	}
}

func (e *encoder) mapAny(m map[string]any) error {
	if err := e.enter(); err != nil {
		return err
	}
	start, end := e.pushMembers(m)
	e.buf = append(e.buf, '{')
	for i := start; i < end; i++ {
		mb := e.members[e.order[i]] // index each time: nested maps may reallocate e.members
		if i > start {
			e.buf = append(e.buf, ',')
		}
		if err := e.member(mb.key, mb.val); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	e.members, e.order = e.members[:start], e.order[:start]
	e.depth--
	return nil
}

func (e *encoder) mapString(m map[string]string) error {
	if err := e.enter(); err != nil {
		return err
	}
	start, end := e.pushKeys(m)
	e.buf = append(e.buf, '{')
	for i := start; i < end; i++ {
		k := e.members[e.order[i]].key
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
	e.members, e.order = e.members[:start], e.order[:start]
	e.depth--
	return nil
}

// member appends "name":value. Errors name the member.
func (e *encoder) member(name string, v any) error {
	if err := e.string(name); err != nil {
		return withKey(fmt.Errorf("member name: %w", err), name)
	}
	e.buf = append(e.buf, ':')
	if err := e.value(v); err != nil {
		return withKey(err, name)
	}
	return nil
}

// object encodes a parsed object. It sorts the members in place (the tree is ours) and rejects
// duplicate names, which sorting makes adjacent.
func (e *encoder) object(o object) error {
	if err := e.enter(); err != nil {
		return err
	}
	sortMembers(o)
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

// CompareKeys orders UTF-8 strings by their UTF-16 code units, as JCS §3.2.3 requires of
// object keys.
//
// UTF-8 byte order is code point order, which differs from UTF-16 order only between
// supplementary characters (U+10000 and up, UTF-8 lead byte 0xF0-0xF4, UTF-16 surrogates
// 0xD800-0xDFFF) and U+E000-U+FFFF (lead byte 0xEE or 0xEF): in UTF-16 the supplementary
// character comes first. Both are lead bytes, so the first differing byte decides.
func CompareKeys(a, b string) int {
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
	// Fast path: printable ASCII other than '"' and '\\' is valid UTF-8 and stands for itself.
	i := plainPrefix(s)
	if i == len(s) {
		e.buf = append(e.buf, '"')
		e.buf = append(e.buf, s...)
		e.buf = append(e.buf, '"')
		return nil
	}
	return e.stringFrom(s, i)
}

// plainPrefix returns the length of the longest prefix of s whose bytes are all plainASCII. It
// tests eight bytes at a time, then byte by byte from the first word that holds another byte.
func plainPrefix(s string) int {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		q := x ^ (ones * '"')  // zero bytes where x has '"'
		b := x ^ (ones * '\\') // zero bytes where x has '\\'
		// (y - ones*n) &^ y & high is non-zero iff some byte of y is below n, for n <= 0x80
		// ("determine if a word has a byte less than n", Bit Twiddling Hacks). So this is
		// non-zero iff some byte of x is >= 0x80, below 0x20, '"' or '\\'.
		if (x|(x-ones*0x20)&^x|(q-ones)&^q|(b-ones)&^b)&high != 0 {
			break
		}
	}
	for i < len(s) && plainASCII(s[i]) {
		i++
	}
	return i
}

// plainASCII reports whether c is printable ASCII that a JCS string holds unescaped.
func plainASCII(c byte) bool {
	return c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\'
}

// stringFrom appends s as a JCS string when s[:plain] is known to be plainASCII.
func (e *encoder) stringFrom(s string, plain int) error {
	if !utf8.ValidString(s[plain:]) {
		i := plain
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
	for i := plain; i < len(s); i++ {
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

// isShortestNumber reports whether the json.Number text s is already the canonical form of its
// value, so that it can be copied as it is (appendNumber of the parsed double would give the
// same bytes). It accepts only forms for which that is certain, and leaves everything else to
// the general path:
//
//   - "0", or an integer -?[1-9][0-9]* of at most 15 digits: below 2^53, so its double is exact
//     and appendNumber writes it back digit for digit;
//   - a plain decimal -?(0|[1-9][0-9]*)\.[0-9]*[1-9] with at most 15 significant digits and
//     magnitude at least 1e-6 (at most five zeros between "0." and the first non-zero digit).
//     A decimal of at most 15 significant digits survives the trip to the nearest double and
//     back (DBL_DIG is 15), so no other decimal of at most 15 digits reads as the same double:
//     the shortest round-trip digits of that double are exactly these. Its double is not an
//     integer (its distance to one, at least 10^(k-15) for k integer digits, exceeds half the
//     double spacing there), it lies in [1e-6, 1e21) where ECMAScript (and appendNumber) uses
//     plain notation, and that notation has no redundant zeros, so it is s itself.
func isShortestNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i == len(s) {
		return false
	}
	digits := 0 // significant digits
	switch c := s[i]; {
	case c == '0':
		i++
		if i == len(s) {
			return i == 1 // "0"; "-0" is written as 0
		}
	case c >= '1' && c <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
			digits++
		}
		if i == len(s) {
			return digits <= 15
		}
	default:
		return false
	}
	if s[i] != '.' {
		return false
	}
	i++
	if digits == 0 { // "0.": leading zeros of the fraction are not significant
		zeros := 0
		for i < len(s) && s[i] == '0' {
			i++
			zeros++
		}
		if zeros > 5 {
			return false // below 1e-6: exponent notation
		}
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	digits += i - start
	return i == len(s) && i > start && s[i-1] != '0' && digits <= 15
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

// AppendString appends s to dst as a canonical JSON string, as Canonical(s) writes it. It fails
// when s is not valid UTF-8, and dst is then returned unchanged.
func AppendString(dst []byte, s string) ([]byte, error) {
	e := encoder{buf: dst}
	if err := e.string(s); err != nil {
		return dst, err
	}
	return e.buf, nil
}

// AppendValue appends the canonical JSON of v to dst, as Canonical(v) writes it. On error dst
// is returned as it was (its spare capacity may have been written to).
func AppendValue(dst []byte, v any) ([]byte, error) {
	e := encoder{buf: dst}
	if err := e.value(v); err != nil {
		return dst, fmt.Errorf("canonical json: %w", err)
	}
	return e.buf, nil
}
