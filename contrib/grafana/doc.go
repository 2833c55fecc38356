// Package grafana holds erpsync's Grafana dashboard (erpsync.json). The Go
// test here checks its structure and that every query is valid PromQL;
// cmd/erpsync's tests check that every metric it queries is one erpsync
// exports.
package grafana
