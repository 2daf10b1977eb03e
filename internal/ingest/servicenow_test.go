package ingest

// The fake instance below answers like the ServiceNow Table API as its
// documentation describes it; the fixtures in testdata/ingest/servicenow are
// written in the same formats. Sources:
//
//   - Table API, GET /now/table/{tableName} (Zurich/Australia releases):
//     https://www.servicenow.com/docs/r/api-reference/rest-apis/c_TableAPI.html
//     — the {"result": [...]} envelope; query parameters sysparm_query
//     (encoded query with ^ORDERBY), sysparm_display_value (true, false,
//     all: with "all" every field is {"display_value", "value"} and a
//     reference adds "link"), sysparm_exclude_reference_link,
//     sysparm_fields, sysparm_limit and sysparm_offset; response headers
//     Link (first/prev/next/last) and X-Total-Count; status codes 200, 400,
//     401, 403, 404, 500.
//   - Table API FAQs, KB0534905:
//     https://support.servicenow.com/kb?id=kb_article_view&sysparm_article=KB0534905
//     — date-time values are UTC with sysparm_display_value=false (the
//     "value" half), display values are in the user's zone and format.
//   - A Link header as a real instance sends it (first/next/last, URL-encoded
//     query, X-Total-Count), quoted in ServiceNowITOM/ansible-sn-inventory
//     issue 15: https://github.com/ServiceNowITOM/ansible-sn-inventory/issues/15
//   - Inbound REST API rate limiting:
//     https://www.servicenow.com/docs/r/api-reference/rest-api-explorer/inbound-REST-API-rate-limiting.html
//     — 429 Too Many Requests with Retry-After (seconds) and
//     X-RateLimit-Limit/Reset/Rule.
//   - The error body of a failed call, {"error": {"message", "detail"},
//     "status": "failure"} ("User Not Authenticated" / "Required to provide
//     Auth information" for a 401), as the REST API reference shows in its
//     response examples.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

// fakeSN is a Table API instance over the fixture records.
type fakeSN struct {
	t      testing.TB
	srv    *httptest.Server
	mu     sync.Mutex
	tables map[string][]map[string]json.RawMessage
	// noLink omits the Link header (clients must page by offset).
	noLink bool
	// failures are answers to send before the real ones, in order.
	failures []func(w http.ResponseWriter)
	// foreignNext points rel="next" at another host.
	foreignNext bool
	requests    []string
	queries     map[string][]string // table → sysparm_query values
}

func newFakeSN(t testing.TB) *fakeSN {
	f := &fakeSN{t: t, tables: map[string][]map[string]json.RawMessage{}, queries: map[string][]string{}}
	for _, table := range []string{"cmdb_ci_service", "cmdb_ci", "cmdb_rel_ci", "incident", "change_request"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ingest", "servicenow", table+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Result []map[string]json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("%s fixture: %v", table, err)
		}
		f.tables[table] = env.Result
	}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func snError(w http.ResponseWriter, status int, msg, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"message": msg, "detail": detail}, "status": "failure"})
}

func fieldValue(raw json.RawMessage) string {
	var o struct {
		Value string `json:"value"`
	}
	if json.Unmarshal(raw, &o) == nil {
		return o.Value
	}
	var s string
	json.Unmarshal(raw, &s)
	return s
}

