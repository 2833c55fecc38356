package site_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/internal/mariadb"
	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/site"
)

// TestResyncVersionsFollowTheServerClockWithHA: with ha.enabled, the active
// host gives versions from the database server's clock (ha.Term), so a
// resync run on a host must too, or its states could go out below the
// active one's versions when the host's clock is behind. The server's clock
// is moved two hours ahead by libfaketime.
func TestResyncVersionsFollowTheServerClockWithHA(t *testing.T) {
	ctx := context.Background()
	ahead := 2 * time.Hour
	dsn := mariadbtest.NewServer(t, mariadb.Options{Env: mariadbtest.FakeTimeEnv(t, time.Now().Add(ahead))})
	e := sitetest.New(t, sitetest.Options{RootDSN: dsn, Items: 2})
	for _, tc := range []struct {
		name    string
		ha      bool
		least   time.Duration // the version is at least now + least
		beneath time.Duration // and below now + beneath
	}{
		{name: "ha.enabled", ha: true, least: ahead - time.Minute, beneath: ahead + time.Minute},
		{name: "one host", ha: false, least: -time.Minute, beneath: time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Read(e.CfgPath)
			must(t, err)
			sc := c.Sites[0]
			sc.HA.Enabled = tc.ha
			ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"))
			must(t, err)
			defer ob.Close()
			r, err := site.NewResync(ctx, sc, ob, e.DB, site.ResyncOptions{})
			must(t, err)
			start := time.Now()
			must(t, r.Items(ctx, []string{"ITEM-00001"}))
			st, ok, err := ob.ItemState(ctx, "ITEM-00001")
			must(t, err)
			if !ok {
				t.Fatal("resync queued nothing")
			}
			v := time.UnixMicro(st.Version)
			if v.Before(start.Add(tc.least)) || !v.Before(time.Now().Add(tc.beneath)) {
				t.Errorf("version %s is %s from the local clock, want between %s and %s", v.Format(time.RFC3339Nano), v.Sub(start).Round(time.Second), tc.least, tc.beneath)
			}
		})
	}
}
