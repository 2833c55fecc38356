// Package outbox is erpsync's durable message store: the messages waiting to be
// delivered, the detector's cursors and the last queued state of every item,
// all in one SQLite file.
//
// The detector stores its messages, item states and advanced cursors in one
// write transaction (Update), so a crash at any point neither skips a change
// (cursor ahead of the messages) nor stores a message twice (messages without
// their cursor). The delivery loop Claims what is due, and reports each
// attempt back with MarkDelivered, MarkRetry, MarkRefused, MarkDead, Split or
// EndAttempt.
//
// While a message waits and no attempt at it may have reached the receiver,
// a newer state of one of its items may take the place of the older one
// (Tx.Waiting, Tx.Rewrite): the message then gets a new delivery id, since a
// delivery id never names two contents. A message that may have reached the
// receiver keeps its delivery id and body until it is delivered.
//
// The outbox stores bodies as opaque bytes; it knows neither HTTP nor JSON.
//
// The file uses WAL mode with synchronous=NORMAL: a committed transaction
// survives kill -9 and any crash of the process; a power loss or an operating
// system crash can undo the last commits, whole transactions at a time, never
// part of one. Commits do not wait for an fsync (on a busy disk one takes
// hundreds of milliseconds). This suits a writer that stores the source's
// position in the same transaction as what it read from there (erpsync's
// cursors and messages): an undone commit takes its cursor back with it, and
// the changes are read again. All writes run in BEGIN IMMEDIATE
// transactions, on one connection per Outbox for Update and one for delivery
// bookkeeping, so writers in one process queue in Go, and writers in
// different processes wait for each other up to the busy timeout (10 s).
//
// # Several writers
//
// One daemon delivers from an outbox (LockForDaemon); other processes
// (`erpsync resync`, `erpsync outbox retry` and `purge`, `erpsync status`)
// open the same file, each with its own Outbox, and may write while the
// daemon delivers. Every read that a write depends on is made again inside
// that write's transaction, so what holds within one process holds between
// processes:
//
//   - Claim hands out a message only as the file holds it when its attempt
//     begins (same delivery id, so the same body and items; still pending;
//     no older pending message of one of its items), and marks the attempt
//     in the same transaction. From then on the message is exposed in the
//     file, and Tx.Rewrite and Tx.DropMessage, in any process, refuse it
//     until an outcome that rules out receipt (MarkRefused, EndAttempt)
//     is recorded.
//   - Tx.Waiting, Tx.Rewrite and Tx.DropMessage read and write in the one
//     Update transaction; they leave out messages claimed in this process
//     and messages exposed in the file.
//   - MarkDelivered and MarkDeliveredBatch record as delivered the item
//     versions the message carries in the file; by the rule above those are
//     the ones sent, since the message cannot be rewritten between its Claim
//     and its outcome. With Accepted.DeliveryID, MarkDeliveredBatch checks it
//     too: a message that no longer holds the delivery id that was sent is
//     skipped, not marked.
//   - MarkDead, MarkRetry, MarkRefused, Reschedule, EndAttempt, Expedite,
//     PurgeDead and PruneDelivered are single statements guarded by the
//     message's state in the file.
//   - Split and RetryCurrent read which items are superseded and write the
//     parts in one transaction; Retry and RetryCurrent never make pending a
//     dead state of an item that has had a newer state queued since.
//
// So, between any of these, in any processes: no message is sent with a
// body other than the one stored under its delivery id, no item state is
// recorded delivered that was not sent, and no older state of an item is
// handed out after a newer one.
package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrNotFound is returned, wrapped, when a message does not exist.
var ErrNotFound = errors.New("outbox: message not found")

