package site

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/signer"
)

// writer turns detected items into outbox messages: it drops states whose
// content equals the last state queued for the item, gives each new state a
// version, puts each new state in place of the item's older state where that
// still waits in a message that was never sent (coalescing), groups the rest
// into bodies of at most batchSize items and maxBodyBytes, and stores it all
// with the detector's position in one outbox transaction.
type writer struct {
	ob           *outbox.Outbox
	tenant       string
	batchSize    int
	maxBodyBytes int
	logger       *slog.Logger
	now          func() time.Time
	queued       func()        // called after messages were stored (wakes delivery)
	direct       lane          // nil: every message waits for the dispatcher's Claim
	force        bool          // resync: queue every state, even one equal to the last queued
	floor        *versionFloor // nil: versions follow the clock and the item's last state only
	quarantined  func(n int)   // told how many items are quarantined after a write changed that (metrics); may be nil
	// deselectable, when set, says whether deletes with reason "deselected"
	// may be queued now; nil: always. See detection.selectionSound.
	deselectable func(ctx context.Context) (ok bool, why string)
	// versionNow is the clock of versions; nil: now (ha.enabled: the
	// database server's, see ha.go).
	versionNow func() time.Time
	// rebuild builds items again from the database (detector Build). When
	// set, an item whose last state was queued at or after the item was
	// read (Item.ReadAt) by another writer on the same outbox (erpsync
	// resync) is built again before it is queued: the state it holds may be
	// older than the one queued meanwhile, and would reach the receiver
	// after it with a higher version. nil: states are queued as given.
	rebuild func(ctx context.Context, codes []string) ([]detector.Item, error)
	// held, when set, keeps the positions of batches of no items in memory
	// (see heldCursors); nil: every batch is stored as it comes.
	held *heldCursors
	// deleteUnsent queues the delete of an item this outbox never queued
	// (ha.enabled): another host may have sent the item. Without it such a
	// delete is dropped, as the receiver never got the item from us.
	deleteUnsent bool
}

// heldCursors are poll positions that moved over no item (detector
// advanceIdle moves a quiet table's cursor every few minutes). Storing each
// would be a commit of its own, and every commit makes the site's delivery,
// housekeeping and metrics look at the outbox again and open its
// connections: at hundreds of quiet sites polled by the safety net that was
// most of the idle work. They are stored with the next batch that has items
// to queue, and at most every cursorStoreEvery otherwise. Losing them (a
// crash) loses no change: the positions stored are older, and a poll from
// them reads again rows whose items were queued already, which the content
// hash drops.
type heldCursors struct {
	at     map[string]detector.Cursor // by source
	stored time.Time                  // when positions were last stored
}

// cursorStoreEvery is how long positions of batches of no items may stay
// in memory only.
const cursorStoreEvery = time.Hour

// hold keeps b's position in memory when b has no items and positions were
// stored less than cursorStoreEvery ago; it reports whether it did.
func (h *heldCursors) hold(b detector.Batch, now time.Time) bool {
	if h == nil || len(b.Items) > 0 || b.Source == "" || b.After != "" || now.Sub(h.stored) >= cursorStoreEvery {
		return false
	}
	if h.at == nil {
		h.at = map[string]detector.Cursor{}
	}
	h.at[b.Source] = b.Cursor
	return true
}

// save stores the held positions in tx, but for b's own source, which b
// stores.
func (h *heldCursors) save(ctx context.Context, tx *outbox.Tx, b detector.Batch) error {
	if h == nil {
		return nil
	}
	for src, c := range h.at {
		if src == b.Source {
			continue
		}
		if err := tx.SetCursor(ctx, outbox.Cursor{Source: src, Modified: c.Modified, Name: c.Name}); err != nil {
			return err
		}
	}
	return nil
}

// storeHeld stores the held positions, if any, in a transaction of their
// own (at shutdown: the next start polls from them).
func (w *writer) storeHeld(ctx context.Context) error {
	if w.held == nil || len(w.held.at) == 0 {
		return nil
	}
	err := w.ob.Update(ctx, func(tx *outbox.Tx) error { return w.held.save(ctx, tx, detector.Batch{}) })
	if err != nil {
		return fmt.Errorf("store the poll positions: %w", err)
	}
	w.held.saved(time.Now())
	return nil
}

// saved records that tx, which stored the held positions, committed.
func (h *heldCursors) saved(now time.Time) {
	if h != nil {
		clear(h.at)
		h.stored = now
	}
}

// staleAttempts is how many times a write builds again the items whose
// states another writer queued after they were read, before it queues what
// it has (that writer would have to queue those items again within each
// rebuild for it to come to that).
const staleAttempts = 3

