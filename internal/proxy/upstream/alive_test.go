package upstream

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestFreshSkipsClosedConnection: a request that must never be sent twice
// (Pool.get with fresh) does not take a pooled connection its endpoint has
// closed while it idled; it takes one the endpoint still holds open.
func TestFreshSkipsClosedConnection(t *testing.T) {
	for _, tc := range []struct {
		name      string
		closeIdle bool // the endpoint closes connections at once
		wantSame  bool
	}{
		{"endpoint closed it", true, false},
		{"endpoint holds it", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var accepted atomic.Int32
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					accepted.Add(1)
					if tc.closeIdle {
						c.Close()
					} else {
						defer c.Close()
					}
				}
			}()
			u := NewPool(nil, ln.Addr().String(), time.Second, time.Minute, time.Minute, 4)
			now := time.Now()
			pc, err := u.get(now, false)
			if err != nil {
				t.Fatal(err)
			}
			pc.put(now)
			deadline := time.Now().Add(5 * time.Second)
			for accepted.Load() < 1 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // the FIN, if any, arrives
			pc2, err := u.get(now, true)
			if err != nil {
				t.Fatal(err)
			}
			defer pc2.close()
			if same := pc2 == pc; same != tc.wantSame {
				t.Fatalf("got the pooled connection: %v, want %v", same, tc.wantSame)
			}
		})
	}
}
