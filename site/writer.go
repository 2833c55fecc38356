package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
)

// queue turns detected items into outbox messages: it drops states whose
// content equals the last state queued for the item, gives each new state a
// version, puts each new state in place of the item's older state where that
// still waits in a message that was never sent (coalescing), groups the rest
// into bodies of at most batchSize items and maxBodyBytes, and stores it all
// with the detector's position in one outbox transaction.
type queue struct {
	ob           *outbox.Outbox
	tenant       string
	batchSize    int
	maxBodyBytes int
	logger       *slog.Logger
	now          func() time.Time
	queued       func() // called after messages were stored (wakes delivery)
	direct       lane   // nil: every message waits for the dispatcher's Claim
	force        bool   // resync: queue every state, even one equal to the last queued
}

// lane takes messages from the queue straight to delivery: the dispatcher.
type lane interface {
	// room says how many messages, and body bytes, it takes now.
	room() (msgs, bytes int)
	// take hands over messages stored claimed (outbox Tx.AddClaimedMessage).
	take(msgs []outbox.Message)
	// awaitRoom waits, up to limit, until the lane has room for a page or
	// takes nothing from the queue.
	awaitRoom(ctx context.Context, limit time.Duration)
}

// roomWait is how long the queue waits at most for room in the delivery lane
// before it stores a batch for Claim instead: a slow but healthy endpoint
// slows detection down to no less than a page per roomWait.
const roomWait = time.Second

// entry is one item entry of a body, canonical.
type entry struct {
	item    outbox.MessageItem
	content []byte
}