// staleItems is the error of a write attempt that found items whose last
// state was queued after they were read: nothing was stored.
type staleItems struct{ codes []string }

func (e *staleItems) Error() string {
	return fmt.Sprintf("%d item(s) were queued by another writer after they were read", len(e.codes))
}

// lane takes messages from the writer straight to delivery: the
// client.Dispatcher.
type lane interface {
	// Room says how many messages, and body bytes, it takes now.
	Room() (msgs, bytes int)
	// Take hands over messages stored claimed (outbox Tx.AddClaimedMessage).
	Take(msgs []outbox.Message)
	// AwaitRoom waits, up to limit, until the lane has room for a page or
	// takes nothing from the writer.
	AwaitRoom(ctx context.Context, limit time.Duration)
}

// roomWait is how long the writer waits at most for room in the delivery lane
// before it stores a batch for Claim instead: a slow but healthy endpoint
// slows detection down to no less than a page per roomWait.
const roomWait = time.Second

// entry is one item entry of a body, canonical.
type entry struct {
	item    outbox.MessageItem
	content []byte
}

// prepared is a detected item with its content hash ("deleted" for a delete).
type prepared struct {
	it   detector.Item
	hash string
}

// written is what one write stored: the new states, how many took the place
// of waiting ones, the messages handed straight to delivery, and how many
// were left for Claim.
type written struct {
	entries    []entry
	coalesced  int
	direct     []outbox.Message
	stored     int
	quarantine quarantineChange
}

// write stores one detector batch. It returns how many item states were
// queued. When it returns an error nothing of the batch was stored and the
// detector's position did not move.
func (w *writer) write(ctx context.Context, b detector.Batch) (int, error) {
	return w.writeRead(ctx, b, time.Time{})
}

// writeRead is write for a batch whose items were read from the database no
// earlier than readAt (zero: unknown). A forced state (resync) is not queued
// for an item whose last state was queued at or after readAt (outbox
// ItemState.QueuedAt; both processes read one host's clock): that state was
// read later, so it is at least as new, and the forced one would arrive after
// it with a higher version.
func (w *writer) writeRead(ctx context.Context, b detector.Batch, readAt time.Time) (int, error) {
	for attempt := 1; ; attempt++ {
		checkStale := w.rebuild != nil && !w.force && attempt <= staleAttempts
		n, err := w.writeOnce(ctx, b, readAt, checkStale)
		var stale *staleItems
		if !errors.As(err, &stale) {
			return n, err
		}
		w.logger.Debug("building again items queued by another writer (erpsync resync) after they were read", "items", len(stale.codes))
		if b.Items, err = w.rebuilt(ctx, b.Items, stale.codes); err != nil {
			return 0, fmt.Errorf("queue %d changed items: %w", len(b.Items), err)
		}
	}
}

// rebuilt returns items with those named by codes built again. A delete
// whose item is still gone keeps what it said (a rename's new code).
func (w *writer) rebuilt(ctx context.Context, items []detector.Item, codes []string) ([]detector.Item, error) {
	// States are stamped to the millisecond: read from the next one, so that
	// the states queued until now are seen as queued before the read.
	time.Sleep(time.Until(time.Now().Truncate(time.Millisecond).Add(time.Millisecond)))
	fresh, err := w.rebuild(ctx, codes)
	if err != nil {
		return nil, err
	}
	byCode := make(map[string]detector.Item, len(fresh))
	for _, it := range fresh {
		byCode[it.Code] = it
	}
	out := slices.Clone(items)
	for i, it := range out {
		n, ok := byCode[it.Code]
		if !ok {
			continue
		}
		if it.Deleted && n.Deleted && n.Reason == "" {
			it.ReadAt = n.ReadAt
			out[i] = it
			continue
		}
		out[i] = n
	}
	return out, nil
}

