package proxy

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lbsys/lbsys/internal/cache"
	"github.com/lbsys/lbsys/internal/config"
)

// FuzzPurgeRequest feeds POST /cache/purge bodies to the handler of a
// proxy whose cache holds entries: never a panic, only documented
// statuses, a 200 says how many URLs went and a refused request removes
// nothing.
func FuzzPurgeRequest(f *testing.F) {
	for _, s := range []string{
		`{"tag":"t1"}`, `{"path":"/p/1","route":"main#0","host":"shop.example"}`, `{"prefix":"/p"}`,
		`{"prefix":"/p","route":"nope"}`, `{"tag":"a b"}`, `{"tag":"a","path":"/x"}`, `{}`, `[]`,
		`{"tag":"t1"} {}`, `{"tags":"t1"}`, `{"path":"p/1"}`, `{"host":"SHOP.example","prefix":"/"}`,
	} {
		f.Add([]byte(s))
	}
	cfg, err := config.Parse([]byte(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{service: app}]}
services:
  - {name: app, endpoints: [{address: 127.0.0.1:9001}], cache: {enabled: true}}
`))
	if err != nil {
		f.Fatal(err)
	}
	px, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(px.Close)
	c := px.cache.Load()
	rt := px.gen.Load().listeners["127.0.0.1:0"].routes[0]
	fill := func() {
		// Entries stored through the cache's own path: an origin that
		// answers from memory.
		for _, p := range []string{"/p/1", "/p/2", "/q"} {
			r := httptest.NewRequest("GET", p, nil)
			r.Host = "shop.example"
			c.Serve(httptest.NewRecorder(), r, rt.cache, memOrigin{})
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fill()
		_, before := c.Size()
		rec := httptest.NewRecorder()
		px.handlePurge(rec, httptest.NewRequest("POST", "/cache/purge", strings.NewReader(string(body))))
		_, after := c.Size()
		switch rec.Code {
		case 200:
			var out map[string]int
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out["purged"] != before-after {
				t.Fatalf("200 with body %q; %d → %d stored", rec.Body.String(), before, after)
			}
		case 400, 404:
			if after != before {
				t.Fatalf("refused (%d %s) but %d → %d stored", rec.Code, rec.Body.String(), before, after)
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}

// memOrigin answers every request with a fresh, tagged response.
type memOrigin struct{}

func (memOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {}

func (memOrigin) RoundTrip(r *http.Request) (*http.Response, error) {
	h := http.Header{"Cache-Control": {"max-age=600"}, "Surrogate-Key": {"t1 t2"}}
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader("x")), ContentLength: 1, Request: r}, nil
}

var _ cache.Origin = memOrigin{}
