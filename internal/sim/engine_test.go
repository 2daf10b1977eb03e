package sim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// TestEngineLanes: events scheduled through the lanes run in exactly the
// order they would through the heap alone — by time, ties in scheduling
// order — including events scheduled by running handlers and an event
// out of a lane's order (which the lane hands to the heap).
func TestEngineLanes(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		var e engine
		type item struct {
			at  int64
			seq int
		}
		var want []item
		var got []int64
		n := 0
		var sched func(at int64)
		sched = func(at int64) {
			id := n
			n++
			want = append(want, item{at, id})
			h := &laneProbeHandler{got: &got, id: int64(id)}
			if rng.IntN(4) == 0 && n < 3000 {
				// A handler that schedules more when it runs.
				h.then = func() { sched(e.now + rng.Int64N(3)) }
			}
			switch ln := rng.IntN(numLanes + 1); ln {
			case numLanes:
				e.at(at, h, 0)
			default:
				e.atLane(ln, at, h, 0)
			}
		}
		last := [numLanes]int64{}
		for range 500 {
			// Mostly rising times per lane, some ties, some going back.
			ln := rng.IntN(numLanes)
			last[ln] += rng.Int64N(5) - 1
			sched(max(last[ln], 0))
		}
		e.run(1<<40, nil)
		sort.SliceStable(want, func(i, j int) bool { return want[i].at < want[j].at })
		// Events scheduled while running have times >= now, so the stable
		// sort by time of the scheduling order is the run order.
		var ids []int64
		for _, w := range want {
			ids = append(ids, int64(w.seq))
		}
		if fmt.Sprint(got) != fmt.Sprint(ids) {
			t.Fatalf("seed %d: %d events out of (time, scheduling) order", seed, len(got))
		}
	}
}

type laneProbeHandler struct {
	got  *[]int64
	id   int64
	then func()
}

func (h *laneProbeHandler) handle(int64) {
	*h.got = append(*h.got, h.id)
	if h.then != nil {
		h.then()
	}
}

// TestEngineWall: the memoised calendar time is the epoch plus the
// virtual time, whatever the order of the questions.
func TestEngineWall(t *testing.T) {
	e := engine{epoch: DefaultStart}
	for _, v := range []int64{0, 0, 5, 5, 0, int64(time.Hour), 7, 7, int64(time.Hour)} {
		if got, want := e.wall(v), DefaultStart.Add(time.Duration(v)); !got.Equal(want) || got != want {
			t.Fatalf("wall(%d) = %v, want %v", v, got, want)
		}
	}
}