// writeOnce is one attempt of writeRead. With checkStale it stores nothing
// and returns *staleItems when another writer queued a state of an item of b
// after the item was read.
func (w *writer) writeOnce(ctx context.Context, b detector.Batch, readAt time.Time, checkStale bool) (int, error) {
	if w.held.hold(b, time.Now()) {
		return 0, nil
	}
	prep, problems, err := prepare(b.Items)
	if err != nil {
		return 0, err
	}
	prep = w.holdDeselected(ctx, prep)
	if w.direct != nil && len(b.Items) > 0 {
		w.direct.AwaitRoom(ctx, roomWait)
	}
	now := w.now()
	var out written
	err = w.ob.Update(ctx, func(tx *outbox.Tx) error {
		out = written{}
		entries, err := w.newStates(ctx, tx, prep, w.versionTime(now), readAt, checkStale)
		if err != nil {
			return err
		}
		out.entries = entries
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
		fresh, err := w.coalesce(ctx, tx, entries, pending, now)
		if err != nil {
			return err
		}
		out.coalesced = len(entries) - len(fresh)
		if out.direct, out.stored, err = w.addMessages(ctx, tx, fresh, pending, now); err != nil {
			return err
		}
		built := make([]string, len(prep))
		for i, p := range prep {
			built[i] = p.it.Code
		}
		if out.quarantine, err = updateQuarantine(ctx, tx, problems, built, now); err != nil {
			return err
		}
		if err := w.held.save(ctx, tx, b); err != nil {
			return err
		}
		return savePosition(ctx, tx, b)
	})
	if stale := (*staleItems)(nil); errors.As(err, &stale) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("queue %d changed items: %w", len(b.Items), err)
	}
	w.held.saved(time.Now())
	w.logWritten(ctx, b, out)
	out.quarantine.log(ctx, w.logger)
	if w.quarantined != nil && (len(out.quarantine.added) > 0 || len(out.quarantine.released) > 0) {
		w.quarantined(out.quarantine.total)
	}
	if len(out.direct) > 0 {
		w.direct.Take(out.direct)
	}
	// Messages handed over (Take) are claimed already: only those left in the
	// outbox, and rewritten ones, need the dispatcher to Claim.
	if (out.stored > 0 || out.coalesced > 0) && w.queued != nil {
		w.queued()
	}
	return len(out.entries), nil
}

// holdDeselected leaves out the deselected deletes of prep while the
// selection cannot be trusted (deselectable): when erp.item_groups or
// erp.brands names a group or brand that no longer exists (renamed in
// ERPNext, say), every item of it looks deselected, and sending those deletes
// would empty the shop. They are held, with a WARN, until the settings are
// fixed; the reconciliation sweep that a reload starts then sends what is
// right.
func (w *writer) holdDeselected(ctx context.Context, prep []prepared) []prepared {
	if w.deselectable == nil || !slices.ContainsFunc(prep, isDeselected) {
		return prep
	}
	ok, why := w.deselectable(ctx)
	if ok {
		return prep
	}
	held := 0
	prep = slices.DeleteFunc(prep, func(p prepared) bool {
		if isDeselected(p) {
			held++
			return true
		}
		return false
	})
	w.logger.Warn("holding back items the settings deselect until the settings are fixed: "+why, "items", held)
	return prep
}

func isDeselected(p prepared) bool {
	return p.it.Deleted && p.it.Reason == detector.ReasonDeselected
}

// prepare hashes the content of each item.
// Items with a Problem are left out and returned apart, as are the codes
// of the items built (for the quarantine).
func prepare(items []detector.Item) (prep []prepared, problems []detector.Item, err error) {
	prep = make([]prepared, 0, len(items))
	var scratch []byte
	for _, it := range items {
		if it.Problem != nil {
			problems = append(problems, it)
			continue
		}
		p := prepared{it: it, hash: deleteHash(it)}
		if !it.Deleted {
			if it.Content == nil {
				return nil, nil, fmt.Errorf("serialise item %s: no content", it.Code)
			}
			p.hash, scratch = hashContent(it.Content, scratch)
		}
		prep = append(prep, p)
	}
	return prep, problems, nil
}

