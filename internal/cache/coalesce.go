package cache

import (
	"sync"
	"sync/atomic"
)

// flight is one origin fetch that other requests for the same key may wait
// for. It ends (done closed) once the fetched response is stored, or as
// soon as it is known that it will not be: waiters then fetch on their own
// rather than wait for a body they cannot use.
type flight struct {
	done    chan struct{}
	waiters atomic.Int32
	once    sync.Once
}

// flights is the table of fetches in progress. Only misses touch it, so one
// mutex is enough; hits never do.
type flights struct {
	mu sync.Mutex
	m  map[Key]*flight
}

// join returns the key's flight and whether the caller leads it (must fetch
// and finish it). A waiter beyond maxWaiters gets (nil, false): it fetches
// on its own.
func (fs *flights) join(k Key, maxWaiters int) (f *flight, leader bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f = fs.m[k]; f != nil {
		if int(f.waiters.Load()) >= maxWaiters {
			return nil, false
		}
		f.waiters.Add(1)
		return f, false
	}
	f = &flight{done: make(chan struct{})}
	fs.m[k] = f
	return f, true
}

// lead starts a flight only if none is in progress (background
// revalidation: never wait, never duplicate).
func (fs *flights) lead(k Key) *flight {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m[k] != nil {
		return nil
	}
	f := &flight{done: make(chan struct{})}
	fs.m[k] = f
	return f
}

// finish ends a flight: later requests start a fresh lookup, waiters wake.
// It may be called more than once; nil is ignored.
func (fs *flights) finish(k Key, f *flight) {
	if f == nil {
		return
	}
	f.once.Do(func() {
		fs.mu.Lock()
		if fs.m[k] == f {
			delete(fs.m, k)
		}
		fs.mu.Unlock()
		close(f.done)
	})
}

// inFlight reports whether a fetch for the key is in progress.
func (fs *flights) inFlight(k Key) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.m[k] != nil
}