// write stores one detector batch. It returns how many item states were
// queued. When it returns an error nothing of the batch was stored and the
// detector's position did not move.
func (q *queue) write(ctx context.Context, b detector.Batch) (int, error) {
	type prepared struct {
		it   detector.Item
		hash string
	}
	prep := make([]prepared, 0, len(b.Items))
	var scratch []byte
	for _, it := range b.Items {
		p := prepared{it: it, hash: "deleted"}
		if !it.Deleted {
			if it.Content == nil {
				return 0, fmt.Errorf("serialise item %s: no content", it.Code)
			}
			p.hash, scratch = hashContent(it.Content, scratch)
		}
		prep = append(prep, p)
	}
	if q.direct != nil && len(b.Items) > 0 {
		q.direct.awaitRoom(ctx, roomWait)
	}
	now := q.now()
	var entries []entry
	var coalesced, stored int // stored: messages left for Claim
	var direct []outbox.Message
	err := q.ob.Update(ctx, func(tx *outbox.Tx) error {
		entries, direct, stored = entries[:0], direct[:0], 0
		codes := make([]string, len(prep))
		for i, p := range prep {
			codes[i] = p.it.Code
		}
		states, err := tx.ItemStates(ctx, codes)
		if err != nil {
			return err
		}
		var put []outbox.ItemState
		for _, p := range prep {
			st, had := states[p.it.Code]
			if p.it.Deleted {
				if !had || (st.Deleted && !q.force) {
					continue // never sent, or its delete is already queued
				}
			} else if !q.force && had && !st.Deleted && st.Hash == p.hash {
				continue // same content as the last state queued
			}
			version := max(st.Version+1, now.UnixMicro())
			e, err := makeEntry(p.it.Code, p.it.Deleted, version, p.it.Content)
			if err != nil {
				return err
			}
			entries = append(entries, e)
			put = append(put, outbox.ItemState{Code: p.it.Code, Version: version, Hash: p.hash, Deleted: p.it.Deleted})
		}
		if err := tx.PutItemStates(ctx, put); err != nil {
			return err
		}
		var pending map[string]bool // items a pending message holds
		if len(entries) > 0 {
			codes := make([]string, len(entries))
			for i, e := range entries {
				codes[i] = e.item.Code
			}
			if pending, err = tx.PendingItems(ctx, codes); err != nil {
				return err
			}
		}
		fresh, err := q.coalesce(ctx, tx, entries, pending, now)
		if err != nil {
			return err
		}
		coalesced = len(entries) - len(fresh)
		var roomMsgs, roomBytes int
		if q.direct != nil {
			roomMsgs, roomBytes = q.direct.room()
		}
		for _, group := range groupEntries(fresh, q.batchSize, q.maxBodyBytes) {
			m, err := q.message(group)
			if err != nil {
				return err
			}
			// Straight to delivery when it has room and no older message of
			// these items is pending, as Claim would hand it out at once.
			if roomMsgs > 0 && len(m.Body) <= roomBytes && nothingPending(group, pending) {
				cm, err := tx.AddClaimedMessage(ctx, m, now)
				if err != nil {
					return err
				}
				direct = append(direct, cm)
				roomMsgs, roomBytes = roomMsgs-1, roomBytes-len(m.Body)
				continue
			}
			if _, err := tx.AddMessage(ctx, m, now); err != nil {
				return err
			}
			stored++
		}
		if b.Source != "" {
			if err := tx.SetCursor(ctx, outbox.Cursor{Source: b.Source, Modified: b.Cursor.Modified, Name: b.Cursor.Name}); err != nil {
				return err
			}
		}
		if b.After != "" {
			if err := tx.SetMeta(ctx, metaSnapshotAfter, b.After); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("queue %d changed items: %w", len(b.Items), err)
	}
	level := slog.LevelInfo
	origin := b.Origin
	if origin == "" {
		origin = sourceName(b.Source)
	}
	if origin == "snapshot" {
		level = slog.LevelDebug // the initial snapshot logs progress instead of every item
	}
	for _, e := range entries {
		q.logger.LogAttrs(ctx, level, "detected change", slog.String("item", e.item.Code), slog.String("op", e.item.Op),
			slog.Int64("version", e.item.Version), slog.String("source", origin))
	}
	if coalesced > 0 {
		q.logger.Debug("coalesced: newer states took the place of older ones still waiting", "items", coalesced)
	}
	if len(direct) > 0 {
		q.direct.take(direct)
	}
	// Messages handed over (take) are claimed already: only those left in the
	// outbox, and rewritten ones, need the dispatcher to Claim.
	if (stored > 0 || coalesced > 0) && q.queued != nil {
		q.queued()
	}
	return len(entries), nil
}

// nothingPending reports whether no pending message holds an item of group.
func nothingPending(group []entry, pending map[string]bool) bool {
	for _, e := range group {
		if pending[e.item.Code] {
			return false
		}
	}
	return true
}

// coalesce puts each entry whose item's last state still waits in a message
// that was never sent (outbox Tx.Waiting; pending holds every item that a
// pending message holds, from Tx.PendingItems) in place of that state, and returns
// the entries left over for new messages. A waiting message gets a new
// delivery id with its new body: its old id may have reached the receiver in
// an attempt that was refused, and a delivery id never names two contents.
// It keeps its place in delivery order, so the other items in it keep
// theirs. When the new states would make the body larger than maxBodyBytes,
// the items leave the message instead and their new states go in new
// messages, which come later; a message left with no items is dropped.
func (q *queue) coalesce(ctx context.Context, tx *outbox.Tx, entries []entry, pending map[string]bool, now time.Time) ([]entry, error) {
	var codes []string // only an item a pending message holds can be waiting
	for _, e := range entries {
		if pending[e.item.Code] {
			codes = append(codes, e.item.Code)
		}
	}
	if len(codes) == 0 {
		return entries, nil
	}
	waiting, err := tx.Waiting(ctx, codes)
	if err != nil || len(waiting) == 0 {
		return entries, err
	}
	newer := map[int64]map[string]entry{} // by waiting message, by item
	msgs := map[int64]outbox.Message{}
	var ids []int64
	var fresh []entry
	for _, e := range entries {
		m, ok := waiting[e.item.Code]
		if !ok {
			fresh = append(fresh, e)
			continue
		}
		if newer[m.ID] == nil {
			newer[m.ID] = map[string]entry{}
			msgs[m.ID] = m
			ids = append(ids, m.ID)
		}
		newer[m.ID][e.item.Code] = e
	}
	slices.Sort(ids)
	for _, id := range ids {
		m := msgs[id]
		old, err := bodyEntries(m)
		if err != nil {
			return nil, err
		}
		replaced := make([]entry, len(old))
		var kept []entry // the items not replaced, for when the new states do not fit
		for i, e := range old {
			if n, ok := newer[id][e.item.Code]; ok {
				replaced[i] = n
			} else {
				replaced[i] = e
				kept = append(kept, e)
			}
		}
		group := replaced
		if len(replaced) > 1 && bodySize(replaced) > q.maxBodyBytes {
			group = kept
			for _, n := range newer[id] {
				fresh = append(fresh, n)
			}
		}
		if len(group) == 0 {
			if err := tx.DropMessage(ctx, id); err != nil {
				return nil, err
			}
			continue
		}
		nm, err := q.message(group)
		if err != nil {
			return nil, err
		}
		if err := tx.Rewrite(ctx, id, nm, now); err != nil {
			return nil, err
		}
	}
	// New messages keep the order the detector gave.
	order := make(map[string]int, len(entries))
	for i, e := range entries {
		order[e.item.Code] = i
	}
	slices.SortFunc(fresh, func(a, b entry) int { return order[a.item.Code] - order[b.item.Code] })
	return fresh, nil
}

// bodySize estimates the body bytes of a group as groupEntries counts them.
func bodySize(group []entry) int {
	n := bodyEnvelope
	for _, e := range group {
		n += len(e.content) + 1
	}
	return n
}

func sourceName(s string) string {
	if s == "" {
		return "snapshot"
	}
	return s
}

// hashContent returns the content hash of an item's content: the sha256 of its
// canonical JSON without `modified`, base64 without padding. The bytes are
// those of the straightforward formula (kept in queue_test.go),
// signer.Canonical(fields without modified), as outboxes store it. It encodes
// into scratch and returns it for reuse.
func hashContent(c *signer.Object, scratch []byte) (string, []byte) {
	scratch = c.AppendWithout(scratch[:0], "modified")
	sum := sha256.Sum256(scratch)
	var b64 [43]byte // base64.RawStdEncoding.EncodedLen(sha256.Size)
	base64.RawStdEncoding.Encode(b64[:], sum[:])
	return string(b64[:]), scratch
}

// makeEntry returns the canonical item entry of a body: the item's content
// with item_code, op and version set, as signer.Canonical(fields with them
// set) would write it. content is not changed; it is nil for a delete.
func makeEntry(code string, deleted bool, version int64, content *signer.Object) (entry, error) {
	op := "upsert"
	if deleted {
		op = "delete"
	}
	if content == nil {
		content = new(signer.Object)
	}
	var set signer.Object
	set.Grow(3, len(code)+64)
	// In JCS order, so that an error is the one that encoding the whole entry
	// would meet first (the other members were encoded without error already).
	err := set.Set("item_code", code)
	if err == nil {
		err = set.Set("op", op)
	}
	if err == nil {
		err = set.Set("version", version)
	}
	if err != nil {
		return entry{}, fmt.Errorf("serialise item %s: %w", code, err)
	}
	return entry{item: outbox.MessageItem{Code: code, Version: version, Op: op}, content: content.AppendMerged(nil, &set)}, nil
}

// groupEntries splits entries into bodies of at most batchSize entries and,
// where more than one entry is involved, at most maxBody bytes.
func groupEntries(entries []entry, batchSize, maxBody int) [][]entry {
	var groups [][]entry
	var cur []entry
	size := 0
	for _, e := range entries {
		if len(cur) > 0 && (len(cur) >= batchSize || size+len(e.content)+1+bodyEnvelope > maxBody) {
			groups = append(groups, cur)
			cur, size = nil, 0
		}
		cur = append(cur, e)
		size += len(e.content) + 1
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// bodyEnvelope is what a body holds besides its entries: delivery id, tenant
// and punctuation.
const bodyEnvelope = 128

// message builds the canonical body {"delivery_id":…,"items":[…],"tenant":…}.
// Keys are already in JCS order and every entry is canonical, so the
// concatenation is the canonical form of the whole.
func (q *queue) message(group []entry) (outbox.NewMessage, error) {
	id, err := newDeliveryID()
	if err != nil {
		return outbox.NewMessage{}, err
	}
	body, err := assembleBody(id, q.tenant, group)
	if err != nil {
		return outbox.NewMessage{}, err
	}
	items := make([]outbox.MessageItem, len(group))
	for i, e := range group {
		items[i] = e.item
	}
	return outbox.NewMessage{DeliveryID: id, Items: items, Body: body}, nil
}

func assembleBody(id, tenant string, group []entry) ([]byte, error) {
	idJSON, err := signer.Canonical(id)
	if err != nil {
		return nil, err
	}
	tenantJSON, err := signer.Canonical(tenant)
	if err != nil {
		return nil, err
	}
	n := len(idJSON) + len(tenantJSON) + 40
	for _, e := range group {
		n += len(e.content) + 1
	}
	body := make([]byte, 0, n)
	body = append(body, `{"delivery_id":`...)
	body = append(body, idJSON...)
	body = append(body, `,"items":[`...)
	for i, e := range group {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, e.content...)
	}
	body = append(body, `],"tenant":`...)
	body = append(body, tenantJSON...)
	body = append(body, '}')
	return body, nil
}

// newDeliveryID returns 128 random bits, hex: never reused for another message.
func newDeliveryID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make delivery id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

const (
	metaSnapshotAfter = "snapshot_after" // last item name the initial snapshot queued
	metaSnapshotDone  = "snapshot_done"  // "1" once the initial snapshot finished
)
