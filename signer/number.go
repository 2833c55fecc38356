package signer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FormatNumber writes f the way ECMAScript's Number.prototype.toString does, which is the number
// serialisation RFC 8785 (JCS) §3.2.2.3 requires: the shortest decimal digits that read back as
// exactly f, in plain notation for 1e-6 <= |f| < 1e21 and in exponent notation ("1e+21", "1e-7",
// "1.5e-10") outside that range. Negative zero is written as "0". NaN and ±Inf are not JSON numbers
// and give an error.
func FormatNumber(f float64) (string, error) {
	b, err := appendNumber(make([]byte, 0, 24), f)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// appendNumber appends the ECMAScript form of f to dst (see FormatNumber).
func appendNumber(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, fmt.Errorf("number %v cannot be represented in JSON", f)
	}
	if f == 0 {
		return append(dst, '0'), nil // also -0
	}
	a := math.Abs(f)
	if a < 1<<53 && f == math.Trunc(f) {
		// Every integer below 2^53 is a distinct double, so its shortest form is itself.
		return strconv.AppendInt(dst, int64(f), 10), nil
	}
	if a >= 1e-6 && a < 1e21 {
		// ECMAScript uses plain notation exactly in this range, and strconv's shortest 'f'
		// form then produces the same digits (shortest round-trip, closest to the value).
		return strconv.AppendFloat(dst, f, 'f', -1, 64), nil
	}

	// Exponent notation: d[.ddd]e±n, with the shortest digits.
	var tmp [32]byte
	b := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64) // [-]d[.ddd]e±dd
	if b[0] == '-' {
		dst = append(dst, '-')
		b = b[1:]
	}
	e := len(b) - 1
	for b[e] != 'e' {
		e--
	}
	mant, exp := b[:e], b[e+1:]
	dst = append(dst, mant...) // "d" or "d.ddd": already what ECMAScript writes
	dst = append(dst, 'e', exp[0])
	exp = exp[1:]
	for len(exp) > 1 && exp[0] == '0' { // strconv pads the exponent to two digits
		exp = exp[1:]
	}
	return append(dst, exp...), nil
}

// scanNumber returns the end of the JSON number (RFC 8259 grammar) starting at s[i], or -1 if
// there is no valid number there.
func scanNumber(s []byte, i int) int {
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return -1
	}
	switch {
	case s[i] == '0':
		i++
	case s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return -1
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == start {
			return -1
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == start {
			return -1
		}
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// numberValue converts a JSON number literal (already known to match the grammar) to the IEEE
// double JCS works with. A literal beyond the double range, or a non-zero literal that would
// round to zero, is an error rather than a silently different value.
func numberValue(lit string) (float64, error) {
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("number %s is outside the range of an IEEE double", abbrev(lit))
		}
		return 0, fmt.Errorf("number %s: %w", abbrev(lit), err)
	}
	if f == 0 {
		mant := lit
		if i := strings.IndexAny(lit, "eE"); i >= 0 {
			mant = lit[:i]
		}
		if strings.ContainsAny(mant, "123456789") {
			return 0, fmt.Errorf("number %s is too small for an IEEE double (it would round to 0)", abbrev(lit))
		}
	}
	return f, nil
}

// parseJSONNumber validates and converts a json.Number.
func parseJSONNumber(n json.Number) (float64, error) {
	s := string(n)
	if scanNumber([]byte(s), 0) != len(s) {
		return 0, fmt.Errorf("json.Number %s is not a valid JSON number", abbrev(s))
	}
	return numberValue(s)
}

