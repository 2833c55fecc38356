package outbox

import (
	"context"
	"fmt"
)

// applicationID marks an SQLite file as an erpsync outbox ("erps").
const applicationID = 0x65727073

// SchemaVersion is the schema version (PRAGMA user_version) this package
// writes and reads.
const SchemaVersion = 5

// migrations returns the steps that build the schema: step i brings it from
// user_version i to i+1. Append new steps (and raise SchemaVersion); never
// edit a step that has shipped.
func migrations() []string {
	return []string{
		// 0 -> 1: the first schema.
		`
CREATE TABLE messages (
	id              INTEGER PRIMARY KEY AUTOINCREMENT, -- delivery order; never reused
	delivery_id     TEXT    NOT NULL UNIQUE,
	body            BLOB    NOT NULL,
	state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_status     INTEGER,          -- HTTP status of the last attempt; NULL when none
	last_error      TEXT,
	next_attempt_at INTEGER,          -- unix ms; set exactly while pending
	created_at      INTEGER NOT NULL, -- unix ms
	updated_at      INTEGER NOT NULL, -- unix ms
	delivered_at    INTEGER,          -- unix ms
	CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL))
);
-- NextAttempt: earliest pending attempt.
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE state = 'pending';
-- Due (pending in id order, next_attempt_at read from the index), List, Stats.
CREATE INDEX messages_state ON messages (state, id, next_attempt_at);
-- PruneDelivered, Stats.LastDelivered.
CREATE INDEX messages_delivered ON messages (delivered_at) WHERE state = 'delivered';

CREATE TABLE message_items (
	message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
	seq        INTEGER NOT NULL, -- position in the message
	item_code  TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	op         TEXT    NOT NULL,
	pending    INTEGER NOT NULL DEFAULT 1, -- copy of (messages.state = 'pending'), kept by a trigger
	PRIMARY KEY (message_id, seq)
) WITHOUT ROWID;
-- Which messages hold an item; an item appears at most once per message.
CREATE UNIQUE INDEX message_items_item ON message_items (item_code, message_id);
-- Per-item order in Due: the oldest pending message holding an item.
CREATE INDEX message_items_pending ON message_items (item_code, message_id) WHERE pending = 1;

CREATE TRIGGER messages_state_pending AFTER UPDATE OF state ON messages
WHEN OLD.state IS NOT NEW.state
BEGIN
	UPDATE message_items SET pending = (NEW.state = 'pending') WHERE message_id = NEW.id;
END;

CREATE TABLE items (
	item_code         TEXT    PRIMARY KEY,
	version           INTEGER NOT NULL, -- last version queued
	hash              TEXT    NOT NULL, -- content hash of the last state queued
	deleted           INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
	queued_at         INTEGER NOT NULL, -- unix ms
	delivered_version INTEGER,          -- version (and hash) of the last queued state,
	delivered_hash    TEXT              -- once a message carrying it was delivered
) WITHOUT ROWID;

CREATE TABLE cursors (
	source     TEXT    PRIMARY KEY,
	modified   TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	updated_at INTEGER NOT NULL -- unix ms
) WITHOUT ROWID;

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
`,
		// 1 -> 2: exposure, whether an attempt at a message may have reached
		// the receiver: 0 never, 1 an attempt is under way (or was, when the
		// process died during it), 2 possibly. A message with exposure 0 may
		// be rewritten under a new delivery id (coalescing); the others keep
		// their body. Messages attempted before this column existed count as
		// possibly received.
		`
ALTER TABLE messages ADD COLUMN exposure INTEGER NOT NULL DEFAULT 0 CHECK (exposure IN (0, 1, 2));
UPDATE messages SET exposure = 2 WHERE attempts > 0;
`,
		// 2 -> 3: bodies in a table of their own. SQLite rewrites a whole
		// row when one of its columns changes size, so with the body in
		// messages every change of state (delivered, dead) wrote the body
		// again, a batch of 100 items some 50 KB, to the log and then to
		// the file. Bodies over 2 KiB now go there (messages.body then
		// empty); smaller ones, and those stored before, stay in the row, so
		// that the upgrade copies nothing however large the outbox
		// (message_bodies first, then messages.body, when reading).
		`
CREATE TABLE message_bodies (
	message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
	body       BLOB    NOT NULL
);
`,
		// 3 -> 4: a dead state no longer passes for the item's last state
		// sent (MarkDead): for the dead letters stored before, the items
		// whose last queued state is the dead one forget its content, so
		// that their next change, a sweep or a resync sends them again.
		`
UPDATE items SET hash = '', deleted = 0
FROM message_items AS mi JOIN messages AS m ON m.id = mi.message_id
WHERE m.state = 'dead' AND items.item_code = mi.item_code AND items.version = mi.version;
`,
		// 4 -> 5: the date on which an item's effective price or sale state
		// changes with no row changing (ItemState.ChangesOn), so that the
		// items due when the site's date changes are an index range.
		`
ALTER TABLE items ADD COLUMN changes_on TEXT;
CREATE INDEX items_changes_on ON items (changes_on) WHERE changes_on IS NOT NULL;
`,
	}
}

