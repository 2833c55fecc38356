package signer

import (
	"fmt"
	"slices"
)

// Object is a JSON object kept as its members, each encoded in canonical form once: the
// canonical encoding of the object, and of the object with members added or replaced by Set,
// is then assembled by copying bytes, without encoding the values again. It is meant for
// bodies that need several variants of one object, such as a hash over an item's fields and
// the item entry that adds op and version to them.
//
// The zero Object is an empty object, ready to use. An Object is not safe for concurrent use.
type Object struct {
	buf     []byte         // "name":value of each member, in the order they were encoded
	members []objectMember // in JCS order
}

// objectMember locates one member in Object.buf.
type objectMember struct {
	name              string
	start, value, end int // buf[start:end] is "name":value; buf[value:end] is the value
}

// NewObject encodes the members of m, except those named in omit, as Canonical encodes them:
// Canonical(m) with the omitted members deleted gives exactly the bytes of the result's Append,
// and fails where NewObject fails, with the same error. A nil or empty m gives an empty object
// (not null).
func NewObject(m map[string]any, omit ...string) (*Object, error) {
	o := &Object{}
	if len(m) == 0 {
		return o, nil
	}
	// Members are encoded inside the object, at depth 1, as Canonical(m) encodes them. The
	// buffer has room for a few small members to be Set without growing it.
	e := encoder{buf: make([]byte, 0, sizeHint(m)+128), depth: 1}
	start, end := e.pushMembers(m)
	o.members = make([]objectMember, 0, end-start+4) // room for a few Set
	for i := start; i < end; i++ {
		mb := e.members[e.order[i]]
		if slices.Contains(omit, mb.key) {
			continue
		}
		m, err := e.objectMember(mb.key, mb.val)
		if err != nil {
			return nil, fmt.Errorf("canonical json: %w", err)
		}
		o.members = append(o.members, m)
	}
	o.buf = e.buf
	return o, nil
}

// Set encodes v (as Canonical does) as the value of the member name, in place of a member of
// that name if there is one. On error the object is unchanged. The bytes of a replaced member
// stay in the object's buffer until the object is dropped.
func (o *Object) Set(name string, v any) error {
	e := encoder{buf: o.buf, depth: 1}
	m, err := e.objectMember(name, v)
	if err != nil {
		return fmt.Errorf("canonical json: %w", err)
	}
	o.buf = e.buf
	o.put(m)
	return nil
}

// objectMember appends "name":v as member does and returns where it is.
func (e *encoder) objectMember(name string, v any) (objectMember, error) {
	m := objectMember{name: name, start: len(e.buf)}
	if err := e.string(name); err != nil {
		return m, withKey(fmt.Errorf("member name: %w", err), name)
	}
	e.buf = append(e.buf, ':')
	m.value = len(e.buf)
	if err := e.value(v); err != nil {
		return m, withKey(err, name)
	}
	m.end = len(e.buf)
	return m, nil
}

// SetRaw sets the member name to value, which must be canonical JSON already (as Canonical,
// AppendString or Append wrote it): it is copied as it is, without being checked. It fails
// only when name is not valid UTF-8. It is the way to build an object member by member
// without boxing each value in an interface.
func (o *Object) SetRaw(name string, value []byte) error {
	e := encoder{buf: o.buf, depth: 1}
	m := objectMember{name: name, start: len(e.buf)}
	if err := e.string(name); err != nil {
		return fmt.Errorf("canonical json: %w", withKey(fmt.Errorf("member name: %w", err), name))
	}
	e.buf = append(e.buf, ':')
	m.value = len(e.buf)
	o.buf = append(e.buf, value...)
	m.end = len(o.buf)
	o.put(m)
	return nil
}

// put places m in JCS order, in place of a member of the same name.
func (o *Object) put(m objectMember) {
	if n := len(o.members); n == 0 || CompareKeys(o.members[n-1].name, m.name) < 0 {
		o.members = append(o.members, m) // members set in order: no search
		return
	}
	i, found := slices.BinarySearchFunc(o.members, m.name, func(m objectMember, name string) int {
		return CompareKeys(m.name, name)
	})
	if found {
		o.members[i] = m
	} else {
		o.members = slices.Insert(o.members, i, m)
	}
}

// Grow makes room for members more members holding bytes more bytes of names and values,
// so that setting them allocates nothing.
func (o *Object) Grow(members, bytes int) {
	o.members = slices.Grow(o.members, members)
	o.buf = slices.Grow(o.buf, bytes)
}

// Value returns the canonical JSON of the value of the member name, if there is one. The
// result aliases the object's buffer: do not change it.
func (o *Object) Value(name string) ([]byte, bool) {
	i, found := slices.BinarySearchFunc(o.members, name, func(m objectMember, name string) int {
		return CompareKeys(m.name, name)
	})
	if !found {
		return nil, false
	}
	m := o.members[i]
	return o.buf[m.value:m.end:m.end], true
}

// Names returns the member names in JCS order.
func (o *Object) Names() []string {
	out := make([]string, len(o.members))
	for i, m := range o.members {
		out[i] = m.name
	}
	return out
}

// AppendMerged appends the canonical JSON of o with the members of over added, or put in place
// of o's members of the same name: what Append gives after Set of each of over's members, without
// changing o.
func (o *Object) AppendMerged(dst []byte, over *Object) []byte {
	n := 2 + len(o.members) + len(over.members) // braces and commas, at most
	for _, m := range o.members {
		n += m.end - m.start
	}
	for _, m := range over.members {
		n += m.end - m.start
	}
	dst = slices.Grow(dst, n)
	dst = append(dst, '{')
	i, j := 0, 0
	for i < len(o.members) || j < len(over.members) {
		if i+j > 0 {
			dst = append(dst, ',')
		}
		var src *Object
		var m objectMember
		switch {
		case j == len(over.members):
			src, m = o, o.members[i]
			i++
		case i == len(o.members):
			src, m = over, over.members[j]
			j++
		default:
			switch c := CompareKeys(o.members[i].name, over.members[j].name); {
			case c < 0:
				src, m = o, o.members[i]
				i++
			case c > 0:
				src, m = over, over.members[j]
				j++
			default: // over's member replaces o's
				src, m = over, over.members[j]
				i++
				j++
			}
		}
		dst = append(dst, src.buf[m.start:m.end]...)
	}
	return append(dst, '}')
}

// Len returns the number of members.
func (o *Object) Len() int { return len(o.members) }

// Append appends the canonical JSON encoding of the object to dst and returns the extended
// buffer. It grows dst at most once, to the size needed, so Append(nil) allocates exactly the
// encoding.
func (o *Object) Append(dst []byte) []byte {
	return o.AppendWithout(dst, "")
}

// AppendWithout is Append leaving out the member named omit, if there is one: the canonical
// JSON of the object without it.
func (o *Object) AppendWithout(dst []byte, omit string) []byte {
	n := 2 + max(len(o.members)-1, 0) // braces and commas
	for _, m := range o.members {
		n += m.end - m.start
	}
	dst = slices.Grow(dst, n)
	dst = append(dst, '{')
	first := true
	for _, m := range o.members {
		if m.name == omit && omit != "" {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, o.buf[m.start:m.end]...)
	}
	return append(dst, '}')
}
