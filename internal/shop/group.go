// Package shop implements the demo shop's five HTTP microservices —
// catalog, inventory, cart, checkout and payment — as specified in
// docs/shop-api.md. They are what `lbsys demo`, the integration tests and
// the benchmarks balance, so they behave like real services where it
// matters to a load balancer:
//
//   - capacity: each instance has a fixed number of workers and a bounded
//     queue; a log-normal service time really holds a worker, scaled by the
//     endpoint's cost, the machine's speed and a cold start (capacity.go);
//   - feedback: every answer carries X-Lbsys-Load (requests in flight,
//     utilisation), and overload is a 503 with Retry-After;
//   - faults: slow, error rate, hang and crash (with restart), injected per
//     instance over loopback HTTP or from Go (fault.go);
//   - transactions: stock never goes negative, payments and checkouts are
//     idempotent, and checkout is a saga over HTTP with compensation, so
//     that retries by clients and proxies are safe (checkout.go).
//
// Use from Go (the demo and tests start shops in-process):
//
//	cfg := shop.DefaultConfig()
//	cfg.Service = "catalog"
//	cfg.Addrs = []string{"127.0.0.1:0", "127.0.0.1:0"}
//	g, err := shop.Start(ctx, cfg)
//	…
//	g.URLs()                                  // http://127.0.0.1:41231, …
//	g.SetFault(1, shop.Fault{Slow: 3})        // second instance 3× slower
//	g.SetFault(0, shop.Fault{Crash: true, RestartAfter: 2 * time.Second})
//	st, _ := g.Stats(0)
//	g.Shutdown(ctx)                           // drain; or g.Close()
package shop

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
)

// Group is a running set of instances of one service sharing one store.
type Group struct {
	cfg   Config
	svc   *serviceDef
	store Store
	own   bool // the group opened store and closes it
	cat   *catalogData
	up    *upstream // checkout's downstream client
	log   *slog.Logger
	clock clock.Clock
	insts []*instance

	draining atomic.Bool
	started  time.Time // for Config.ReadyAfter

	gateMu sync.RWMutex // orders enter() against Close
	closed bool
	active sync.WaitGroup // requests being served

	closeOnce sync.Once
	closeErr  error
	stopCtx   func() bool
}

var serviceDefs = map[string]*serviceDef{
	"catalog":   catalogService,
	"inventory": inventoryService,
	"cart":      cartService,
	"checkout":  checkoutService,
	"payment":   paymentService,
}

// Start validates cfg, opens the store and starts every instance; it
// returns once all of them listen. When ctx ends the group is closed (as
// by Close); use Shutdown to drain instead.
func Start(ctx context.Context, cfg Config) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Addrs = append([]string(nil), cfg.Addrs...)
	cfg.Speeds = append([]float64(nil), cfg.Speeds...)
	g := &Group{cfg: cfg, svc: serviceDefs[cfg.Service], log: cfg.Logger, clock: cfg.Clock, cat: newCatalogData(cfg.Products)}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.clock == nil {
		g.clock = clock.Real{}
	}
	g.started = g.clock.Now()
	switch {
	case cfg.Store != nil:
		g.store = cfg.Store
	case cfg.DataPath != "":
		st, err := OpenSQLite(cfg.DataPath)
		if err != nil {
			return nil, err
		}
		g.store, g.own = st, true
	default:
		g.store, g.own = NewMemStore(), true
	}
	if err := seedStock(ctx, g.store, g.cat.list, cfg.Stock); err != nil {
		g.closeStore()
		return nil, fmt.Errorf("shop: seeding stock: %w", err)
	}
	if cfg.Service == "checkout" {
		g.up = newUpstream(cfg.Upstream)
	}
	h := fnv.New64a()
	h.Write([]byte(cfg.Service))
	svcSeed := h.Sum64()
	for i, addr := range cfg.Addrs {
		s := &instance{
			g:     g,
			index: i,
			name:  fmt.Sprintf("%s-%d", cfg.Service, i),
			speed: cfg.speed(i),
			lat:   newLogNormal(cfg.Latency, cfg.CV, splitmix64(cfg.Seed^svcSeed+uint64(i))),
			addr:  addr,
		}
		s.installFault(Fault{})
		s.mu.Lock()
		err := s.startLocked()
		s.mu.Unlock()
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("shop: %s instance %d: listen on %s: %w", cfg.Service, i, addr, err)
		}
		g.insts = append(g.insts, s)
	}
	if cfg.AddrFile != "" {
		tmp := cfg.AddrFile + ".tmp"
		err := os.WriteFile(tmp, []byte(strings.Join(g.Addrs(), "\n")+"\n"), 0o644)
		if err == nil {
			err = os.Rename(tmp, cfg.AddrFile)
		}
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("shop: writing the addresses to %s: %w", cfg.AddrFile, err)
		}
	}
	g.stopCtx = context.AfterFunc(ctx, func() { g.Close() })
	return g, nil
}

