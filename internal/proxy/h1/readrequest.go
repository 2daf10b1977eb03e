package h1

import (
	"bufio"
	"net/http"
	_ "unsafe" // go:linkname
)

// readRequest is net/http's own request reader, the one net/http.Server
// uses. The exported http.ReadRequest is the same parser but deletes the
// Host header from the map afterwards, and with it what a server needs to
// apply RFC 9112 §3.2 to an absolute-form request: whether a Host header
// was sent at all (HTTP/1.1 requires one) and what it said. net/http keeps
// this symbol linkable on purpose (go.dev/issue/67401: "Do not remove or
// change the type signature"), so the lbsys engine parses exactly as
// net/http.Server does and then applies the same checks (checkRequest).
//
//go:linkname readRequest net/http.readRequest
func readRequest(b *bufio.Reader) (*http.Request, error)
