// Package rfc9111 holds the decisions of lbsys's shared HTTP cache as pure
// functions: parsing Cache-Control, Age, HTTP dates, Vary, entity-tags and
// Range; whether a response may be stored; its freshness lifetime and current
// age; whether a stored response may be served, must be validated or may be
// served stale; how a 304 updates a stored response; and what an unsafe
// request invalidates.
//
// It follows RFC 9111 (HTTP Caching) for a shared cache, RFC 5861
// (stale-while-revalidate, stale-if-error) and the conditional-request rules
// of RFC 9110 §13. Section numbers in comments refer to RFC 9111 unless
// another RFC is named.
//
// The package imports neither net nor net/http and never reads the clock
// (DESIGN.md principle 2): times and header fields are arguments. Header has
// the shape of net/http's Header, so the adapter in internal/cache converts
// one to the other without copying, and the simulator or a test can drive the
// same rules with plain maps and a manual clock.
package rfc9111