func (g *Group) closeStore() error {
	if g.own {
		return g.store.Close()
	}
	return nil
}

// enter admits a request unless the group is closed; exit ends it.
func (g *Group) enter() bool {
	g.gateMu.RLock()
	defer g.gateMu.RUnlock()
	if g.closed {
		return false
	}
	g.active.Add(1)
	return true
}

func (g *Group) exit() { g.active.Done() }

// Service is the group's service name.
func (g *Group) Service() string { return g.cfg.Service }

// Len is the number of instances.
func (g *Group) Len() int { return len(g.insts) }

// Addrs are the instances' listen addresses (host:port, with the port the
// OS chose for port 0), in Config.Addrs order.
func (g *Group) Addrs() []string {
	out := make([]string, len(g.insts))
	for i, s := range g.insts {
		s.mu.Lock()
		out[i] = s.addr
		s.mu.Unlock()
	}
	return out
}

// URLs are the instances' base URLs, http://host:port.
func (g *Group) URLs() []string {
	out := g.Addrs()
	for i, a := range out {
		out[i] = "http://" + a
	}
	return out
}

// Store is the group's state, for inspection by tests and the demo.
func (g *Group) Store() Store { return g.store }

func (g *Group) instance(i int) (*instance, error) {
	if i < 0 || i >= len(g.insts) {
		return nil, fmt.Errorf("shop: %s has %d instances, no instance %d", g.cfg.Service, len(g.insts), i)
	}
	return g.insts[i], nil
}

// SetFault replaces instance i's fault (docs/shop-api.md, /_shop/fault).
// Fault{} clears it, and restarts a crashed instance at once.
func (g *Group) SetFault(i int, f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s, err := g.instance(i)
	if err != nil {
		return err
	}
	return s.setFault(f, nil)
}

// Fault returns instance i's current fault.
func (g *Group) Fault(i int) (Fault, error) {
	s, err := g.instance(i)
	if err != nil {
		return Fault{}, err
	}
	return s.currentFault(), nil
}

// Stats returns instance i's /_shop/stats.
func (g *Group) Stats(ctx context.Context, i int) (Stats, error) {
	s, err := g.instance(i)
	if err != nil {
		return Stats{}, err
	}
	return s.stats(ctx)
}

// Shutdown drains the group: /healthz turns 503, listeners close, requests
// in flight finish (checkouts complete their downstream calls), then the
// group closes. If ctx ends first, the rest is cut as by Close and ctx's
// error is returned.
func (g *Group) Shutdown(ctx context.Context) error {
	g.draining.Store(true)
	var wg sync.WaitGroup
	errs := make([]error, len(g.insts))
	for i, s := range g.insts {
		s.mu.Lock()
		crashed, closed := s.crashed, s.closed
		s.restartGen++ // no restart while draining
		if s.restart != nil {
			s.restart.Stop()
		}
		inc := s.inc.Load()
		s.mu.Unlock()
		if crashed || closed {
			continue
		}
		wg.Go(func() { errs[i] = inc.srv.Shutdown(ctx) })
	}
	wg.Wait()
	cerr := g.Close()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return cerr
}

// Close stops the group at once: connections are reset, work in progress
// is abandoned, the store (if the group opened it) is closed. It waits for
// handlers to return, and is safe to call more than once.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		if g.stopCtx != nil {
			g.stopCtx()
		}
		g.gateMu.Lock()
		g.closed = true
		g.gateMu.Unlock()
		var incs []*incarnation
		for _, s := range g.insts {
			if inc := s.close(); inc != nil {
				incs = append(incs, inc)
			}
		}
		for _, inc := range incs {
			inc.srv.Close()
			<-inc.served
		}
		g.active.Wait()
		if g.up != nil {
			g.up.close()
		}
		g.closeErr = g.closeStore()
	})
	return g.closeErr
}