// newStates returns an entry with a new version for each item whose state
// differs from the last state queued (every item when force is set) and
// stores those states as the items' last. With checkStale it returns
// *staleItems, storing nothing, when the last state of an item was queued at
// or after the item was read (Item.ReadAt; both to the millisecond, so a
// state queued in the millisecond of the read counts too).
func (w *writer) newStates(ctx context.Context, tx *outbox.Tx, prep []prepared, now, readAt time.Time, checkStale bool) ([]entry, error) {
	codes := make([]string, len(prep))
	for i, p := range prep {
		codes[i] = p.it.Code
	}
	states, err := tx.ItemStates(ctx, codes)
	if err != nil {
		return nil, err
	}
	if checkStale {
		var stale []string
		for _, p := range prep {
			st, had := states[p.it.Code]
			if had && !p.it.ReadAt.IsZero() && st.QueuedAt.UnixMilli() >= p.it.ReadAt.UnixMilli() {
				stale = append(stale, p.it.Code)
			}
		}
		if len(stale) > 0 {
			return nil, &staleItems{codes: stale}
		}
	}
	var entries []entry
	var put []outbox.ItemState
	changesOn := map[string]string{} // items whose content stays but whose change date moved
	for _, p := range prep {
		st, had := states[p.it.Code]
		itemRead := readAt
		if !p.it.ReadAt.IsZero() {
			itemRead = p.it.ReadAt // known exactly: the page's read
		}
		if w.force && had && !itemRead.IsZero() && st.QueuedAt.UnixMilli() >= itemRead.UnixMilli() {
			continue // a state was queued (by the daemon) since this one was read: it is at least as new
		}
		if p.it.Deleted {
			if (!had && !w.deleteUnsent) || (st.Deleted && !w.force && (p.hash == deletedHash || p.hash == st.Hash)) {
				// Never sent (by any host), or its delete is queued already:
				// a delete that says more (renamed, merged) replaces a plain
				// one, never the other way round.
				continue
			}
		} else if !w.force && had && !st.Deleted && st.Hash == p.hash {
			if st.ChangesOn != p.it.ChangesOn {
				changesOn[p.it.Code] = p.it.ChangesOn
			}
			continue // same content as the last state queued
		}
		version := max(st.Version+1, now.UnixMicro())
		if w.floor != nil {
			version = max(version, w.floor.start+1)
		}
		content := p.it.Content
		if p.it.Deleted {
			if content, err = deleteContent(p.it); err != nil {
				return nil, err
			}
		}
		e, err := makeEntry(p.it.Code, p.it.Deleted, version, content)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
		put = append(put, outbox.ItemState{Code: p.it.Code, Version: version, Hash: p.hash, Deleted: p.it.Deleted, ChangesOn: p.it.ChangesOn})
	}
	if len(changesOn) > 0 {
		if err := tx.SetChangesOn(ctx, changesOn); err != nil {
			return nil, err
		}
	}
	if w.floor != nil && len(put) > 0 {
		// Once per batch, before the versions are stored: the floor covers
		// the highest of them.
		highest := put[0].Version
		for _, st := range put[1:] {
			highest = max(highest, st.Version)
		}
		if err := w.floor.cover(highest); err != nil {
			return nil, err
		}
	}
	return entries, tx.PutItemStates(ctx, put)
}

// addMessages stores fresh entries in new messages: straight to delivery
// (claimed, returned in direct) while it has room and no older message of
// their items is pending, as Claim would hand them out at once; the others
// wait for Claim (counted in stored).
func (w *writer) addMessages(ctx context.Context, tx *outbox.Tx, fresh []entry, pending map[string]bool, now time.Time) (direct []outbox.Message, stored int, err error) {
	var roomMsgs, roomBytes int
	if w.direct != nil {
		roomMsgs, roomBytes = w.direct.Room()
	}
	for _, group := range groupEntries(fresh, w.batchSize, w.maxBodyBytes) {
		m, err := w.message(group)
		if err != nil {
			return nil, 0, err
		}
		if roomMsgs > 0 && len(m.Body) <= roomBytes && nothingPending(group, pending) {
			cm, err := tx.AddClaimedMessage(ctx, m, now)
			if err != nil {
				return nil, 0, err
			}
			direct = append(direct, cm)
			roomMsgs, roomBytes = roomMsgs-1, roomBytes-len(m.Body)
			continue
		}
		if _, err := tx.AddMessage(ctx, m, now); err != nil {
			return nil, 0, err
		}
		stored++
	}
	return direct, stored, nil
}

// savePosition stores how far detection got with the batch: a poll's cursor,
// or the initial sync's last item.
func savePosition(ctx context.Context, tx *outbox.Tx, b detector.Batch) error {
	if b.Source != "" {
		if err := tx.SetCursor(ctx, outbox.Cursor{Source: b.Source, Modified: b.Cursor.Modified, Name: b.Cursor.Name}); err != nil {
			return err
		}
	}
	if b.After != "" {
		return tx.SetMeta(ctx, metaInitialSyncAfter, b.After)
	}
	return nil
}

