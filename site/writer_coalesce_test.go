package site

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/outbox"
)

// TestWriterCoalescesWaitingStates: a newer state of an item takes the
// place of its older state while that waits in a message no attempt has
// reached the receiver with, under a new delivery id, keeping the message's
// place; a message in flight or possibly received keeps its body.
func TestWriterCoalescesWaitingStates(t *testing.T) {
	ctx := context.Background()
	ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
	must(t, err)
	defer ob.Close()
	w := &writer{ob: ob, tenant: "lighting_co_ke", batchSize: 3, maxBodyBytes: 1 << 20,
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	item := func(code, name string) detector.Item {
		return fieldsItem(code, map[string]any{"item_code": code, "item_name": name})
	}
	write := func(items ...detector.Item) {
		t.Helper()
		if _, err := w.write(ctx, detector.Batch{Items: items}); err != nil {
			t.Fatal(err)
		}
	}
	// pending lists the pending messages, oldest first, as "id:A=name,B=name".
	pending := func() []string {
		t.Helper()
		msgs, err := ob.List(ctx, outbox.Pending, 0)
		must(t, err)
		var out []string
		for i := len(msgs) - 1; i >= 0; i-- {
			m, err := ob.Get(ctx, msgs[i].ID)
			must(t, err)
			var body struct {
				DeliveryID string           `json:"delivery_id"`
				Items      []map[string]any `json:"items"`
			}
			dec := json.NewDecoder(bytes.NewReader(m.Body))
			dec.UseNumber()
			must(t, dec.Decode(&body))
			if body.DeliveryID != m.DeliveryID {
				t.Errorf("message %d: body delivery id %s, stored %s", m.ID, body.DeliveryID, m.DeliveryID)
			}
			var parts []string
			for j, it := range body.Items {
				if it["item_code"] != m.Items[j].Code || fmt.Sprint(it["version"]) != fmt.Sprint(m.Items[j].Version) {
					t.Errorf("message %d: body item %d is %v v%v, stored %+v", m.ID, j, it["item_code"], it["version"], m.Items[j])
				}
				parts = append(parts, fmt.Sprintf("%s=%s", it["item_code"], it["item_name"]))
			}
			out = append(out, fmt.Sprintf("%d:%s", m.ID, strings.Join(parts, ",")))
		}
		return out
	}
	expect := func(want ...string) {
		t.Helper()
		if got := pending(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("pending messages\n got %v\nwant %v", got, want)
		}
	}

	write(item("A", "a1"), item("B", "b1"), item("C", "c1"), item("D", "d1"))
	expect("1:A=a1,B=b1,C=c1", "2:D=d1")
	first, err := ob.Get(ctx, 1)
	must(t, err)

	// Message 1 is in flight: B's new state waits behind it in a new
	// message. Message 2 never went out: D's new state replaces d1 in place.
	claimed, err := ob.Claim(ctx, time.Now(), 1)
	must(t, err)
	if len(claimed) != 1 || claimed[0].ID != 1 {
		t.Fatalf("claimed %+v", claimed)
	}
	write(item("B", "b2"), item("D", "d2"), item("E", "e1"))
	expect("1:A=a1,B=b1,C=c1", "2:D=d2", "3:B=b2,E=e1")

	// Refused (503): message 1 never reached the receiver's state, so it
	// may be rewritten, under a new delivery id.
	must(t, ob.MarkRefused(ctx, 1, 503, "unavailable", time.Now()))
	ob.Release(1)
	write(item("A", "a2"))
	expect("1:A=a2,B=b1,C=c1", "2:D=d2", "3:B=b2,E=e1")
	m1, err := ob.Get(ctx, 1)
	must(t, err)
	if m1.DeliveryID == first.DeliveryID {
		t.Error("a rewritten message kept its delivery id: a delivery id must never name two contents")
	}

	// Timed out (possibly received): message 1 keeps its body to the end.
	claimed, err = ob.Claim(ctx, time.Now(), 1)
	must(t, err)
	must(t, ob.MarkRetry(ctx, claimed[0].ID, 0, "timeout", time.Now()))
	ob.Release(claimed[0].ID)
	write(item("A", "a3"), item("C", "c2"))
	expect("1:A=a2,B=b1,C=c1", "2:D=d2", "3:B=b2,E=e1", "4:A=a3,C=c2")

	// The newer state does not fit the waiting body: the item leaves it for
	// a new message, and a message left empty is dropped.
	w.maxBodyBytes = 400
	big := strings.Repeat("x", 300)
	write(item("E", big), item("D", "d3"))
	expect("1:A=a2,B=b1,C=c1", "2:D=d3", "3:B=b2", "4:A=a3,C=c2", "5:E="+big)
	write(item("B", big)) // alone in its message: any size goes
	expect("1:A=a2,B=b1,C=c1", "2:D=d3", "3:B="+big, "4:A=a3,C=c2", "5:E="+big)
	write(item("A", big), item("C", big))
	expect("1:A=a2,B=b1,C=c1", "2:D=d3", "3:B="+big, "5:E="+big, "6:A="+big, "7:C="+big)
}