func (f *fakeSN) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.URL.RequestURI())
	user, pass, basic := r.BasicAuth()
	bearer := r.Header.Get("Authorization") == "Bearer good-token"
	if !(basic && user == "lbsys" && pass == "s3cret") && !bearer {
		snError(w, http.StatusUnauthorized, "User Not Authenticated", "Required to provide Auth information")
		return
	}
	if len(f.failures) > 0 {
		fail := f.failures[0]
		f.failures = f.failures[1:]
		fail(w)
		return
	}
	table, ok := strings.CutPrefix(r.URL.Path, "/api/now/table/")
	rows, known := f.tables[table]
	if !ok || !known {
		snError(w, http.StatusNotFound, "Invalid table "+table, "")
		return
	}
	q := r.URL.Query()
	if q.Get("sysparm_display_value") != "all" {
		f.t.Errorf("%s: sysparm_display_value=%q, want all", table, q.Get("sysparm_display_value"))
	}
	query := q.Get("sysparm_query")
	f.queries[table] = append(f.queries[table], query)
	// The encoded query subset the client uses: [sys_updated_on>=X^]ORDERBY…
	var since string
	for _, term := range strings.Split(query, "^") {
		if v, ok := strings.CutPrefix(term, "sys_updated_on>="); ok {
			since = v
		}
	}
	var sel []map[string]json.RawMessage
	for _, row := range rows {
		if since == "" || fieldValue(row["sys_updated_on"]) >= since {
			sel = append(sel, row)
		}
	}
	if strings.Contains(query, "ORDERBYsys_updated_on") {
		sort.SliceStable(sel, func(i, j int) bool {
			a, b := fieldValue(sel[i]["sys_updated_on"]), fieldValue(sel[j]["sys_updated_on"])
			if a != b {
				return a < b
			}
			return fieldValue(sel[i]["sys_id"]) < fieldValue(sel[j]["sys_id"])
		})
	}
	limit, _ := strconv.Atoi(q.Get("sysparm_limit"))
	if limit <= 0 {
		limit = 10000
	}
	offset, _ := strconv.Atoi(q.Get("sysparm_offset"))
	total := len(sel)
	page := sel[min(offset, total):min(offset+limit, total)]
	if fields := q.Get("sysparm_fields"); fields != "" {
		keep := strings.Split(fields, ",")
		var proj []map[string]json.RawMessage
		for _, row := range page {
			p := map[string]json.RawMessage{}
			for k, v := range row {
				if slices.Contains(keep, k) {
					p[k] = v
				}
			}
			proj = append(proj, p)
		}
		page = proj
	}
	if !f.noLink && total > limit {
		link := func(off int, rel string) string {
			u := *r.URL
			u.Scheme, u.Host = "http", r.Host
			if f.foreignNext && rel == "next" {
				u.Host = "evil.example.com"
			}
			qq := u.Query()
			qq.Set("sysparm_offset", strconv.Itoa(off))
			u.RawQuery = qq.Encode()
			return fmt.Sprintf("<%s>;rel=%q", u.String(), rel)
		}
		links := []string{link(0, "first")}
		if offset > 0 {
			links = append(links, link(max(offset-limit, 0), "prev"))
		}
		if offset+limit < total {
			links = append(links, link(offset+limit, "next"))
		}
		links = append(links, link((total-1)/limit*limit, "last"))
		w.Header().Set("Link", strings.Join(links, ","))
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	if page == nil {
		page = []map[string]json.RawMessage{}
	}
	json.NewEncoder(w).Encode(map[string]any{"result": page})
}

// update changes a fixture record (a later edit in the instance).
func (f *fakeSN) update(table, number string, fields map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, row := range f.tables[table] {
		if fieldValue(row["number"]) != number {
			continue
		}
		for k, v := range fields {
			b, _ := json.Marshal(map[string]string{"display_value": v, "value": v})
			row[k] = b
		}
		return
	}
	f.t.Fatalf("no %s %s", table, number)
}

func (f *fakeSN) opts(ns *noSleep) ServiceNowOptions {
	// Tables: the default (cmdb_ci, cmdb_rel_ci, incident, change_request).
	return ServiceNowOptions{Instance: f.srv.URL, User: "lbsys", Password: "s3cret", PageSize: 2,
		Retry: Retry{Sleep: ns.sleep}}
}

