package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/balance"
)

// probeDriver does the I/O of a policy that wants probes (prequal): every
// few milliseconds it asks how many probes queries have earned, sends that
// many GETs of the probe path to targets the policy chose, and reports each
// answer's X-Lbsys-Load back. Probes run on a bounded set of goroutines and
// never block a request.
type probeDriver struct {
	svc    *service
	pr     balance.Prober
	client *http.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}
}

const (
	probeTick         = 5 * time.Millisecond
	probeTimeout      = 250 * time.Millisecond
	maxProbesInFlight = 64
)

func newProbeDriver(svc *service, pr balance.Prober) *probeDriver {
	return &probeDriver{
		svc: svc,
		pr:  pr,
		client: &http.Client{
			Timeout: probeTimeout,
			Transport: &http.Transport{
				DialContext:         (&net.Dialer{Timeout: probeTimeout}).DialContext,
				MaxIdleConnsPerHost: 8,
				IdleConnTimeout:     30 * time.Second,
				DisableCompression:  true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		sem: make(chan struct{}, maxProbesInFlight),
	}
}

func (d *probeDriver) start() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(1)
	go d.loop(ctx)
}

func (d *probeDriver) stop() {
	d.cancel()
	d.wg.Wait()
	d.client.CloseIdleConnections()
}

func (d *probeDriver) loop(ctx context.Context) {
	defer d.wg.Done()
	t := time.NewTicker(probeTick)
	defer t.Stop()
	var targets []*balance.Endpoint
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := d.pr.ProbesOwed()
		if n == 0 {
			continue
		}
		if n > maxProbesInFlight {
			n = maxProbesInFlight // a backlog is stale anyway
		}
		targets = d.pr.ProbeTargets(fastRand{}, n, targets[:0])
		for _, e := range targets {
			select {
			case d.sem <- struct{}{}:
			default:
				continue // probes already saturate; skip rather than queue
			}
			d.wg.Add(1)
			go func(e *balance.Endpoint) {
				defer d.wg.Done()
				defer func() { <-d.sem }()
				d.probe(ctx, e)
			}(e)
		}
	}
}

func (d *probeDriver) probe(ctx context.Context, e *balance.Endpoint) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.ID+d.pr.ProbePath(), nil)
	if err != nil {
		return
	}
	req.Header.Set("User-Agent", "lbsys-probe/1")
	resp, err := d.client.Do(req)
	if err != nil {
		return
	}
	resp.Body.Close()
	lr := parseLoad(resp.Header)
	if !lr.Valid {
		return
	}
	// The probe's own round trip is not the latency a query would see (the
	// probe path skips the backend's queue); latency 0 makes the policy use
	// its estimate from real responses.
	d.pr.ObserveProbe(e, lr.RIF, 0, d.svc.px.clock.Now())
}
