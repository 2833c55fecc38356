// Package prometheus holds erpsync's Prometheus alerting rules
// (erpsync.rules.yml) and their unit tests (erpsync.rules.test.yml). The Go
// test here runs promtool on them; cmd/erpsync's tests check that every
// metric the rules query is one erpsync exports.
package prometheus
