package signer

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON parser used by CanonicalizeJSON, by Canonical for json.RawMessage and for its
// encoding/json fallback. It builds a small tree of:
//
//	nil, bool, string, float64 (numbers, already converted to IEEE doubles), []any, object.
//
// It is strict RFC 8259 plus the I-JSON (RFC 7493) rules JCS depends on: strings must be valid
// UTF-8 and must not hold lone surrogates. Duplicate member names are kept here and rejected
// when the object is encoded, after sorting makes them adjacent.

// maxDepth bounds nesting (parsed text and Go values alike), which also stops cyclic values.
// It matches the limit of encoding/json's decoder.
const maxDepth = 10000

// member is one name/value pair of a parsed object.
type member struct {
	key string
	val any
}

// object is a parsed JSON object, members in document order.
type object []member

// syntaxError is a parse error at a byte offset of the input.
type syntaxError struct {
	offset int
	msg    string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.offset, e.msg)
}

type parser struct {
	data  []byte
	pos   int
	depth int
}

// parseJSON parses exactly one JSON value, with optional surrounding whitespace.
func parseJSON(data []byte) (any, error) {
	p := parser{data: data}
	p.skipSpace()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, p.errorf("unexpected %s after the JSON value", p.describe())
	}
	return v, nil
}

func (p *parser) errorf(format string, args ...any) error {
	return &syntaxError{offset: p.pos, msg: fmt.Sprintf(format, args...)}
}

// describe names the byte at the current position for an error message.
func (p *parser) describe() string {
	if p.pos >= len(p.data) {
		return "end of input"
	}
	c := p.data[p.pos]
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("character %q", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value() (any, error) {
	if p.pos >= len(p.data) {
		return nil, p.errorf("unexpected end of input, want a JSON value")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.string()
	case c == '-' || isDigit(c):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	default:
		return nil, p.errorf("unexpected %s, want a JSON value", p.describe())
	}
}

func (p *parser) literal(word string) error {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return p.errorf("invalid literal, want %s", word)
	}
	p.pos += len(word)
	return nil
}

func (p *parser) number() (any, error) {
	end := scanNumber(p.data, p.pos)
	if end < 0 {
		return nil, p.errorf("malformed number")
	}
	f, err := numberValue(string(p.data[p.pos:end]))
	if err != nil {
		return nil, &syntaxError{offset: p.pos, msg: err.Error()}
	}
	p.pos = end
	return f, nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errorf("nesting deeper than %d levels", maxDepth)
	}
	return nil
}

func (p *parser) array() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.pos++ // '['
	arr := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		p.depth--
		return arr, nil
	}
	for {
		p.skipSpace()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unexpected end of input in array, want ',' or ']'")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			p.depth--
			return arr, nil
		default:
			return nil, p.errorf("unexpected %s in array, want ',' or ']'", p.describe())
		}
	}
}

func (p *parser) object() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.pos++ // '{'
	obj := object{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		p.depth--
		return obj, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errorf("unexpected %s in object, want a member name string", p.describe())
		}
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errorf("unexpected %s after member name, want ':'", p.describe())
		}
		p.pos++
		p.skipSpace()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		obj = append(obj, member{key: key, val: v})
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unexpected end of input in object, want ',' or '}'")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			p.depth--
			return obj, nil
		default:
			return nil, p.errorf("unexpected %s in object, want ',' or '}'", p.describe())
		}
	}
}

// string parses a string literal starting at the opening quote.
func (p *parser) string() (string, error) {
	p.pos++ // opening '"'
	start := p.pos
	// Fast path: no escapes.
	for i := start; i < len(p.data); i++ {
		c := p.data[i]
		if c == '"' {
			s := p.data[start:i]
			if !utf8.Valid(s) {
				return "", p.badUTF8(start, i)
			}
			p.pos = i + 1
			return string(s), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			p.pos = i
			return "", p.errorf("control character 0x%02x in string must be escaped", c)
		}
	}
	return p.stringSlow(start)
}

func (p *parser) stringSlow(start int) (string, error) {
	buf := make([]byte, 0, 32)
	i := start
	for {
		if i >= len(p.data) {
			p.pos = i
			return "", p.errorf("unexpected end of input in string")
		}
		c := p.data[i]
		switch {
		case c == '"':
			if !utf8.Valid(buf) {
				return "", p.badUTF8(start, i)
			}
			p.pos = i + 1
			return string(buf), nil
		case c < 0x20:
			p.pos = i
			return "", p.errorf("control character 0x%02x in string must be escaped", c)
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		// Escape sequence.
		p.pos = i
		if i+1 >= len(p.data) {
			return "", p.errorf("unexpected end of input in string escape")
		}
		switch e := p.data[i+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4(i + 2)
			if !ok {
				return "", p.errorf(`malformed \u escape`)
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 {
					return "", p.errorf(`lone low surrogate \u%04x in string`, r)
				}
				var r2 rune = -1
				if i+1 < len(p.data) && p.data[i] == '\\' && p.data[i+1] == 'u' {
					r2, _ = p.hex4(i + 2)
				}
				if r2 < 0xDC00 || r2 > 0xDFFF {
					return "", p.errorf(`lone high surrogate \u%04x in string`, r)
				}
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			buf = utf8.AppendRune(buf, r)
			continue
		default:
			return "", p.errorf("invalid escape sequence in string")
		}
		i += 2
	}
}

// hex4 reads four hex digits at data[i:].
func (p *parser) hex4(i int) (rune, bool) {
	if i+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// badUTF8 reports the first invalid UTF-8 byte in data[start:end].
func (p *parser) badUTF8(start, end int) error {
	i := start
	for i < end {
		r, size := utf8.DecodeRune(p.data[i:end])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		i += size
	}
	p.pos = i
	return p.errorf("string is not valid UTF-8")
}
