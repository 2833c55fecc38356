package ha_test

import (
	"os"
	"testing"

	"github.com/Shopify/toxiproxy/v2/toxics"

	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

func TestMain(m *testing.M) {
	toxics.Register("blackhole", new(blackholeToxic)) // before any proxy exists
	os.Exit(mariadbtest.RunTests(m))
}
