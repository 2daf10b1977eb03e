package shop

import "net/http"

// Call is a request one service of the shop makes to another through
// Config.Upstream: a method and a path (without query).
type Call struct {
	Method, Path string
}

// Checkout's calls, in the order of a checkout (docs/shop-api.md,
// checkout). They go through the proxy like a client's, so a proxy in
// front of the shop must route every one of them: examples/lbsys.yaml is
// checked against UpstreamCalls by examples/examples_test.go.
var (
	callCartGet   = Call{http.MethodGet, "/cart"}
	callReserve   = Call{http.MethodPost, "/inventory/reserve"}
	callCharge    = Call{http.MethodPost, "/payment/charge"}
	callVoid      = Call{http.MethodPost, "/payment/void"}
	callRelease   = Call{http.MethodPost, "/inventory/release"}
	callCommit    = Call{http.MethodPost, "/inventory/commit"}
	callCartClear = Call{http.MethodDelete, "/cart"}
)

// UpstreamCalls returns every call a service makes to another, for
// checking that a proxy configuration routes them all.
func UpstreamCalls() []Call {
	return []Call{callCartGet, callReserve, callCharge, callVoid, callRelease, callCommit, callCartClear}
}
