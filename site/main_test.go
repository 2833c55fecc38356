package site_test

import (
	"os"
	"testing"

	"github.com/orderweave/erpsync/internal/mariadb/mariadbtest"
)

func TestMain(m *testing.M) { os.Exit(mariadbtest.RunTests(m)) }
