package proxy

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/config"
)

// prober runs the active HTTP health checks of one service: one goroutine
// per endpoint, each probing at the configured interval (the first probe at
// once, later ones with ±10% jitter so a fleet of proxies does not probe in
// lock step). Results go to the service's pure health.Pool.
type prober struct {
	svc    *service
	cfg    *config.ActiveHealth
	ranges [][2]int
	client *http.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newProber(svc *service, cfg *config.ActiveHealth) *prober {
	ranges, err := config.ParseStatusRanges(cfg.ExpectedStatuses)
	if err != nil || len(ranges) == 0 {
		ranges = [][2]int{{200, 399}} // validated at load; belt and braces
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     2 * cfg.Interval,
		DisableCompression:  true,
		Proxy:               nil,
	}
	return &prober{
		svc:    svc,
		cfg:    cfg,
		ranges: ranges,
		client: &http.Client{Transport: tr, Timeout: cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// start launches a goroutine per endpoint known now. Called with svc.mu held.
func (p *prober) start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	for _, id := range p.svc.order {
		ep := p.svc.eps[id]
		p.wg.Add(1)
		go p.loop(ctx, ep)
	}
}

func (p *prober) stop() {
	p.cancel()
	p.wg.Wait()
	p.client.CloseIdleConnections()
}

// loop probes one endpoint: at once, then every interval (±10%) of the
// proxy's clock, so that a test with a manual clock drives the probes by
// advancing it. A probe's own timeout is the wall clock's: it bounds I/O.
func (p *prober) loop(ctx context.Context, ep *endpoint) {
	defer p.wg.Done()
	clk := p.svc.px.clock
	due := make(chan struct{}, 1)
	for {
		ok := p.probe(ctx, ep.be.ID)
		if ctx.Err() != nil {
			return
		}
		result := "success"
		if !ok {
			result = "failure"
		}
		p.svc.px.metrics.HealthChecks.WithLabelValues(p.svc.name, ep.be.ID, result).Inc()
		if p.svc.pool.ObserveActive(ep.member, ok, p.svc.px.clock.Now()) {
			p.svc.px.log.Info("endpoint health changed", "service", p.svc.name, "endpoint", ep.be.ID, "healthy", ok)
			p.svc.rebuild()
		}
		jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(p.cfg.Interval))
		t := clk.AfterFunc(p.cfg.Interval+jitter, func() {
			select {
			case due <- struct{}{}:
			default:
			}
		})
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-due:
		}
	}
}

// probe sends one check and reports whether the status was expected.
func (p *prober) probe(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.cfg.Path, nil)
	if err != nil {
		return false
	}
	if p.cfg.Host != "" {
		req.Host = p.cfg.Host
	}
	req.Header.Set("User-Agent", "lbsys-health/1")
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	for _, r := range p.ranges {
		if resp.StatusCode >= r[0] && resp.StatusCode <= r[1] {
			return true
		}
	}
	return false
}
