package receiver

import (
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// MaxRemembered bounds how many accepted delivery ids a Receiver remembers
// for duplicate detection, over all tenants. Each takes a fixed ~100 bytes
// whatever the id's length, so the set stays under about 100 MiB.
//
// An id needs remembering only while a request carrying it could still pass
// the timestamp check: until its X-OrderWeave-Timestamp plus the replay window
// (Options.Window) plus rememberSlack; after that a replay of the request is
// refused by its timestamp anyway, and the id is forgotten. Only a flood of
// more than MaxRemembered accepted deliveries inside one window reaches the
// cap; then the id whose window ends first (the oldest) is forgotten first
// and counted in Stats.Evicted. A delivery repeating a forgotten id (an
// agent's retry, signed afresh, arriving after the window) is applied again
// like a new one: the items' versions keep the state right (Stats.Restated
// or Stale count it), only Stats.Duplicates misses it.
const MaxRemembered = 1 << 20

// rememberSlack is how long past its timestamp's window an id is still
// remembered: the margin for the receiver's own clock stepping back (the
// replay check and the forgetting both read that clock).
const rememberSlack = time.Minute

// deliveryKey names one (tenant, delivery id) pair in fixed space: the first
// 128 bits of SHA-256 over the length-prefixed tenant and the id, so the
// memory per id does not depend on the id's length, and two different pairs
// meet by chance with a probability of about 2^-128 per pair.
type deliveryKey [16]byte

func keyOf(tenant, deliveryID string) deliveryKey {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(tenant)))
	h.Write(n[:])
	h.Write([]byte(tenant))
	h.Write([]byte(deliveryID))
	var sum [sha256.Size]byte
	var k deliveryKey
	copy(k[:], h.Sum(sum[:0]))
	return k
}

// rememberedID is one remembered delivery id and its place in the heap.
type rememberedID struct {
	key   deliveryKey
	until int64 // Unix nanoseconds: forgotten once the clock passes it
	index int   // in deliveryIDs.heap
}

// idHeap orders remembered ids by until, the earliest first.
type idHeap []*rememberedID

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i].until < h[j].until }
func (h idHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *idHeap) Push(x any) {
	e := x.(*rememberedID)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *idHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// deliveryIDs is the bounded set of remembered delivery ids. It is not safe
// for concurrent use: the Receiver holds its mutex.
type deliveryIDs struct {
	max     int
	byKey   map[deliveryKey]*rememberedID
	peak    int // the most ids byKey has held since it was last rebuilt
	heap    idHeap
	evicted int64
}

func newDeliveryIDs(limit int) *deliveryIDs {
	return &deliveryIDs{max: limit, byKey: make(map[deliveryKey]*rememberedID)}
}

// expire forgets every id whose until has passed at now.
func (d *deliveryIDs) expire(now time.Time) {
	n := now.UnixNano()
	for len(d.heap) > 0 && d.heap[0].until <= n {
		e := heap.Pop(&d.heap).(*rememberedID)
		delete(d.byKey, e.key)
	}
	// Give back the memory of a flood once it has passed: neither a slice
	// nor a map shrinks by itself.
	if d.peak > 1024 && len(d.byKey) < d.peak/4 {
		d.heap = append(make(idHeap, 0, 2*len(d.heap)), d.heap...)
		m := make(map[deliveryKey]*rememberedID, 2*len(d.byKey))
		for k, e := range d.byKey {
			m[k] = e
		}
		d.byKey, d.peak = m, len(m)
	}
}

// remember records k until until and reports whether it was already
// remembered (a duplicate); a duplicate keeps the later of the two untils.
// Call expire first, so that an id whose window has passed counts as new.
// Over max ids, the ones with the earliest until are forgotten.
func (d *deliveryIDs) remember(k deliveryKey, until time.Time) (duplicate bool) {
	u := until.UnixNano()
	if e, ok := d.byKey[k]; ok {
		if u > e.until {
			e.until = u
			heap.Fix(&d.heap, e.index)
		}
		return true
	}
	for len(d.heap) >= d.max && len(d.heap) > 0 {
		e := heap.Pop(&d.heap).(*rememberedID)
		delete(d.byKey, e.key)
		d.evicted++
	}
	e := &rememberedID{key: k, until: u}
	heap.Push(&d.heap, e)
	d.byKey[k] = e
	d.peak = max(d.peak, len(d.byKey))
	return false
}

// len is how many ids are remembered.
func (d *deliveryIDs) len() int { return len(d.byKey) }