func TestServiceNowSyncPagingAndValidation(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	f := newFakeSN(t)
	ns := &noSleep{}
	rep, err := runSource(t, st, "servicenow", func(ctx context.Context, run *Run) error {
		return ImportServiceNow(ctx, run, f.opts(ns))
	})
	if err != nil {
		t.Fatal(err)
	}
	// 5 services + 2 other CIs, 6 relations, 3 incidents, 3 changes.
	if rep.Inserted != 7+6+3+3 || rep.Updated != 0 {
		t.Errorf("report: %s", rep)
	}
	want := map[store.Reason]int64{store.ReasonMissingField: 4, store.ReasonUnknownReference: 2,
		store.ReasonUnparseableTime: 1, store.ReasonNotANumber: 1}
	for r, n := range want {
		if rep.Reasons[r] != n {
			t.Errorf("%s: %d quarantined, want %d (%s)", r, rep.Reasons[r], n, rep)
		}
	}
	q := quarantined(t, st)
	for _, tc := range []struct {
		loc    string
		reason store.Reason
		detail string
	}{
		{"cmdb_ci/" + sysID("nameless"), store.ReasonMissingField, "name"},
		{"cmdb_rel_ci/" + sysID("rel-checkout-ghost"), store.ReasonUnknownReference, sysID("ghost-ci")},
		{"cmdb_rel_ci/" + sysID("rel-no-type"), store.ReasonMissingField, "type"},
		{"incident/" + sysID("INC0010004"), store.ReasonUnknownReference, "business_service"},
		{"incident/" + sysID("INC0010005"), store.ReasonMissingField, "opened_at"},
		{"incident/" + sysID("INC0010006"), store.ReasonUnparseableTime, "14/11/2026"},
		{"incident/" + sysID("INC0010007"), store.ReasonNotANumber, "priority"},
		{"change_request/" + sysID("CHG0030004"), store.ReasonMissingField, "start_date"},
	} {
		got, ok := q[tc.loc]
		if !ok || got.Reason != tc.reason || !strings.Contains(got.Detail, tc.detail) || got.Raw == "" {
			t.Errorf("%s: quarantined %+v, want %s mentioning %q", tc.loc, got, tc.reason, tc.detail)
		}
	}
	// Paging: pages of 2 followed through the Link header.
	if n := len(f.queries["incident"]); n != 4 {
		t.Errorf("incident pages read: %d, want 4 (7 records, 2 per page)", n)
	}
	// The dependency graph from cmdb_rel_ci.
	g, err := st.Graph(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if up := g.Upstream("cart"); !slices.Equal(up, []string{"checkout", "inventory", "payment", "sn:" + sysID("orders-db")}) {
		t.Errorf("upstream(cart) = %v", up)
	}
	if g.FanOut("checkout") != 2 || g.FanIn("checkout") != 1 {
		t.Errorf("checkout fan-out %d fan-in %d", g.FanOut("checkout"), g.FanIn("checkout"))
	}
	if down := g.Downstream("sn:" + sysID("web-01")); !slices.Equal(down, []string{"catalog"}) {
		t.Errorf("downstream(web-01) = %v (Runs on::Runs is a dependency)", down)
	}
	// Tickets: service from business_service, window, open incident.
	inc, _ := st.Incidents(ctx, store.TicketQuery{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	if len(inc) != 3 {
		t.Fatalf("incidents: %+v", inc)
	}
	i1 := inc[0]
	if i1.Number != "INC0010001" || i1.Service != "checkout" || i1.Priority != 2 || i1.State != "Resolved" ||
		!i1.Start.Equal(time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)) || !i1.End.Equal(time.Date(2026, 11, 10, 11, 30, 0, 0, time.UTC)) {
		t.Errorf("INC0010001 = %+v", i1)
	}
	if i2 := inc[1]; i2.Service != "payment" || !i2.End.IsZero() || i2.CI != "sn:"+sysID("orders-db") || i2.Priority != 1 {
		t.Errorf("INC0010002 = %+v", i2)
	}
	if i3 := inc[2]; i3.Service != "" || i3.CI != "sn:"+sysID("web-01") {
		t.Errorf("INC0010003 (a server, no service) = %+v", i3)
	}
	chg, _ := st.Changes(ctx, store.TicketQuery{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	if len(chg) != 3 || chg[0].Number != "CHG0030001" || chg[0].Category != "normal" || chg[0].Attrs["risk"] != "Moderate" {
		t.Fatalf("changes: %+v", chg)
	}
	if chg[0].Number != "CHG0030001" || chg[1].Number != "CHG0030003" || !chg[1].Start.Equal(time.Date(2026, 11, 16, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("the emergency change uses its work window: %+v", chg[1])
	}
	if len(ns.waits) != 0 {
		t.Errorf("waits without failures: %v", ns.waits)
	}
}

func sysID(key string) string {
	// The fixtures' sys_ids are md5 hex of a key (see testdata/ingest/README.md).
	return md5hex(key)
}

func TestServiceNowIncrementalSync(t *testing.T) {
	st := testStore(t)
	f := newFakeSN(t)
	ns := &noSleep{}
	o := f.opts(ns)
	o.Overlap = time.Second
	sync := func() Report {
		t.Helper()
		rep, err := runSource(t, st, "servicenow", func(ctx context.Context, run *Run) error { return ImportServiceNow(ctx, run, o) })
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	first := sync()
	f.queries = map[string][]string{}
	second := sync()
	// Only what changed at or after the watermark (the newest records,
	// read again because of >=) comes back: unchanged, or refused again
	// (the newest CI, incident and change of the fixtures are bad ones).
	again := second.Unchanged + second.Quarantined
	if second.Inserted != 0 || second.Updated != 0 || again == 0 || again >= first.Inserted+first.Quarantined {
		t.Errorf("second sync: %s (first: %s)", second, first)
	}
	if qs := f.queries["incident"]; len(qs) != 1 || !strings.HasPrefix(qs[0], "sys_updated_on>=2026-11-14 10:59:59^ORDERBYsys_updated_on") {
		t.Errorf("incremental incident query = %q", qs)
	}
	// An incident is resolved in the instance: the next sync updates it.
	f.update("incident", "INC0010002", map[string]string{"resolved_at": "2026-11-20 10:00:00", "sys_updated_on": "2026-11-20 10:00:00"})
	third := sync()
	if third.Updated != 1 || third.Inserted != 0 {
		t.Errorf("third sync: %s", third)
	}
	tk, err := st.Ticket(context.Background(), "sn:incident:"+sysID("INC0010002"))
	if err != nil || !tk.End.Equal(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("resolved incident: %+v %v", tk, err)
	}
	// --full reads everything again.
	o.Full = true
	if full := sync(); full.Unchanged < first.Inserted {
		t.Errorf("full sync: %s", full)
	}
}

func TestServiceNowOffsetPagingWithoutLink(t *testing.T) {
	st := testStore(t)
	f := newFakeSN(t)
	f.noLink = true
	o := f.opts(&noSleep{})
	o.Tables = []string{"cmdb_ci_service"}
	rep, err := runSource(t, st, "servicenow", func(ctx context.Context, run *Run) error { return ImportServiceNow(ctx, run, o) })
	if err != nil || rep.Inserted != 5 {
		t.Fatalf("%s %v", rep, err)
	}
	// 6 records, 2 per page: offsets 0, 2, 4; X-Total-Count says that was
	// all.
	if n := len(f.queries["cmdb_ci_service"]); n != 3 {
		t.Errorf("%d pages, want 3", n)
	}
}

func TestServiceNowAuthAndHTTPFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mod      func(o *ServiceNowOptions, f *fakeSN)
		wantErr  string
		requests int
		waits    int
	}{
		{"wrong password", func(o *ServiceNowOptions, f *fakeSN) { o.Password = "nope" },
			"authentication failed at 127.0.0.1", 1, 0},
		{"expired token", func(o *ServiceNowOptions, f *fakeSN) { o.User, o.Password, o.Token = "", "", "old-token" },
			"bearer token", 1, 0},
		{"no read role", func(o *ServiceNowOptions, f *fakeSN) {
			o.Tables = []string{"change_request"}
			f.failures = []func(http.ResponseWriter){func(w http.ResponseWriter) {
				snError(w, http.StatusForbidden, "Operation Failed", "ACL Exception Read Failed")
			}}
		}, "may not read table change_request (403)", 1, 0},
		{"unknown table", func(o *ServiceNowOptions, f *fakeSN) { o.Tables = []string{"cmdb_ci_nope"} },
			"table cmdb_ci_nope not found", 1, 0},
		{"429 then 503 then ok", func(o *ServiceNowOptions, f *fakeSN) {
			o.Tables, o.PageSize = []string{"cmdb_ci"}, 100
			f.failures = []func(http.ResponseWriter){
				func(w http.ResponseWriter) {
					w.Header().Set("Retry-After", "7")
					w.Header().Set("X-RateLimit-Limit", "100")
					snError(w, http.StatusTooManyRequests, "Rate limit exceeded", "")
				},
				func(w http.ResponseWriter) { snError(w, http.StatusServiceUnavailable, "Service Unavailable", "") },
			}
		}, "", 3, 2},
		{"5xx until giving up", func(o *ServiceNowOptions, f *fakeSN) {
			o.Tables = []string{"cmdb_ci"}
			o.Retry.Attempts = 3
			for range 5 {
				f.failures = append(f.failures, func(w http.ResponseWriter) { snError(w, http.StatusBadGateway, "Bad Gateway", "") })
			}
		}, "giving up after 3 attempts", 3, 2},
		{"Retry-After too long", func(o *ServiceNowOptions, f *fakeSN) {
			o.Tables = []string{"cmdb_ci"}
			f.failures = []func(http.ResponseWriter){func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", "3600")
				snError(w, http.StatusTooManyRequests, "Rate limit exceeded", "")
			}}
		}, "retry after 1h0m0s", 1, 0},
		{"malformed JSON", func(o *ServiceNowOptions, f *fakeSN) {
			o.Tables = []string{"cmdb_ci"}
			f.failures = []func(http.ResponseWriter){func(w http.ResponseWriter) { w.Write([]byte(`{"result": [{"sys_id": `)) }}
		}, "not a Table API answer", 1, 0},
		{"foreign next link", func(o *ServiceNowOptions, f *fakeSN) { o.Tables = []string{"cmdb_ci_service"}; f.foreignNext = true },
			"refusing to send credentials", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := testStore(t)
			f := newFakeSN(t)
			ns := &noSleep{}
			o := f.opts(ns)
			tc.mod(&o, f)
			_, err := runSource(t, st, "servicenow", func(ctx context.Context, run *Run) error { return ImportServiceNow(ctx, run, o) })
			if tc.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.wantErr)
			}
			if len(f.requests) != tc.requests {
				t.Errorf("%d requests, want %d: %v", len(f.requests), tc.requests, f.requests)
			}
			if len(ns.waits) != tc.waits {
				t.Errorf("waits %v, want %d", ns.waits, tc.waits)
			}
			if tc.name == "429 then 503 then ok" && (ns.waits[0] != 7*time.Second || ns.waits[1] > time.Second) {
				t.Errorf("waits %v: want Retry-After's 7s, then a jittered backoff ≤ 1s (2nd attempt)", ns.waits)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error leaks the password: %v", err)
			}
		})
	}
}

