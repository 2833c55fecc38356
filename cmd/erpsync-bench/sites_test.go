package main

import (
	"fmt"
	"testing"
)

func TestParseSites(t *testing.T) {
	tests := []struct {
		in   string
		want string // fmt of the list, or "error"
	}{
		{"50,200,500", "[50 200 500]"},
		{"500, 50,200,50", "[50 200 500]"},
		{"7", "[7]"},
		{"", "error"},
		{"50,x", "error"},
		{"0", "error"},
		{"-5", "error"},
	}
	for _, tc := range tests {
		got, err := parseSites(tc.in)
		s := fmt.Sprint(got)
		if err != nil {
			s = "error"
		}
		if s != tc.want {
			t.Errorf("parseSites(%q) = %s, want %s", tc.in, s, tc.want)
		}
	}
}
