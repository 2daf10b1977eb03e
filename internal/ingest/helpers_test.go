package ingest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

// testStore opens a store in a temporary directory.
func testStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "ingest.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// runSource runs fn as one ingest run and returns its report.
func runSource(t testing.TB, st *store.Store, source string, fn func(ctx context.Context, run *Run) error) (Report, error) {
	t.Helper()
	ctx := context.Background()
	run, err := Begin(ctx, st, source, "test")
	if err != nil {
		t.Fatal(err)
	}
	return run.Finish(ctx, fn(ctx, run))
}

// reasons returns the quarantine rows of the store keyed by location.
func quarantined(t testing.TB, st *store.Store) map[string]store.Quarantined {
	t.Helper()
	rows, err := st.LatestQuarantined(context.Background(), 10_000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Quarantined{}
	for _, q := range rows {
		out[q.Location] = q
	}
	return out
}

func points(t testing.TB, st *store.Store, key store.SeriesKey, res store.Resolution) []store.Point {
	t.Helper()
	pts, err := st.RangeByKey(context.Background(), key, time.Unix(0, 0), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), res)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return pts
}

// noSleep records the waits a Retry asks for without spending them.
type noSleep struct{ waits []time.Duration }

func (n *noSleep) sleep(ctx context.Context, d time.Duration) error {
	n.waits = append(n.waits, d)
	return ctx.Err()
}

// md5hex is how the ServiceNow fixtures make sys_ids from readable keys.
func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func sha256sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// eventually polls cond every 20 ms until it holds (the event being awaited
// happens in another process or goroutine with no channel to wait on).
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