// Decimal turns the exact decimal text of a SQL DECIMAL column as MariaDB returns it (for example
// "19.990000000", "-0.500000000", "0.000000000") into the value to put in a JSON body, so that
// money and quantities keep their exact value:
//
//   - If the double nearest to the value prints back (in ECMAScript shortest form) as exactly the
//     same decimal value, the result is a json.Number holding that shortest form and exact is true:
//     "19.990000000" -> json.Number("19.99"), "100.000000000" -> json.Number("100"),
//     "0.000000001" -> json.Number("1e-9"), "-0.000000000" -> json.Number("0").
//   - Otherwise (more significant digits than a double carries, such as "123456789012.123456789"
//     or "9007199254740993", or a value beyond the double range) the result is the normalised
//     exact decimal as a Go string and exact is false, so nothing is silently rounded.
//
// The normalised decimal has no sign for zero and no '+', no leading zeros beyond a single one
// before the '.', no trailing fractional zeros and no bare trailing '.'. Input is an optional sign,
// digits, and an optional '.' with digits; anything else ("", "abc", "1e5", "1.2.3", " 1") is an
// error that names the value.
func Decimal(s string) (v any, exact bool, err error) {
	neg, intPart, fracPart, ok := splitDecimal(s)
	if !ok {
		return nil, false, fmt.Errorf("decimal %s is malformed: want digits with an optional sign and '.' (as a SQL DECIMAL column reads)", abbrev(strconv.Quote(s)))
	}
	intPart = strings.TrimLeft(intPart, "0")
	fracPart = strings.TrimRight(fracPart, "0")
	if intPart == "" && fracPart == "" {
		return json.Number("0"), true, nil
	}

	var sb strings.Builder
	sb.Grow(len(intPart) + len(fracPart) + 3)
	if neg {
		sb.WriteByte('-')
	}
	if intPart == "" {
		sb.WriteByte('0')
	} else {
		sb.WriteString(intPart)
	}
	if fracPart != "" {
		sb.WriteByte('.')
		sb.WriteString(fracPart)
	}
	norm := sb.String()

	// Significant digits and decimal point position of the input: value = 0.<digits> × 10^point.
	digits := intPart + fracPart
	point := len(intPart)
	for digits[0] == '0' { // only when intPart == "": leading zeros of the fraction
		digits = digits[1:]
		point--
	}
	digits = strings.TrimRight(digits, "0") // trailing zeros of an integer

	f, perr := strconv.ParseFloat(norm, 64)
	if perr != nil || f == 0 || math.IsInf(f, 0) {
		return norm, false, nil // beyond the double range: keep the exact text
	}
	if !sameDigits(f, digits, point) {
		return norm, false, nil
	}
	num, ferr := appendNumber(nil, f)
	if ferr != nil { // cannot happen for a finite f; keep the exact text all the same
		return norm, false, nil
	}
	return json.Number(num), true, nil
}

// Float turns the text of a SQL FLOAT or DOUBLE column into the value to put in a JSON body, as
// Decimal does for DECIMAL text, and also takes exponent notation: MariaDB writes a double as
// "1e20" or "-2.5e-7", and database/sql writes one the driver read as a float64 in strconv's
// shortest 'g' form ("1e+20", "-2.5e-07", "1e+06", "1.2345678901234568e+17").
//
//   - Text without an exponent gives exactly what Decimal gives.
//   - If the double nearest to the value prints back (in ECMAScript shortest form) as exactly the
//     same decimal value, the result is a json.Number holding that form and exact is true:
//     "1e+20" -> json.Number("100000000000000000000"), "-2.5e-07" -> json.Number("-2.5e-7"),
//     "1e21" -> json.Number("1e+21"), "-0e0" -> json.Number("0").
//   - Otherwise (more significant digits than a double carries, or beyond the double range) the
//     result is the exact value as a Go string and exact is false, so nothing is silently
//     rounded. It holds the significant digits in the notation a JSON number of that magnitude
//     takes: plain for 1e-6 <= |value| < 1e21 ("1.000000000000000000001e5" ->
//     "100000.0000000000000001"), d.ddde±n otherwise ("1e400" -> "1e+400",
//     "-12345678901234567890123e-30" -> "-1.2345678901234567890123e-8").
//
// NaN and the infinities ("NaN", "+Inf", "-inf", "Infinity", in any case) are errors, since no JSON
// value carries them (MariaDB does not store them in FLOAT or DOUBLE columns); so is text that is
// not an optional sign, digits with an optional '.', and an optional exponent (e or E, an optional
// sign, digits), and an exponent beyond ±999999999. Errors name the value.
func Float(s string) (v any, exact bool, err error) {
	mant, exp, hasExp := s, "", false
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp, hasExp = s[:i], s[i+1:], true
	}
	neg, intPart, fracPart, ok := splitDecimal(mant)
	if !ok {
		if nonFinite(s) {
			return nil, false, fmt.Errorf("number %s is not finite: no JSON value carries it", abbrev(strconv.Quote(s)))
		}
		return nil, false, fmt.Errorf("number %s is malformed: want digits with an optional sign, '.' and exponent (as a SQL FLOAT or DOUBLE column reads)", abbrev(strconv.Quote(s)))
	}
	if !hasExp {
		return Decimal(s)
	}
	e, ok := parseExponent(exp)
	if !ok {
		return nil, false, fmt.Errorf("number %s has a malformed exponent or one beyond ±999999999", abbrev(strconv.Quote(s)))
	}

	// Significant digits and decimal point position: value = 0.<digits> × 10^point.
	intPart = strings.TrimLeft(intPart, "0")
	digits := intPart + fracPart
	point := len(intPart)
	trimmed := strings.TrimLeft(digits, "0") // only when intPart == "": leading zeros of the fraction
	point -= len(digits) - len(trimmed)
	digits = strings.TrimRight(trimmed, "0")
	if digits == "" {
		return json.Number("0"), true, nil
	}
	point += e

	f, perr := strconv.ParseFloat(s, 64)
	if (perr == nil || errors.Is(perr, strconv.ErrRange)) && f != 0 && !math.IsInf(f, 0) && sameDigits(f, digits, point) {
		if num, ferr := appendNumber(nil, f); ferr == nil {
			return json.Number(num), true, nil
		}
	}
	return exactText(neg, digits, point), false, nil
}

