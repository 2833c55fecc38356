package site

import (
	"sync"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/ha"
)

// lockConn is the lock connection of one database server (ha.Conn), shared
// by its sites with ha.enabled; it gives its pool back when the last of them
// releases it.
type lockConn struct {
	conn        *ha.Conn
	users       int
	releasePool func()
}

// LockConn returns the lock connection (ha.Conn) that the sites with
// ha.enabled on dsn's database server (its address and user) share: one
// connection of the server's shared pool (Pool) holds the named locks of all
// of them, so that however many sites there are, the locks add one
// connection to the server. release gives it back; the last release gives
// the pool back. ok is false when dsn names no database: the site opens a
// lock connection of its own.
func (s *Servers) LockConn(dsn string) (conn *ha.Conn, release func(), ok bool, err error) {
	key, schema, ok := detector.ServerKey(dsn)
	if !ok || schema == "" {
		return nil, nil, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lc := s.locks[key]
	if lc == nil {
		db, releasePool, err := s.acquire(key, dsn)
		if err != nil {
			return nil, nil, false, err
		}
		c, err := ha.NewConn(db, ha.ConnOptions{Logger: s.logger})
		if err != nil {
			releasePool()
			return nil, nil, false, err
		}
		lc = &lockConn{conn: c, releasePool: releasePool}
		if s.locks == nil {
			s.locks = map[string]*lockConn{}
		}
		s.locks[key] = lc
	}
	lc.users++
	var once sync.Once
	return lc.conn, func() { once.Do(func() { s.releaseLockConn(key, lc) }) }, true, nil
}

// releaseLockConn gives one use of lc back, and its pool after the last.
func (s *Servers) releaseLockConn(key string, lc *lockConn) {
	s.mu.Lock()
	lc.users--
	last := lc.users == 0
	if last {
		delete(s.locks, key)
	}
	s.mu.Unlock()
	if last {
		lc.releasePool()
	}
}