// schemaInfo reads the file's application id and schema version.
func (o *Outbox) schemaInfo(ctx context.Context, q queryer) (appID, version int, err error) {
	if err := q.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return 0, 0, err
	}
	if err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, 0, err
	}
	return appID, version, nil
}

// checkSchema reports whether the file needs migrating, and fails for files
// that are not outboxes or are newer than this package.
func (o *Outbox) checkSchema(ctx context.Context, q queryer) (migrate bool, err error) {
	appID, version, err := o.schemaInfo(ctx, q)
	if err != nil {
		return false, o.errorf(err, "read schema version")
	}
	switch {
	case version == 0:
		// New file, or an SQLite file that is not ours.
		var n int
		if err := q.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
			return false, o.errorf(err, "read schema")
		}
		if n > 0 || appID != 0 {
			return false, fmt.Errorf("outbox %s: the file is an SQLite database but not an erpsync outbox: set outbox.path to a new file", o.path)
		}
		return true, nil
	case appID != applicationID:
		return false, fmt.Errorf("outbox %s: the file is an SQLite database but not an erpsync outbox (application_id %#x): set outbox.path to a new file", o.path, appID)
	case version > SchemaVersion:
		return false, fmt.Errorf("outbox %s: schema version %d is newer than this erpsync understands (%d): upgrade erpsync", o.path, version, SchemaVersion)
	default:
		return version < SchemaVersion, nil
	}
}

// migrate creates or upgrades the schema in one write transaction. It writes
// nothing when the schema is current.
func (o *Outbox) migrate(ctx context.Context) error {
	need, err := o.checkSchema(ctx, o.w)
	if err != nil || !need {
		return err
	}
	tx, err := o.w.BeginTx(ctx, nil)
	if err != nil {
		return o.errorf(err, "migrate schema: begin")
	}
	defer tx.Rollback()
	// Check again under the write lock: another process may have migrated.
	if need, err = o.checkSchema(ctx, tx); err != nil || !need {
		return err
	}
	_, version, err := o.schemaInfo(ctx, tx)
	if err != nil {
		return o.errorf(err, "read schema version")
	}
	steps := migrations()
	if len(steps) != SchemaVersion {
		return fmt.Errorf("outbox %s: internal error: %d migration steps for schema version %d", o.path, len(steps), SchemaVersion)
	}
	for v := version; v < SchemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, steps[v]); err != nil {
			return o.errorf(err, "migrate schema from version %d to %d", v, v+1)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d; PRAGMA user_version = %d", applicationID, SchemaVersion)); err != nil {
		return o.errorf(err, "set schema version")
	}
	if err := tx.Commit(); err != nil {
		return o.errorf(err, "migrate schema: commit")
	}
	return nil
}
