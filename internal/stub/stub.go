// Package stub runs tiny HTTP backends on loopback addresses so that
// `lbsys proxy --stub-backends` has something to balance before the demo shop
// (internal/shop) exists in a deployment. Each answers every path with a
// short JSON body naming itself, and /healthz with 200.
package stub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Backends is a set of running stub servers.
type Backends struct {
	servers []*http.Server
	wg      sync.WaitGroup
}

// Start listens on every address; all must be loopback.
func Start(addrs []string) (*Backends, error) {
	b := &Backends{}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("stub backend %q: %w", a, err)
		}
		if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
			b.Close()
			return nil, fmt.Errorf("stub backend %q: stub backends only listen on loopback addresses", a)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("stub backend: %w", err)
		}
		name := a
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				w.Write([]byte("ok\n"))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Backend", name)
			json.NewEncoder(w).Encode(map[string]string{"backend": name, "method": r.Method, "path": r.URL.Path})
		})}
		b.servers = append(b.servers, srv)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				_ = err
			}
		}()
	}
	return b, nil
}

// Close stops every server.
func (b *Backends) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range b.servers {
		if s.Shutdown(ctx) != nil {
			s.Close()
		}
	}
	b.wg.Wait()
}
