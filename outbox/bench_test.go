package outbox

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkUpdate100 measures one detector batch: an Update storing 100
// messages of about 1 KiB, their item states and the cursor, committed with
// an fsync.
func BenchmarkUpdate100(b *testing.B) {
	ctx := context.Background()
	o := openTest(b, "")
	body := []byte(strings.Repeat("x", 1024))
	seq := 0
	b.SetBytes(100 * int64(len(body)))
	for b.Loop() {
		err := o.Update(ctx, func(tx *Tx) error {
			for range 100 {
				seq++
				code := fmt.Sprintf("ITEM-%05d", seq%5000)
				m := NewMessage{DeliveryID: fmt.Sprintf("d-%d", seq), Body: body,
					Items: []MessageItem{{Code: code, Version: int64(seq), Op: "upsert"}}}
				if _, err := tx.AddMessage(ctx, m, t0); err != nil {
					return err
				}
				if err := tx.PutItemState(ctx, ItemState{Code: code, Version: int64(seq), Hash: "h"}); err != nil {
					return err
				}
			}
			return tx.SetCursor(ctx, Cursor{Source: "item", Modified: fmt.Sprint(seq), Name: "x"})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDue measures Due(limit 10, 4 in flight) over 10,000 pending
// messages of 1 KiB, in the shapes a backlog takes. msgs/op is how many it
// handed out.
func BenchmarkDue(b *testing.B) {
	const pending = 10_000
	cases := []struct {
		name      string
		items     int           // distinct items: fewer means more messages wait behind older ones
		next      time.Duration // when the pending messages are due, relative to t0
		delivered int           // delivered messages of the same items before them
		due       int           // due messages of other items after them
	}{
		{"all-due", pending, 0, 0, 0},
		{"all-due-shared-items", 50, 0, 0, 0},
		{"none-due", pending, time.Hour, 0, 0},
		{"20-due-after-10k-waiting", pending, time.Hour, 0, 20},
		{"all-due-after-50k-delivered", 500, 0, 50_000, 0},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			o := openTest(b, "")
			body := []byte(strings.Repeat("x", 1024))
			store := func(n, from int, next time.Time, items int) []int64 {
				var ids []int64
				for start := 0; start < n; start += 1000 {
					err := o.Update(ctx, func(tx *Tx) error {
						for i := start; i < min(start+1000, n); i++ {
							seq := from + i
							m := NewMessage{DeliveryID: fmt.Sprintf("d-%d", seq), Body: body,
								Items: []MessageItem{{Code: fmt.Sprintf("I%d", seq%items), Version: int64(seq), Op: "upsert"}}}
							id, err := tx.AddMessage(ctx, m, next)
							if err != nil {
								return err
							}
							ids = append(ids, id)
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				return ids
			}
			if tc.delivered > 0 {
				ids := store(tc.delivered, 0, t0, tc.items)
				markDelivered(b, o, ids[0], ids[len(ids)-1], t0)
			}
			ids := store(pending, tc.delivered, t0.Add(tc.next), tc.items)
			if tc.due > 0 {
				ids = store(tc.due, tc.delivered+pending, t0, tc.items+pending+tc.due)
			}
			exclude := map[int64]bool{ids[0]: true, ids[1]: true, ids[2]: true, ids[3]: true}
			var n int
			for b.Loop() {
				msgs, err := o.Due(ctx, t0, 10, exclude)
				if err != nil {
					b.Fatal(err)
				}
				n = len(msgs)
			}
			b.ReportMetric(float64(n), "msgs/op")
		})
	}
}

// BenchmarkUpdateBatch100 is one detection page at batch size 100: 500 item
// states and 5 messages of 100 items each, with the cursor, in one Update.
func BenchmarkUpdateBatch100(b *testing.B) {
	ctx := context.Background()
	o := openTest(b, "")
	body := []byte(strings.Repeat("x", 50*1024))
	seq := 0
	for b.Loop() {
		err := o.Update(ctx, func(tx *Tx) error {
			for range 5 {
				items := make([]MessageItem, 100)
				for i := range items {
					seq++
					items[i] = MessageItem{Code: fmt.Sprintf("ITEM-%05d", seq%50000), Version: int64(seq), Op: "upsert"}
					if err := tx.PutItemState(ctx, ItemState{Code: items[i].Code, Version: int64(seq), Hash: "h"}); err != nil {
						return err
					}
				}
				if _, err := tx.AddMessage(ctx, NewMessage{DeliveryID: fmt.Sprintf("d-%d", seq), Body: body, Items: items}, t0); err != nil {
					return err
				}
			}
			return tx.SetCursor(ctx, Cursor{Source: "item", Modified: fmt.Sprint(seq), Name: "x"})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*500), "ns/item")
}

// BenchmarkCycle is the outbox's part of a bulk change, per page of 500
// changed items: one Update storing them claimed (PendingItems first, as the
// queue does) with their item states, in messages of batch items with
// bodies of about 500 bytes per item, then their acceptances recorded in
// groups of 32 messages (MarkDeliveredBatch) and released. Item states are
// stored in one PutItemStates per page, as the queue does. ns/item is the
// cost per item of the whole cycle.
func BenchmarkCycle(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch-%d", batch), func(b *testing.B) { benchCycle(b, batch) })
	}
}

func benchCycle(b *testing.B, batch int) {
	ctx := context.Background()
	o := openTest(b, "")
	body := []byte(strings.Repeat("x", 500*batch))
	const page, group, catalogue = 500, 32, 50_000
	hash := strings.Repeat("5e", 32) // a sha256 in hex, as the queue stores it
	seq := 0
	written := writtenBytes(b)
	for b.Loop() {
		var claimed []Message
		err := o.Update(ctx, func(tx *Tx) error {
			codes := make([]string, page)
			for i := range codes {
				codes[i] = fmt.Sprintf("ITEM-%06d", (seq+i)%catalogue)
			}
			if _, err := tx.PendingItems(ctx, codes); err != nil {
				return err
			}
			states := make([]ItemState, page)
			for i, code := range codes {
				states[i] = ItemState{Code: code, Version: int64(seq + 1 + i), Hash: hash}
			}
			if err := tx.PutItemStates(ctx, states); err != nil {
				return err
			}
			for start := 0; start < page; start += batch {
				items := make([]MessageItem, 0, batch)
				for _, code := range codes[start:min(start+batch, page)] {
					seq++
					items = append(items, MessageItem{Code: code, Version: int64(seq), Op: "upsert"})
				}
				m, err := tx.AddClaimedMessage(ctx, NewMessage{DeliveryID: fmt.Sprintf("d-%d", seq), Body: body, Items: items}, t0)
				if err != nil {
					return err
				}
				claimed = append(claimed, m)
			}
			return tx.SetCursor(ctx, Cursor{Source: "item", Modified: fmt.Sprint(seq), Name: "x"})
		})
		if err != nil {
			b.Fatal(err)
		}
		for start := 0; start < len(claimed); start += group {
			g := claimed[start:min(start+group, len(claimed))]
			acc := make([]Accepted, len(g))
			ids := make([]int64, len(g))
			for i, m := range g {
				acc[i], ids[i] = Accepted{ID: m.ID, Status: 200}, m.ID
			}
			if _, err := o.MarkDeliveredBatch(ctx, acc, t0); err != nil {
				b.Fatal(err)
			}
			o.Release(ids...)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*page), "ns/item")
	if w := written(); w >= 0 {
		b.ReportMetric(float64(w)/float64(b.N*page), "written-B/item")
	}
}

// writtenBytes returns a function that tells how many bytes this process has
// written since (wchar in /proc/self/io), or -1 where that cannot be read.
func writtenBytes(b *testing.B) func() int64 {
	read := func() int64 {
		data, err := os.ReadFile("/proc/self/io")
		if err != nil {
			return -1
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "wchar: "); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					b.Fatalf("/proc/self/io: %q: %v", line, err)
				}
				return n
			}
		}
		return -1
	}
	start := read()
	return func() int64 {
		if start < 0 {
			return -1
		}
		return read() - start
	}
}
