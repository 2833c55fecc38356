package site

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/outbox"
)

// laneStub is a delivery lane with fixed room that keeps what it is given.
type laneStub struct {
	msgs, bytes int
	got         []outbox.Message
}

func (l *laneStub) Room() (int, int)                         { return l.msgs, l.bytes }
func (l *laneStub) Take(msgs []outbox.Message)               { l.got = append(l.got, msgs...) }
func (l *laneStub) AwaitRoom(context.Context, time.Duration) {}

// TestWriterHandsFreshMessagesToDelivery: the queue stores a message claimed
// and hands it straight to delivery when delivery has room for it and no
// older message of its items is pending; every other message waits for
// Claim.
func TestWriterHandsFreshMessagesToDelivery(t *testing.T) {
	item := func(code, name string) detector.Item {
		return fieldsItem(code, map[string]any{"item_code": code, "item_name": name})
	}
	tests := []struct {
		name        string
		msgs, bytes int      // the lane's room
		inFlight    []string // items of a message claimed before the write
		write       []string // one message per item (batch size 1)
		direct      []string // items whose message goes straight to delivery
	}{
		{name: "no room", msgs: 0, bytes: 1 << 20, write: []string{"A", "B"}},
		{name: "room for all", msgs: 10, bytes: 1 << 20, write: []string{"A", "B"}, direct: []string{"A", "B"}},
		{name: "room for one message", msgs: 1, bytes: 1 << 20, write: []string{"A", "B"}, direct: []string{"A"}},
		{name: "no room for the bytes", msgs: 10, bytes: 50, write: []string{"A", "B"}},
		{name: "an older message of the item is in flight", msgs: 10, bytes: 1 << 20, inFlight: []string{"A"},
			write: []string{"A", "B"}, direct: []string{"B"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
			must(t, err)
			defer ob.Close()
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			w := &writer{ob: ob, tenant: "lighting_co_ke", batchSize: 1, maxBodyBytes: 1 << 20, logger: logger, now: time.Now}
			writes := 0
			write := func(codes []string) {
				t.Helper()
				writes++ // each write a new state of its items
				var items []detector.Item
				for _, c := range codes {
					items = append(items, item(c, fmt.Sprint(writes)))
				}
				if _, err := w.write(ctx, detector.Batch{Items: items}); err != nil {
					t.Fatal(err)
				}
			}
			if len(tt.inFlight) > 0 {
				write(tt.inFlight)
				if c, err := ob.Claim(ctx, time.Now(), 100); err != nil || len(c) != len(tt.inFlight) {
					t.Fatalf("Claim = %d messages, %v", len(c), err)
				}
			}
			lane := &laneStub{msgs: tt.msgs, bytes: tt.bytes}
			w.direct = lane
			before := ob.Claimed()
			write(tt.write)

			var direct []string
			claimed := ob.Claimed()
			for _, m := range lane.got {
				if len(m.Items) != 1 || !m.Exposed || len(m.Body) == 0 || !claimed[m.ID] {
					t.Errorf("handed over %+v (claimed %v): want one item, exposed, with its body, claimed", m, claimed[m.ID])
				}
				stored, err := ob.Get(ctx, m.ID)
				must(t, err)
				if stored.DeliveryID != m.DeliveryID || stored.State != outbox.Pending || !stored.Exposed || string(stored.Body) != string(m.Body) {
					t.Errorf("message %d handed over as %s, stored as %+v", m.ID, m.DeliveryID, stored)
				}
				direct = append(direct, m.Items[0].Code)
			}
			if !slices.Equal(direct, tt.direct) {
				t.Errorf("went straight to delivery: %v, want %v", direct, tt.direct)
			}
			if len(claimed) != len(before)+len(lane.got) {
				t.Errorf("claims: %d before, %d handed over, %d after", len(before), len(lane.got), len(claimed))
			}
			// The rest waits for Claim, which does not hand out a message
			// behind an older one of its items.
			var rest []string
			c, err := ob.Claim(ctx, time.Now(), 100)
			must(t, err)
			for _, m := range c {
				rest = append(rest, m.Items[0].Code)
			}
			var want []string
			for _, code := range tt.write {
				if !slices.Contains(tt.direct, code) && !slices.Contains(tt.inFlight, code) {
					want = append(want, code)
				}
			}
			if n := ob.Claimed(); len(n) != len(claimed)+len(rest) {
				t.Errorf("Claim after the write handed out %v; claimed before it: %d, after it: %d", rest, len(claimed), len(n))
			}
			if !slices.Equal(rest, want) {
				t.Errorf("Claim after the write = %v, want %v", rest, want)
			}
		})
	}
}
