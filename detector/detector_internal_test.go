package detector

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestRefused(t *testing.T) {
	tests := []struct {
		err  error
		want Refusal
	}{
		{&mysql.MySQLError{Number: 1045, Message: "Access denied for user"}, BadLogin},
		{fmt.Errorf("connect: %w", &mysql.MySQLError{Number: 1044}), NoDatabase},
		{&mysql.MySQLError{Number: 1049, Message: "Unknown database"}, NoDatabase},
		{&mysql.MySQLError{Number: 1146, Message: "Table doesn't exist"}, NotRefused},
		{errors.New("dial tcp 127.0.0.1:3306: connection refused"), NotRefused},
		{nil, NotRefused},
	}
	for _, tc := range tests {
		if got := Refused(tc.err); got != tc.want {
			t.Errorf("Refused(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestOpenRejectsBadDSNWithoutPassword(t *testing.T) {
	if _, err := Open("user:Sekrit-pw@tcp(127.0.0.1:3306)/"); err == nil {
		t.Fatal("Open accepted a DSN without database")
	}
	db, err := Open("user:Sekrit-pw@tcp(127.0.0.1:3306)/site")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Stats().MaxOpenConnections; got != 4 {
		t.Errorf("MaxOpenConnections = %d, want 4", got)
	}
}
