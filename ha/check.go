package ha

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// errNoSuchThread is MariaDB's "Unknown thread id" (ER_NO_SUCH_THREAD).
const errNoSuchThread = 1094

func isUnknownThread(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == errNoSuchThread
}

// Holder is who holds a lock, as Check finds it.
type Holder struct {
	ConnID  int64  // 0: the lock is free
	Visible bool   // the holder is in this user's process list
	Host    string // its host (no port), when visible
}

// Report is what Check found.
type Report struct {
	// Holder holds the site's lock now (ConnID 0: nobody).
	Holder Holder
	// Galera is true when the server is a Galera node (wsrep_on): named
	// locks are then local to the node.
	Galera bool
}

// Check makes sure the named lock works for this user on the server db
// connects to, without touching the site's lock: it takes and releases a
// test lock (name + ":check", shortened to fit), sees its own connection in
// the process list (so that, as a standby, it could see a holder), and says
// who holds the site's lock name, and whether the server is a Galera node.
func Check(ctx context.Context, db *sql.DB, name string) (Report, error) {
	var rep Report
	conn, err := db.Conn(ctx)
	if err != nil {
		return rep, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	test := name + ":check"
	if len(test) > maxLockName {
		test = test[len(test)-maxLockName:]
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", test).Scan(&got); err != nil {
		return rep, fmt.Errorf("GET_LOCK: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		return rep, fmt.Errorf("GET_LOCK(%q, 0) answered %v: another erpsync check holds it, or named locks do not work here", test, got)
	}
	var mine sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", test).Scan(&mine); err != nil {
		return rep, fmt.Errorf("IS_USED_LOCK: %w", err)
	}
	var released sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", test).Scan(&released); err != nil {
		return rep, fmt.Errorf("RELEASE_LOCK: %w", err)
	}
	if mine.Int64 != 1 || released.Int64 != 1 {
		return rep, fmt.Errorf("lock %q was taken but IS_USED_LOCK/RELEASE_LOCK do not agree (%v, %v)", test, mine, released)
	}
	if _, ok, err := process(ctx, conn, 0); err != nil {
		return rep, fmt.Errorf("read information_schema.PROCESSLIST: %w", err)
	} else if !ok {
		return rep, errors.New("this connection is not in information_schema.PROCESSLIST: a standby could not see the active one's connection")
	}
	var holder sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", name).Scan(&holder); err != nil {
		return rep, fmt.Errorf("IS_USED_LOCK: %w", err)
	}
	if holder.Valid && holder.Int64 != 0 {
		rep.Holder.ConnID = holder.Int64
		p, ok, err := process(ctx, conn, holder.Int64)
		if err != nil {
			return rep, fmt.Errorf("read information_schema.PROCESSLIST: %w", err)
		}
		rep.Holder.Visible, rep.Holder.Host = ok, p.host
	}
	var wsrep string
	err = conn.QueryRowContext(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = 'WSREP_ON'").Scan(&wsrep)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return rep, fmt.Errorf("read wsrep_on: %w", err)
	}
	rep.Galera = strings.EqualFold(wsrep, "ON")
	return rep, nil
}
