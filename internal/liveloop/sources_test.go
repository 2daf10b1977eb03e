package liveloop

import (
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The sources against real proxies are tested in cmd/lbsys
// (controller_sources_test.go): a test of both planes belongs in a
// package of neither (internal/deptest).

var quiet = slog.New(slog.DiscardHandler)

// TestFleetFile: the fleet document from a file and from a URL (with its
// bearer token): counts and utilisation per service, each startup taken
// once, a service it does not list left unknown, a bad document leaves
// the minute without state.
func TestFleetFile(t *testing.T) {
	doc := `{"services": [
  {"service": "catalog", "ready": 3, "starting": 1, "pending": 2, "util": 0.45,
   "startups": [{"ready_at": "2026-03-04T10:00:00Z", "seconds": 95}, {"ready_at": "2026-03-04T10:01:00Z", "seconds": 80}]},
  {"service": "cart", "ready": 1}
]}`
	path := filepath.Join(t.TempDir(), "fleet.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var gotAuth atomic.Value
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization"))
		io.WriteString(w, doc)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	for _, src := range []string{path, "http://" + ln.Addr().String() + "/fleet"} {
		f := &FleetFile{Source: src, Services: []string{"catalog", "cart", "payment"}, Token: "secret-token", Log: quiet}
		st := f.Snapshot()
		if len(st) != 2 || st[0].Service != "catalog" || st[0].Ready != 3 || st[0].Starting != 1 || st[0].Pending != 2 || st[0].Util != 0.45 {
			t.Fatalf("%s: states %+v", src, st)
		}
		if st[1].Service != "cart" || st[1].Ready != 1 || !math.IsNaN(st[1].Util) {
			t.Errorf("%s: cart %+v, want 1 ready, utilisation unknown", src, st[1])
		}
		if su := f.Startups(); len(su["catalog"]) != 2 || su["catalog"][0] != 95*time.Second {
			t.Errorf("%s: startups %v", src, su)
		}
		f.Snapshot()
		if su := f.Startups(); len(su) != 0 {
			t.Errorf("%s: startups taken twice: %v", src, su)
		}
	}
	// Under compressed time a startup lasts factor times longer on the
	// loop's clock.
	f := &FleetFile{Source: path, Services: []string{"catalog"}, Factor: 60, Log: quiet}
	f.Snapshot()
	if su := f.Startups(); len(su["catalog"]) != 2 || su["catalog"][1] != 80*time.Minute {
		t.Errorf("startups at factor 60: %v, want 95m and 80m", su)
	}
	if got, _ := gotAuth.Load().(string); got != "Bearer secret-token" {
		t.Errorf("Authorization %q", got)
	}
	// A document that does not parse: no state this minute.
	if err := os.WriteFile(path, []byte(`{"services": [{"service": "catalog", "utilisation": 0.4}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	f = &FleetFile{Source: path, Services: []string{"catalog"}, Log: quiet}
	if st := f.Snapshot(); st != nil {
		t.Errorf("bad document: %+v, want no state", st)
	}
}

func TestParseFleetDoc(t *testing.T) {
	for _, tc := range []struct {
		doc, wantErr string
	}{
		{`{"services": []}`, ""},
		{`{"services": [{"service": "a", "ready": 2, "util": 0}]}`, ""},
		{`{"services": [{"service": "a", "utilisation": 0.4}]}`, `unknown field "utilisation"`},
		{`{"services": [{"ready": 2}]}`, "services[0]: service is required"},
		{`{"services": [{"service": "a"}, {"service": "a"}]}`, `services[1]: service "a" appears twice`},
		{`{"services": [{"service": "a", "ready": -1}]}`, "zero or more"},
		{`{"services": [{"service": "a", "util": 1.5}]}`, "util 1.5: want a share from 0 to 1"},
		{`{"services": [{"service": "a", "startups": [{"seconds": 3}]}]}`, "services[0].startups[0] (a): want ready_at"},
		{`{"services": [{"service": "a", "startups": [{"ready_at": "2026-03-04T10:00:00Z", "seconds": 0}]}]}`, "seconds > 0"},
		{`{"services": []} {}`, "data after the JSON object"},
		{`[]`, "fleet document"},
	} {
		_, err := ParseFleetDoc([]byte(tc.doc))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.doc, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %v, want %q", tc.doc, err, tc.wantErr)
		}
	}
}

func TestParseTelemetryAndLoadReport(t *testing.T) {
	for _, tc := range []struct {
		doc, wantErr string
		n            int
	}{
		{`{"records": []}`, "", 0},
		{`{"records": [{"ts": "2026-03-04T10:00:00Z", "service": "a", "requests": 3, "new_field": 1}]}`, "", 1},
		{`{"records": [{"service": "a", "requests": 3}]}`, "records[0]: no ts or service", 0},
		{`{"records": [{"ts": "2026-03-04T10:00:00Z", "service": "a", "requests": -3}]}`, "negative count", 0},
		{`{"records": [{"ts": "2026-03-04T10:00:00Z", "service": "a", "p99_ms": -1}]}`, "latency", 0},
		{`<html>`, "not the telemetry JSON", 0},
	} {
		recs, err := ParseTelemetry([]byte(tc.doc))
		switch {
		case tc.wantErr == "" && (err != nil || len(recs) != tc.n):
			t.Errorf("%s: %d records, %v", tc.doc, len(recs), err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %v, want %q", tc.doc, err, tc.wantErr)
		}
	}
	for _, tc := range []struct {
		doc     string
		busy    float64
		workers int
		ok      bool
	}{
		{`{"busy_seconds": 12.5, "workers": 8, "requests": 4}`, 12.5, 8, true},
		{`{"busy_seconds": 0, "workers": 1}`, 0, 1, true},
		{`{"workers": 1}`, 0, 0, false},
		{`{"busy_seconds": -1, "workers": 1}`, 0, 0, false},
		{`{"busy_seconds": 1, "workers": 0}`, 0, 0, false},
		{`not json`, 0, 0, false},
	} {
		b, w, err := ParseLoadReport([]byte(tc.doc))
		if (err == nil) != tc.ok || (tc.ok && (b != tc.busy || w != tc.workers)) {
			t.Errorf("%s: %v %v %v", tc.doc, b, w, err)
		}
	}
}