// beginWrite waits until no other write transaction of this process is under
// way, or ctx ends; endWrite lets the next one in.
func (o *Outbox) beginWrite(ctx context.Context) error {
	select {
	case o.writing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (o *Outbox) endWrite() { <-o.writing }

// ErrWrongState is returned, wrapped, when a message exists but its state does
// not allow the change asked for (for example MarkDelivered on a dead
// message, or Retry on a delivered one).
var ErrWrongState = errors.New("outbox: message is not in a state that allows this")

// State is the delivery state of a message.
type State string

// Message states. A message starts Pending, and leaves it once, for Delivered
// or Dead; Retry brings a Dead message back to Pending.
const (
	Pending   State = "pending"
	Delivered State = "delivered"
	Dead      State = "dead"
)

func (s State) valid() bool { return s == Pending || s == Delivered || s == Dead }

// Cursor is a detector's position in one change source. The outbox stores the
// strings as given; their meaning belongs to the detector.
type Cursor struct {
	Source   string
	Modified string
	Name     string
}

// ItemState is the last state of an item that was queued for delivery.
//
// When that state went dead (MarkDead), the receiver may not have it: Hash
// is then empty and Deleted false, so that no content passes for it and the
// item counts as one the receiver may hold (LiveItems). Version stays.
type ItemState struct {
	Code    string
	Version int64  // version of the last queued state
	Hash    string // content hash of the last queued state; empty when it went dead
	Deleted bool   // the last queued op was a delete, and it did not go dead
	// QueuedAt is when the last state was queued, by the clock of the
	// process that queued it (milliseconds); PutItemState sets it to now.
	QueuedAt time.Time
	// ChangesOn is the next date (YYYY-MM-DD, the site's) on which what the
	// item sells changes with no row of it changing (a price's validity
	// window, its end of life); "" for none. DueItems finds items by it.
	ChangesOn string

	// DeliveredVersion and DeliveredHash are the version and hash of the
	// last queued state once a message carrying exactly that version has been
	// delivered (zero and "" before that). MarkDelivered sets them;
	// PutItemState ignores them.
	DeliveredVersion int64
	DeliveredHash    string
}

// MessageItem names one item state carried in a message body.
type MessageItem struct {
	Code    string
	Version int64
	Op      string // "upsert" or "delete"; stored as given
}

// NewMessage is a message to store. DeliveryID must be unique across the
// outbox's whole history; Body is stored and later handed out byte for byte.
type NewMessage struct {
	DeliveryID string
	Items      []MessageItem
	Body       []byte
}

// Message is a stored message. Times are UTC with millisecond precision, and
// zero when unset (NextAttemptAt is unset once the message leaves Pending).
// LastStatus is 0 when the last attempt got no HTTP response.
type Message struct {
	ID            int64 // delivery order: a newer message has a larger ID
	DeliveryID    string
	Items         []MessageItem
	Body          []byte // nil from List and ItemMessages
	State         State
	Attempts      int
	LastStatus    int
	LastError     string
	NextAttemptAt time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
	DeliveredAt   time.Time
	// Exposed is true once an attempt at the message may have reached the
	// receiver: an attempt is under way, ended without an answer (timeout,
	// connection lost), ended with an answer that does not rule out
	// acceptance, or was cut short by a crash. An exposed message keeps its
	// delivery id and body to the end; one that is not may be rewritten
	// under a new delivery id (Tx.Rewrite).
	Exposed bool
}

// Outbox is an open outbox file. It is safe for concurrent use by multiple
// goroutines, and several processes may open the same file.
type Outbox struct {
	path  string
	w     *sql.DB // one connection, BEGIN IMMEDIATE: messages and cursors (Update)
	wm    *sql.DB // one connection, BEGIN IMMEDIATE: delivery bookkeeping
	r     *sql.DB // read-only connections (query_only), BEGIN DEFERRED for snapshots
	ck    *checkpointer
	stmts stmts
	// dueProbeLimit is dueProbe; tests lower it to try both plans of Due.
	dueProbeLimit int
	// dueMany: the last Due walked pending messages and filled its limit.
	dueMany atomic.Bool
	// afterDue, when set (tests), runs in Claim between its read of what
	// is due and the transaction that begins the attempts.
	afterDue func()

	// claimMu guards claimed. Claim holds it while it reads what is due, and
	// a write transaction that rewrites waiting messages (Tx.Waiting) holds
	// it until it ends, so a message is never both handed out and rewritten.
	claimMu sync.Mutex
	claimed map[int64]bool // messages in flight in this process

	// writing is held by each write transaction of this process, on either
	// writing connection, from its BEGIN to its end. SQLite lets one writer
	// in at a time and makes the others poll with sleeps of 1 to 100 ms
	// (the busy timeout); writers in one process queue here instead and go
	// on as soon as the previous one ended. Writers in other processes
	// still meet the busy timeout.
	writing chan struct{}

	lockMu sync.Mutex
	lock   *os.File // the daemon lock (LockForDaemon); nil when not held
}

const (
	busyTimeout  = 10 * time.Second
	maxErrorText = 8 << 10 // bytes of last_error kept per message
)

// Open opens the outbox at path, creating the file (mode 0600) and its schema
// when missing and migrating an older schema. The directory must exist: Open
// does not create it. Open fails when the file is not an erpsync outbox, was
// written by a newer erpsync (a schema version it does not know), or cannot
// use WAL mode.
//
// Opening a file that is already current does not write to it, so a reader
// such as `erpsync status` can open the outbox while the daemon is writing.
// An existing file keeps its permissions.
func Open(ctx context.Context, path string) (*Outbox, error) {
	return open(ctx, path, idleClose)
}

// open is Open with the time after which an unused connection closes.
func open(ctx context.Context, path string, idle time.Duration) (*Outbox, error) {
	if path == "" {
		return nil, errors.New("outbox: no path given: set outbox.path")
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("outbox %s: directory %s does not exist: create it or set outbox.path", path, dir)
	case err != nil:
		return nil, fmt.Errorf("outbox %s: %w", path, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("outbox %s: %s is not a directory: set outbox.path to a file in a directory", path, dir)
	}
	// SQLite creates the file 0644 (less umask); create it first so that it is
	// 0600 from the start. SQLite gives the -wal and -shm files the same mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("outbox %s: create file: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("outbox %s: create file: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("outbox %s: %w", path, err)
	}
	uri := "file:" + escapeURIPath(filepath.ToSlash(abs)) + "?" +
		"_pragma=busy_timeout(" + fmt.Sprint(busyTimeout.Milliseconds()) + ")" +
		"&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(NORMAL)"

	o := &Outbox{path: path, dueProbeLimit: dueProbe, claimed: map[int64]bool{}, writing: make(chan struct{}, 1)}
	// The writing connections leave checkpoints to the checkpointer; the
	// others keep a small page cache each.
	const noCheckpoint, smallCache = "&_pragma=wal_autocheckpoint(0)", "&_pragma=cache_size(-512)"
	o.w, err = sql.Open("sqlite", uri+"&_pragma=journal_mode(WAL)&_pragma=journal_size_limit(67108864)&_txlock=immediate"+noCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("outbox %s: open: %w", path, err)
	}
	o.w.SetMaxOpenConns(1)
	o.w.SetMaxIdleConns(1)
	o.w.SetConnMaxLifetime(0)
	o.w.SetConnMaxIdleTime(idle)

	if err := o.prepare(ctx); err != nil {
		o.w.Close()
		return nil, err
	}

	// Delivery bookkeeping (claims, outcomes, retries) has a connection of
	// its own, so that its many small transactions do not queue behind the
	// prepared statements of Update. A bookkeeping commit undone by a power
	// loss at worst sends a message again under the same delivery id.
	o.wm, err = sql.Open("sqlite", uri+"&_txlock=immediate"+noCheckpoint+smallCache)
	if err != nil {
		o.w.Close()
		return nil, fmt.Errorf("outbox %s: open: %w", path, err)
	}
	o.wm.SetMaxOpenConns(1)
	o.wm.SetMaxIdleConns(1)
	o.wm.SetConnMaxLifetime(0)
	o.wm.SetConnMaxIdleTime(idle)

	o.r, err = sql.Open("sqlite", uri+"&_pragma=query_only(1)"+smallCache)
	if err != nil {
		o.w.Close()
		return nil, fmt.Errorf("outbox %s: open: %w", path, err)
	}
	// Up to four reads at once; a reading connection beyond the first
	// closes when its read ends: reads overlap seldom but at a start, and
	// each connection holds its own copy of the schema and statements.
	o.r.SetMaxOpenConns(4)
	o.r.SetMaxIdleConns(1)
	o.r.SetConnMaxIdleTime(idle)
	if err := o.r.PingContext(ctx); err != nil {
		o.Close()
		return nil, fmt.Errorf("outbox %s: open for reading: %w", path, err)
	}
	if err := o.prepareStmts(ctx); err != nil {
		o.Close()
		return nil, fmt.Errorf("outbox %s: prepare statements: %w", path, err)
	}
	ck, err := sql.Open("sqlite", uri+smallCache)
	if err != nil {
		o.Close()
		return nil, fmt.Errorf("outbox %s: open: %w", path, err)
	}
	ck.SetMaxOpenConns(1)
	ck.SetConnMaxIdleTime(idle)
	o.ck = startCheckpointer(ck)
	o.LetConnectionsGo()
	return o, nil
}

// LetConnectionsGo closes the connections not in use now, rather than
// after idleClose unused; they open again when needed. Open calls it once it
// has prepared every statement, which checks them all against the schema:
// the programs so compiled, on the writing and reading connections, are most
// of an outbox's memory. A site calls it once it has started: the reads of
// its start are done, and at a start of hundreds of sites their connections
// would otherwise add up. A statement is prepared again on the connection
// that runs it, the first time it does.
func (o *Outbox) LetConnectionsGo() {
	for _, db := range []*sql.DB{o.w, o.wm, o.r, o.ck.db} {
		db.SetMaxIdleConns(0) // closes the idle ones
		db.SetMaxIdleConns(1)
	}
}

// idleClose is how long an outbox connection may stay unused before it is
// closed. Each open connection holds SQLite's memory: its page cache, the
// parsed schema, its prepared statements and the C stack the driver keeps
// for it, about 1 MB for the writer once it has run Update. An idle site,
// of hundreds in one process, needs none of it; opening a connection again
// costs about a millisecond. When the last connection closes, SQLite
// checkpoints the write-ahead log (the checkpointer has done that already)
// and removes it; Stamp does not count that as a commit.
const idleClose = 30 * time.Second

// escapeURIPath escapes the characters that end or change the path part of
// an SQLite URI filename.
func escapeURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// prepare checks the journal mode and creates or migrates the schema.
func (o *Outbox) prepare(ctx context.Context) error {
	var mode string
	if err := o.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return o.errorf(err, "open")
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("outbox %s: open: journal mode is %q, not WAL (is the file on a network file system?)", o.path, mode)
	}
	return o.migrate(ctx)
}

// Close closes the outbox. Everything committed before stays stored.
func (o *Outbox) Close() error {
	errs := []error{o.stmts.close()}
	if o.ck != nil {
		errs = append(errs, o.ck.close())
	}
	if o.r != nil {
		errs = append(errs, o.r.Close())
	}
	if o.wm != nil {
		errs = append(errs, o.wm.Close())
	}
	if o.w != nil {
		errs = append(errs, o.w.Close())
	}
	// Last: no other daemon starts on this file before it is closed.
	errs = append(errs, o.unlock())
	if err := errors.Join(errs...); err != nil {
		return o.errorf(err, "close")
	}
	return nil
}

// OpenConnections returns how many of the outbox's connections are open:
// writing (the writer's, delivery bookkeeping's and the checkpointer's) and
// reading. Each holds SQLite's memory; an outbox unused for a while holds
// none.
func (o *Outbox) OpenConnections() (writing, reading int) {
	return o.w.Stats().OpenConnections + o.wm.Stats().OpenConnections + o.ck.db.Stats().OpenConnections,
		o.r.Stats().OpenConnections
}

// Path returns the path the outbox was opened with.
func (o *Outbox) Path() string { return o.path }

// Stamp reads a mark of the outbox's files, the database and its
// write-ahead log (their sizes and modification times), for
// Mark.CommittedSince: whether any process committed to the outbox since an
// earlier mark costs two stat calls to learn instead of a query (a look
// whether another process, erpsync resync or outbox retry, queued
// something).
func (o *Outbox) Stamp() Mark {
	return Mark{db: markFile(o.path), wal: markFile(o.path + "-wal"), taken: true}
}

// Mark is what Stamp read of the outbox's files; the zero Mark was never
// read.
type Mark struct {
	db, wal fileMark
	taken   bool
}

// fileMark is a file's size and modification time; zero when the file is
// missing or empty.
type fileMark struct{ size, mtime int64 }

func markFile(name string) fileMark {
	fi, err := os.Stat(name)
	if err != nil || fi.Size() == 0 {
		return fileMark{}
	}
	return fileMark{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

// CommittedSince reports whether a commit may have reached the outbox
// between prev and m (m read later): false only when none did. A commit
// grows or rewrites the log, and a checkpoint copies it into the database
// file; either changes a mark. SQLite creates an empty log when a
// connection opens and removes the log when the last one closes, after a
// checkpoint: a log gone with the database file unchanged had nothing left
// to copy, and neither is a commit. A checkpoint that did copy something
// counts, though the commit it copied may have been seen already.
func (m Mark) CommittedSince(prev Mark) bool {
	switch {
	case !m.taken || !prev.taken:
		return true
	case m == prev:
		return false
	default:
		return m.db != prev.db || m.wal != fileMark{}
	}
}

// IsBusy reports whether err is SQLite's "database is locked" (SQLITE_BUSY):
// another process held the outbox's write lock for longer than the busy
// timeout. Nothing of the failed write was stored; it may be tried again.
func IsBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

func (o *Outbox) errorf(err error, format string, args ...any) error {
	return fmt.Errorf("outbox %s: %s: %w", o.path, fmt.Sprintf(format, args...), err)
}

// ms converts t to unix milliseconds; the zero time becomes NULL.
func ms(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromMS converts unix milliseconds to a UTC time; NULL becomes the zero time.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// truncateText cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-4 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i]
}
