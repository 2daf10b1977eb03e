package loadgen

import (
	"math"
	"testing"
	"time"
)

// FuzzParseFlags: the parsers of lbsys load's flag values (--arrivals,
// --mix, --ramp, --flash-sale, --mode, --funnel, --think) never panic, and
// what they accept is a rate that is finite and never negative.
func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{"poisson", "uniform", "browse=70,cart=20,checkout=10", "100:2000", "x3,at=10s,for=30s,rise=5s,fall=0s",
		"sessions", "requests", "cart=0.3,checkout=0.5,payment=0.9", "lognormal", "exponential", "", ",", "=", "1e309:1", "x-1,at=-1s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ParseArrivalProcess(s)
		ParseMode(s)
		ParseThinkDist(s)
		ParseMix(s)
		ParseFunnel(s)
		check := func(what string, r Rate) {
			for _, at := range []time.Duration{0, time.Second, time.Minute, time.Hour, -time.Second} {
				if v := r.At(at); math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Fatalf("%s %q: rate %v at %v", what, s, v, at)
				}
			}
			if m := r.Max(0, time.Hour); math.IsNaN(m) || m < 0 {
				t.Fatalf("%s %q: max %v", what, s, m)
			}
		}
		if r, err := ParseRamp(s, time.Minute); err == nil {
			check("ramp", r)
		}
		if fs, err := ParseFlashSale(s, Constant(100)); err == nil {
			check("flash sale", fs)
		}
	})
}
