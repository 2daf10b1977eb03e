package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// HotSet makes some products far more popular during a window of the
// run: a sale's featured products, which its crowd views whatever their
// usual popularity (lbsys demo takes them from the calendar's
// X-LBSYS-WARM). A product choice inside the window — the page a session
// opens, then its stock and the product it adds to the cart, or a
// requests-mode product, stock or cart-add request — is one of them with
// probability Share, uniformly; otherwise the usual Zipf popularity.
type HotSet struct {
	// From and To bound the window, as offsets from the run's start
	// (To after From).
	From, To time.Duration
	// Products are product ids (p0042) or their pages
	// (/catalog/products/p0042), every one in the catalogue
	// (Config.Products).
	Products []string
	// Share is the probability that a choice in the window is a hot
	// product, in (0, 1].
	Share float64
}

// maxHotSets bounds Config.Hot: every product choice checks the windows.
const maxHotSets = 64

// hotRT is a hot set with its products as catalogue indexes.
type hotRT struct {
	from, to time.Duration
	idx      []int
	share    float64
}

// compileHot checks the hot sets against a catalogue of n products.
func compileHot(sets []HotSet, p *shopPaths) ([]hotRT, error) {
	if len(sets) > maxHotSets {
		return nil, fmt.Errorf("%d hot sets: at most %d", len(sets), maxHotSets)
	}
	byID := make(map[string]int, len(p.productID))
	for i, id := range p.productID {
		byID[id] = i
	}
	var out []hotRT
	for i, h := range sets {
		switch {
		case h.From < 0 || h.To <= h.From:
			return nil, fmt.Errorf("hot set %d: the window %v..%v is empty or negative; give offsets from the run's start with to after from", i, h.From, h.To)
		case !(h.Share > 0 && h.Share <= 1):
			return nil, fmt.Errorf("hot set %d: share %v: want a probability in (0, 1]", i, h.Share)
		case len(h.Products) == 0:
			return nil, fmt.Errorf("hot set %d: no products", i)
		}
		rt := hotRT{from: h.From, to: h.To, share: h.Share}
		for _, pr := range h.Products {
			id := strings.TrimPrefix(pr, "/catalog/products/")
			k, ok := byID[id]
			if !ok {
				return nil, fmt.Errorf("hot set %d: %q is not a product of the catalogue (p0001 to %s); raise Products or name another", i, pr, p.productID[len(p.productID)-1])
			}
			rt.idx = append(rt.idx, k)
		}
		out = append(out, rt)
	}
	return out, nil
}

// pick chooses a product at offset at: a hot one with its set's share
// while a window is open, else by popularity.
func (g *gen) pick(rng *rand.Rand, at time.Duration) int {
	for i := range g.hot {
		h := &g.hot[i]
		if at >= h.from && at < h.to && rng.Float64() < h.share {
			return h.idx[rng.IntN(len(h.idx))]
		}
	}
	return g.paths.pickProduct(rng)
}