// nonFinite reports whether s names NaN or an infinity, with an optional sign, in any case.
func nonFinite(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return strings.EqualFold(s, "nan") || strings.EqualFold(s, "inf") || strings.EqualFold(s, "infinity")
}

// parseExponent reads [+-]digits with at most 9 significant digits.
func parseExponent(s string) (int, bool) {
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
	}
	s = strings.TrimLeft(s, "0")
	if len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// exactText writes ±0.<digits> × 10^point (digits without leading or trailing zeros) in the
// notation ECMAScript gives a number of that magnitude: plain for 1e-6 <= |value| < 1e21, that is
// -5 <= point <= 21, and d.ddde±n otherwise.
func exactText(neg bool, digits string, point int) string {
	var b strings.Builder
	b.Grow(len(digits) + 30)
	if neg {
		b.WriteByte('-')
	}
	switch {
	case point < -5 || point > 21:
		b.WriteByte(digits[0])
		if len(digits) > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		b.WriteByte('e')
		if point-1 >= 0 {
			b.WriteByte('+')
		}
		b.WriteString(strconv.Itoa(point - 1))
	case point <= 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -point))
		b.WriteString(digits)
	case point < len(digits):
		b.WriteString(digits[:point])
		b.WriteByte('.')
		b.WriteString(digits[point:])
	default:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", point-len(digits)))
	}
	return b.String()
}

// splitDecimal parses [+-]digits[.digits] (either digit run may be empty, not both).
func splitDecimal(s string) (neg bool, intPart, fracPart string, ok bool) {
	if s == "" {
		return false, "", "", false
	}
	switch s[0] {
	case '-':
		neg = true
		s = s[1:]
	case '+':
		s = s[1:]
	}
	intPart = s
	if i := strings.IndexByte(s, '.'); i >= 0 {
		intPart, fracPart = s[:i], s[i+1:]
	}
	if intPart == "" && fracPart == "" {
		return false, "", "", false
	}
	for i := 0; i < len(intPart); i++ {
		if !isDigit(intPart[i]) {
			return false, "", "", false
		}
	}
	for i := 0; i < len(fracPart); i++ {
		if !isDigit(fracPart[i]) {
			return false, "", "", false
		}
	}
	return neg, intPart, fracPart, true
}

// sameDigits reports whether the shortest decimal form of f is 0.<digits> × 10^point.
func sameDigits(f float64, digits string, point int) bool {
	var tmp [32]byte
	b := strconv.AppendFloat(tmp[:0], math.Abs(f), 'e', -1, 64) // d[.ddd]e±dd
	e := len(b) - 1
	for b[e] != 'e' {
		e--
	}
	exp, err := strconv.Atoi(string(b[e+1:]))
	if err != nil || exp+1 != point {
		return false
	}
	mant := b[:e]
	if len(mant) == 1 {
		return digits == string(mant)
	}
	return len(digits) == len(mant)-1 && digits[0] == mant[0] && digits[1:] == string(mant[2:])
}

// abbrev shortens text quoted into an error message.
func abbrev(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