// logWritten logs a line per new state (DEBUG during the initial sync, which
// logs its progress instead) and how many states were coalesced.
func (w *writer) logWritten(ctx context.Context, b detector.Batch, out written) {
	level := slog.LevelInfo
	origin := b.Origin
	if origin == "" {
		origin = sourceName(b.Source)
	}
	if origin == "snapshot" {
		level = slog.LevelDebug
	}
	for _, e := range out.entries {
		w.logger.LogAttrs(ctx, level, "detected change", slog.String("item", e.item.Code), slog.String("op", e.item.Op),
			slog.Int64("version", e.item.Version), slog.String("source", origin))
	}
	if out.coalesced > 0 {
		w.logger.Debug("coalesced: newer states took the place of older ones still waiting", "items", out.coalesced)
	}
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
func (w *writer) coalesce(ctx context.Context, tx *outbox.Tx, entries []entry, pending map[string]bool, now time.Time) ([]entry, error) {
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
		if len(replaced) > 1 && bodySize(replaced) > w.maxBodyBytes {
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
		nm, err := w.message(group)
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
	n := signer.BodyOverhead
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
// those of the straightforward formula (kept in writer_test.go),
// signer.Canonical(fields without modified), as outboxes store it. It encodes
// into scratch and returns it for reuse.
func hashContent(c *signer.Object, scratch []byte) (string, []byte) {
	scratch = c.AppendWithout(scratch[:0], "modified")
	sum := sha256.Sum256(scratch)
	var b64 [43]byte // base64.RawStdEncoding.EncodedLen(sha256.Size)
	base64.RawStdEncoding.Encode(b64[:], sum[:])
	return string(b64[:]), scratch
}

// deletedHash is the state hash of a plain delete: the item is gone.
const deletedHash = "deleted"

// deleteHash is the state hash of a deleted item: deletedHash for a plain
// delete, else one naming its reason and new code, so that a rename or merge
// found after a plain delete was queued is sent (and not the reverse).
func deleteHash(it detector.Item) string {
	switch {
	case !it.Deleted || it.Reason == "" || it.Reason == detector.ReasonDeleted:
		return deletedHash
	case it.Reason == detector.ReasonRenamed || it.Reason == detector.ReasonMerged:
		return deletedHash + ":" + it.Reason + ":" + it.RenamedTo
	default:
		return deletedHash + ":" + it.Reason
	}
}

// deleteContent is the members of a delete entry besides item_code, op and
// version (PROTOCOL.md, Delete): reason, and renamed_to (null unless renamed
// or merged).
func deleteContent(it detector.Item) (*signer.Object, error) {
	reason := it.Reason
	if reason == "" {
		reason = detector.ReasonDeleted
	}
	var renamedTo any
	if it.RenamedTo != "" && (reason == detector.ReasonRenamed || reason == detector.ReasonMerged) {
		renamedTo = it.RenamedTo
	}
	o := new(signer.Object)
	o.Grow(2, len(reason)+len(it.RenamedTo)+32)
	if err := o.Set("reason", reason); err != nil {
		return nil, fmt.Errorf("serialise delete of %s: %w", it.Code, err)
	}
	if err := o.Set("renamed_to", renamedTo); err != nil {
		return nil, fmt.Errorf("serialise delete of %s: %w", it.Code, err)
	}
	return o, nil
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
		if len(cur) > 0 && (len(cur) >= batchSize || size+len(e.content)+1+signer.BodyOverhead > maxBody) {
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

// message builds a new message of group: a new delivery id and the
// canonical body (signer.Body).
func (w *writer) message(group []entry) (outbox.NewMessage, error) {
	id, err := signer.NewDeliveryID()
	if err != nil {
		return outbox.NewMessage{}, err
	}
	contents := make([][]byte, len(group))
	items := make([]outbox.MessageItem, len(group))
	for i, e := range group {
		contents[i], items[i] = e.content, e.item
	}
	body, err := signer.Body(id, w.tenant, contents)
	if err != nil {
		return outbox.NewMessage{}, err
	}
	return outbox.NewMessage{DeliveryID: id, Items: items, Body: body}, nil
}

// bodyEntries returns the item entries of a stored message, canonical bytes
// as they are in its body, with their items.
func bodyEntries(m outbox.Message) ([]entry, error) {
	raw, err := signer.BodyItems(m.Body)
	if err != nil || len(raw) != len(m.Items) {
		return nil, fmt.Errorf("message %s: body does not match its items", m.DeliveryID)
	}
	out := make([]entry, len(m.Items))
	for i, it := range m.Items {
		out[i] = entry{item: it, content: raw[i]}
	}
	return out, nil
}

// The outbox's meta keys of the initial sync.
const (
	metaInitialSyncAfter = "snapshot_after" // last item name the initial sync queued
	metaInitialSyncDone  = "snapshot_done"  // "1" once the initial sync finished
)

// InitialSync reads how far the initial sync of the site whose outbox is ob
// got: whether it is done, and the last item it queued.
func InitialSync(ctx context.Context, ob *outbox.Outbox) (done bool, after string, err error) {
	d, _, err := ob.Meta(ctx, metaInitialSyncDone)
	if err != nil {
		return false, "", err
	}
	after, _, err = ob.Meta(ctx, metaInitialSyncAfter)
	return d == "1", after, err
}
