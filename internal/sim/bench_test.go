package sim

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkEngine measures simulated requests per second of wall time on
// one core (a run is single-threaded): the policies.sh shape (6 replicas,
// 2 at half speed, 80% load, independent requests, one proxy) and the
// steady shop (sessions over five services, checkout fanning out, two
// proxies, admission control), per policy. The figure is the req/s metric.
//
//	go test -run '^$' -bench Engine -benchtime 3x ./internal/sim
func BenchmarkEngine(b *testing.B) {
	shapes := []struct {
		name string
		sc   func(b *testing.B) *Scenario
	}{
		{"requests", func(b *testing.B) *Scenario {
			return mustParse(b, fmt.Sprintf(policiesShape, 2*time.Minute, 1600))
		}},
		{"sessions", func(b *testing.B) *Scenario {
			sc := mustParse(b, shortFlashSale)
			sc.Load.FlashSales, sc.Failures = nil, nil
			sc.Load.Rate = 1000
			for i := range sc.Services {
				sc.Services[i].Replicas *= 3
			}
			return sc
		}},
	}
	for _, shape := range shapes {
		for _, p := range []string{"round_robin", "least_request", "peak_ewma", "prequal"} {
			b.Run(shape.name+"/"+p, func(b *testing.B) {
				sc := shape.sc(b)
				var reqs, events uint64
				b.ReportAllocs()
				for b.Loop() {
					s, err := New(sc, Options{Policy: p})
					if err != nil {
						b.Fatal(err)
					}
					pr := s.Run()
					reqs += uint64(pr.Totals.Requests + pr.Totals.Unfinished)
					events += pr.Totals.Events
				}
				b.ReportMetric(float64(reqs)/b.Elapsed().Seconds(), "req/s")
				b.ReportMetric(float64(events)/float64(reqs), "events/req")
			})
		}
	}
}
