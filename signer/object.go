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
	name       string
	start, end int // buf[start:end] is "name":value
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
		at := len(e.buf)
		if err := e.member(mb.key, mb.val); err != nil {
			return nil, fmt.Errorf("canonical json: %w", err)
		}
		o.members = append(o.members, objectMember{name: mb.key, start: at, end: len(e.buf)})
	}
	o.buf = e.buf
	return o, nil
}

// Set encodes v (as Canonical does) as the value of the member name, in place of a member of
// that name if there is one. On error the object is unchanged. The bytes of a replaced member
// stay in the object's buffer until the object is dropped.
func (o *Object) Set(name string, v any) error {
	e := encoder{buf: o.buf, depth: 1}
	at := len(e.buf)
	if err := e.member(name, v); err != nil {
		return fmt.Errorf("canonical json: %w", err)
	}
	o.buf = e.buf
	m := objectMember{name: name, start: at, end: len(e.buf)}
	i, found := slices.BinarySearchFunc(o.members, name, func(m objectMember, name string) int {
		return compareKeys(m.name, name)
	})
	if found {
		o.members[i] = m
	} else {
		o.members = slices.Insert(o.members, i, m)
	}
	return nil
}

// Len returns the number of members.
func (o *Object) Len() int { return len(o.members) }

// Append appends the canonical JSON encoding of the object to dst and returns the extended
// buffer. It grows dst at most once, to the size needed, so Append(nil) allocates exactly the
// encoding.
func (o *Object) Append(dst []byte) []byte {
	n := 2 + max(len(o.members)-1, 0) // braces and commas
	for _, m := range o.members {
		n += m.end - m.start
	}
	dst = slices.Grow(dst, n)
	dst = append(dst, '{')
	for i, m := range o.members {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, o.buf[m.start:m.end]...)
	}
	return append(dst, '}')
}