func TestServiceNowRefusesPlainHTTPAndMissingCredentials(t *testing.T) {
	st := testStore(t)
	for _, tc := range []struct {
		o    ServiceNowOptions
		want string
	}{
		{ServiceNowOptions{Instance: "http://acme.service-now.com", User: "u", Password: "p"}, "use https"},
		{ServiceNowOptions{Instance: "https://acme.service-now.com"}, "no credentials"},
		{ServiceNowOptions{Instance: "acme", User: "u", Password: "p"}, "want a URL"},
		{ServiceNowOptions{Instance: "https://acme.service-now.com", Token: "t", Tables: []string{"sys_user"}}, "not supported"},
	} {
		_, err := runSource(t, st, "servicenow", func(ctx context.Context, run *Run) error { return ImportServiceNow(ctx, run, tc.o) })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestSNFieldShapes(t *testing.T) {
	for _, tc := range []struct {
		in                   string
		value, display, link string
	}{
		{`"abc"`, "abc", "abc", ""},
		{`""`, "", "", ""},
		{`null`, "", "", ""},
		{`12`, "12", "12", ""},
		{`true`, "true", "true", ""},
		{`{"link": "https://x/api/now/table/sys_user/1", "value": "1"}`, "1", "1", "https://x/api/now/table/sys_user/1"},
		{`{"display_value": "Ada", "link": "https://x/y", "value": "1"}`, "1", "Ada", "https://x/y"},
		{`{"display_value": "2 - High", "value": "2"}`, "2", "2 - High", ""},
		{`{"display_value": null, "value": null}`, "", "", ""},
		{`{"display_value": 3, "value": 3}`, "3", "3", ""},
		{`["a"]`, `["a"]`, `["a"]`, ""},
	} {
		var f snField
		if err := json.Unmarshal([]byte(tc.in), &f); err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if f.Value != tc.value || f.Display != tc.display || f.Link != tc.link {
			t.Errorf("%s = %+v", tc.in, f)
		}
	}
}

func TestParseLinkHeader(t *testing.T) {
	h := `<https://x.service-now.com/api/now/table/cmdb_ci_server?sysparm_query=sys_class_nameINa%2Cb&sysparm_offset=0&sysparm_limit=10000>;rel="first",` +
		`<https://x.service-now.com/api/now/table/cmdb_ci_server?sysparm_offset=10000&sysparm_limit=10000>;rel="next",` +
		`<https://x.service-now.com/api/now/table/cmdb_ci_server?sysparm_offset=20000&sysparm_limit=10000>; rel="last"`
	l := parseLinkHeader(h)
	if !strings.Contains(l["next"], "sysparm_offset=10000") || !strings.Contains(l["last"], "offset=20000") || !strings.Contains(l["first"], "a%2Cb") {
		t.Fatalf("links = %v", l)
	}
	if len(parseLinkHeader("garbage<")) != 0 || len(parseLinkHeader("")) != 0 {
		t.Fatal("garbage parsed as links")
	}
	u, _ := url.Parse(l["next"])
	if u.Query().Get("sysparm_limit") != "10000" {
		t.Fatal(u)
	}
}

func TestParseSNPageRowProblems(t *testing.T) {
	recs, problems, err := ParseSNPage([]byte(`{"result": [{"sys_id": "1", "name": "a"}, 42, null, {"sys_id": {"value": "2"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || len(problems) != 2 || problems[0].Reason != store.ReasonMalformed {
		t.Fatalf("recs %v problems %v", recs, problems)
	}
	for _, body := range []string{`[]`, `{"result": {}}`, `{}`, `{"error": {"message": "No Record found", "detail": "x"}, "status": "failure"}`} {
		if _, _, err := ParseSNPage([]byte(body)); err == nil {
			t.Errorf("%s: no error", body)
		}
	}
}

func TestRelKind(t *testing.T) {
	for in, want := range map[string]string{"Depends on::Used by": store.KindDependsOn, "Runs on::Runs": store.KindDependsOn,
		"Contains::Contained by": "contains", "Cluster of::Cluster": "contains", "Backs up::Backed up by": "backs_up", "": "related"} {
		if got := relKind(in); got != want {
			t.Errorf("relKind(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestServiceNowDefaultReadsEveryCIClass is issue #16: by default the sync
// reads cmdb_ci, the base table of every class, so an incident on a server
// or a database (here INC0010003 on the Linux server web-01) is stored with
// its CI, which keeps its class. With only cmdb_ci_service (the default
// before) it was quarantined as unknown_reference.
func TestServiceNowDefaultReadsEveryCIClass(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		tables    []string
		inc3      bool
		unknown   int64
		servers   int
		relations int
	}{
		{nil, true, 2, 1, 6}, // the default: cmdb_ci
		{[]string{"cmdb_ci_service", "cmdb_rel_ci", "incident", "change_request"}, false, 5, 0, 4}, // before
	} {
		st := testStore(t)
		f := newFakeSN(t)
		o := f.opts(&noSleep{})
		o.Tables = tc.tables
		rep, err := runSource(t, st, "servicenow", func(ctx context.Context, run *Run) error { return ImportServiceNow(ctx, run, o) })
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Ticket(ctx, "sn:incident:"+sysID("INC0010003"))
		if (err == nil) != tc.inc3 || rep.Reasons[store.ReasonUnknownReference] != tc.unknown {
			t.Errorf("tables %v: INC0010003 stored: %v (%v); %s", tc.tables, err == nil, err, rep)
		}
		servers, _ := st.CIs(ctx, store.CIFilter{Class: "cmdb_ci_linux_server"})
		if len(servers) != tc.servers {
			t.Errorf("tables %v: %d Linux servers stored: %+v", tc.tables, len(servers), servers)
		}
		if tc.tables == nil && len(servers) == 1 {
			if servers[0].Name != "web-01.dc1" || servers[0].Service != "" {
				t.Errorf("web-01: %+v", servers[0])
			}
			svc, _ := st.CIs(ctx, store.CIFilter{Class: "cmdb_ci_service"})
			if len(svc) != 5 || svc[0].Service == "" {
				t.Errorf("service CIs from the base table: %+v", svc)
			}
		}
		if s, _ := st.Stats(ctx); s.Relations != int64(tc.relations) {
			t.Errorf("tables %v: %d relations", tc.tables, s.Relations)
		}
	}
	if !slices.Equal(DefaultServiceNowTables, []string{"cmdb_ci", "cmdb_rel_ci", "incident", "change_request"}) {
		t.Errorf("default tables %v", DefaultServiceNowTables)
	}
}

// TestServiceNowFutureTimes is issue #13 item 6 for ServiceNow: an incident
// resolved "in 2126" is quarantined as future_time (stored, it was an
// incident that never ends), and a record whose sys_updated_on is 2126 is
// stored but does not move the table's watermark, which never passes the
// run's clock: before, the watermark became 2126 and every later sync asked
// for sys_updated_on>=2126, so the next real update was never read.
func TestServiceNowFutureTimes(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	f := newFakeSN(t)
	o := f.opts(&noSleep{})
	o.Overlap = time.Second
	f.update("incident", "INC0010001", map[string]string{"resolved_at": "2126-11-10 11:30:00"})
	f.update("incident", "INC0010002", map[string]string{"sys_updated_on": "2126-11-12 14:05:00"})
	sync := func() Report {
		t.Helper()
		rep, err := runSource(t, st, "servicenow", func(ctx context.Context, run *Run) error { return ImportServiceNow(ctx, run, o) })
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := sync()
	first := rep.First[store.ReasonFutureTime]
	if rep.Reasons[store.ReasonFutureTime] != 1 || first.Location != "incident/"+sysID("INC0010001") || !strings.Contains(first.Detail, "resolved_at 2126-11-10T11:30:00Z") {
		t.Fatalf("report %s, first future_time %+v", rep, first)
	}
	if _, err := st.Ticket(ctx, "sn:incident:"+sysID("INC0010002")); err != nil {
		t.Errorf("the incident updated in 2126 was not stored: %v", err)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "incident: 1 records were updated") || !strings.Contains(rep.Notes[0], "2126-11-12 14:05:00") {
		t.Errorf("notes %q", rep.Notes)
	}
	wm, _, _ := st.SyncState(ctx, "servicenow:"+strings.TrimPrefix(f.srv.URL, "http://")+":incident")
	if wm != "2026-11-14 11:00:00" {
		t.Errorf("incident watermark %q", wm)
	}
	// A real update afterwards is read by the next incremental sync.
	f.update("incident", "INC0010007", map[string]string{"priority": "3", "sys_updated_on": "2026-11-20 10:00:00"})
	if rep := sync(); rep.Inserted != 1 {
		t.Errorf("next sync: %s", rep)
	}
	if tk, err := st.Ticket(ctx, "sn:incident:"+sysID("INC0010007")); err != nil || tk.Priority != 3 {
		t.Errorf("INC0010007 after its update: %+v %v", tk, err)
	}
}

// TestServiceNowWatermarkNeverPassesTheClock: an instance whose clock runs
// ahead (within the allowed lead) cannot push the watermark past the run's
// clock, so nothing updated in between is skipped.
func TestServiceNowWatermarkNeverPassesTheClock(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 14, 10, 30, 0, 0, time.UTC)
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "s.db"), store.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFakeSN(t)
	o := f.opts(&noSleep{})
	o.Tables = []string{"cmdb_ci", "incident"}
	if _, err := runSource(t, st, "servicenow", func(ctx context.Context, run *Run) error { return ImportServiceNow(ctx, run, o) }); err != nil {
		t.Fatal(err)
	}
	// INC0010007 says 11:00, half an hour after the run's clock.
	wm, _, _ := st.SyncState(ctx, "servicenow:"+strings.TrimPrefix(f.srv.URL, "http://")+":incident")
	if wm != "2026-11-14 10:30:00" {
		t.Errorf("watermark %q, want the run's clock", wm)
	}
}
