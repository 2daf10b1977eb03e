package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// HotSet changes what visitors do during a window of the run: a sale's
// featured products become far more popular, and its crowd may walk
// another funnel.
//
// Products are the sale's featured products, which its crowd views
// whatever their usual popularity (lbsys demo takes them from the
// calendar's X-LBSYS-WARM). A product choice inside the window — the page
// a session opens, then its stock and the product it adds to the cart, or
// a requests-mode product, stock or cart-add request — is one of them
// with probability Share, uniformly; otherwise the usual Zipf popularity.
//
// Funnel, when set, is the conversion of the sessions that start inside
// the window (sessions mode): a flash sale's visitors come to buy, so
// more of them open a product, fill a cart and check out than on an
// ordinary day. Sessions still start at Rate / Config.Funnel's
// ExpectedRequests (the crowd's size is the Rate's), so the window's
// requests per second grow by Funnel.ExpectedRequests() /
// Config.Funnel.ExpectedRequests(), and each service's by its
// ServiceRequests ratio. Where windows overlap, the first with a Funnel
// applies.
type HotSet struct {
	// From and To bound the window, as offsets from the run's start
	// (To after From).
	From, To time.Duration
	// Products are product ids (p0042) or their pages
	// (/catalog/products/p0042), every one in the catalogue
	// (Config.Products).
	Products []string
	// Share is the probability that a choice in the window is a hot
	// product, in (0, 1]; 0 with no Products.
	Share float64
	// Funnel is the window's conversion (nil: Config.Funnel's).
	Funnel *Funnel
}

// maxHotSets bounds Config.Hot: every product choice checks the windows.
const maxHotSets = 64

// hotRT is a hot set with its products as catalogue indexes.
type hotRT struct {
	from, to time.Duration
	idx      []int
	share    float64
	funnel   *Funnel
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
		case len(h.Products) == 0 && h.Funnel == nil:
			return nil, fmt.Errorf("hot set %d: no products and no funnel: it would change nothing", i)
		case len(h.Products) == 0 && h.Share != 0:
			return nil, fmt.Errorf("hot set %d: share %v without products: name the products the share goes to, or leave it 0", i, h.Share)
		case len(h.Products) > 0 && !(h.Share > 0 && h.Share <= 1):
			return nil, fmt.Errorf("hot set %d: share %v: want a probability in (0, 1]", i, h.Share)
		}
		if h.Funnel != nil {
			if err := h.Funnel.Validate(); err != nil {
				return nil, fmt.Errorf("hot set %d: %w", i, err)
			}
		}
		rt := hotRT{from: h.From, to: h.To, share: h.Share, funnel: h.Funnel}
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
		if at >= h.from && at < h.to && len(h.idx) > 0 && rng.Float64() < h.share {
			return h.idx[rng.IntN(len(h.idx))]
		}
	}
	return g.paths.pickProduct(rng)
}

// funnelAt is the funnel of a session starting at offset at: the first
// open window's with one, else the run's.
func (g *gen) funnelAt(at time.Duration) *Funnel {
	for i := range g.hot {
		h := &g.hot[i]
		if h.funnel != nil && at >= h.from && at < h.to {
			return h.funnel
		}
	}
	return &g.cfg.Funnel
}
