package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

// ServiceNow Table API client: GET /api/now/table/{table} with
// sysparm_display_value=all, paged by sysparm_limit/sysparm_offset and the
// Link header, ordered by sys_updated_on for incremental sync. The formats
// are those of the Table API reference (servicenow.com/docs, "Table API",
// GET /now/table/{tableName}) and the inbound REST rate-limiting page (429
// with Retry-After); the tests cite them in detail.

// DefaultServiceNowTables are read in this order: CIs before the relations
// and tickets that refer to them. CIs come from cmdb_ci, the base table of
// every class: incidents and relations name servers, databases and
// application instances as often as services (7% of the incidents of a
// realistic instance were on other classes, and were quarantined as
// unknown_reference when only cmdb_ci_service was read). Each CI keeps its
// class (sys_class_name).
var DefaultServiceNowTables = []string{"cmdb_ci", "cmdb_rel_ci", "incident", "change_request"}

// ServiceNowOptions configure a sync.
type ServiceNowOptions struct {
	// Instance is the base URL, e.g. https://acme.service-now.com. Plain
	// http is refused except on loopback (tests), so credentials never
	// cross a network in clear.
	Instance string
	// Basic authentication, or a bearer (OAuth) Token.
	User, Password, Token string
	// Tables to read; default DefaultServiceNowTables. cmdb_ci (or any
	// cmdb_ci_* class table) reads CIs, cmdb_rel_ci relations, incident and
	// change_request tickets. They are read CIs first whatever the order.
	Tables []string
	// Query is an extra encoded query ANDed to every table's (for example
	// "operational_status=1").
	Query string
	// PageSize is sysparm_limit. Default 1000.
	PageSize int
	// Full ignores the saved watermarks and reads everything again.
	Full bool
	// Overlap re-reads this much before each table's watermark. Encoded
	// query date literals are read in the integration user's time zone
	// while sys_updated_on values come back in UTC; the overlap (default
	// 14h, the widest UTC offset) makes sure no update is skipped, and
	// re-read records count as unchanged. Set it to 1s when the integration
	// user's time zone is UTC.
	Overlap time.Duration
	Client  *http.Client
	Retry   Retry
}

// snField is a Table API field: a plain string (or number) with
// sysparm_display_value=false, {"value","link"} for a reference, and
// {"display_value","value"[,"link"]} with sysparm_display_value=all; an
// empty reference is "".
type snField struct {
	Value, Display, Link string
}

func (f *snField) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		*f = snField{}
		return nil
	}
	switch b[0] {
	case '{':
		var o map[string]json.RawMessage
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*f = snField{Value: scalar(o["value"]), Display: scalar(o["display_value"]), Link: scalar(o["link"])}
		if _, ok := o["display_value"]; !ok {
			f.Display = f.Value
		}
		return nil
	case '[':
		// Not a Table API field shape; keep the JSON so nothing is lost.
		f.Value, f.Display = string(b), string(b)
		return nil
	}
	s := scalar(b)
	*f = snField{Value: s, Display: s}
	return nil
}

func scalar(b json.RawMessage) string {
	if len(b) == 0 || string(b) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	return string(b)
}

// SNRecord is one row of a Table API answer.
type SNRecord map[string]snField

func (r SNRecord) value(k string) string   { return strings.TrimSpace(r[k].Value) }
func (r SNRecord) display(k string) string { return strings.TrimSpace(r[k].Display) }

// ParseSNPage reads a Table API answer body: {"result": [...]}. A body that
// is not that envelope is an error; a row that is not an object is a
// Problem (the rest of the page is still read).
func ParseSNPage(body []byte) ([]SNRecord, []Problem, error) {
	var env struct {
		Result *json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
			Detail  string `json:"detail"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, nil, fmt.Errorf("not a Table API answer ({\"result\": [...]}): %w", err)
	}
	if env.Error != nil {
		return nil, nil, fmt.Errorf("servicenow: %s (%s)", env.Error.Message, env.Error.Detail)
	}
	if env.Result == nil {
		return nil, nil, errors.New(`not a Table API answer: no "result"`)
	}
	var rows []json.RawMessage
	if err := json.Unmarshal(*env.Result, &rows); err != nil {
		return nil, nil, fmt.Errorf(`"result" is not a list: %w`, err)
	}
	out := make([]SNRecord, 0, len(rows))
	var problems []Problem
	for i, raw := range rows {
		var rec SNRecord
		if err := json.Unmarshal(raw, &rec); err != nil || rec == nil {
			detail := "not an object"
			if err != nil {
				detail = err.Error()
			}
			problems = append(problems, Problem{Location: fmt.Sprintf("result[%d]", i), Reason: store.ReasonMalformed, Detail: detail, Raw: string(raw)})
			continue
		}
		out = append(out, rec)
	}
	return out, problems, nil
}

// snLayout is the Table API's date-time value format (UTC).
const snLayout = "2006-01-02 15:04:05"

// snTime reads a Table API date-time value ("2006-01-02 15:04:05", UTC).
func snTime(r SNRecord, k string) (time.Time, *Problem) {
	v := r.value(k)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse("2006-01-02 15:04:05", v)
	if err != nil {
		if t, err = time.Parse("2006-01-02", v); err != nil {
			return time.Time{}, &Problem{Reason: store.ReasonUnparseableTime, Detail: fmt.Sprintf("%s %q is not \"2006-01-02 15:04:05\"", k, v)}
		}
	}
	return t.UTC(), nil
}

func snID(sysID string) string { return "sn:" + sysID }

// serviceClasses are CI classes that stand for a routed service.
var serviceClasses = map[string]bool{"cmdb_ci_service": true, "cmdb_ci_service_auto": true,
	"cmdb_ci_service_discovered": true, "cmdb_ci_service_technical": true, "cmdb_ci_service_business": true,
	"service_offering": true}

// MapSNCI turns a CI row into a store.CI. A service CI's lbsys service name
// is its u_lbsys_service field when the instance has one, else its name in
// lower case.
func MapSNCI(r SNRecord, table string) (store.CI, *Problem) {
	id, name := r.value("sys_id"), r.display("name")
	switch {
	case id == "":
		return store.CI{}, &Problem{Reason: store.ReasonMissingField, Detail: "sys_id is missing"}
	case name == "":
		return store.CI{}, &Problem{Reason: store.ReasonMissingField, Detail: "name is missing"}
	}
	updated, p := snTime(r, "sys_updated_on")
	if p != nil {
		return store.CI{}, p
	}
	class := r.value("sys_class_name")
	if class == "" {
		class = table
	}
	c := store.CI{ID: snID(id), Name: name, Class: class, Source: "servicenow", Updated: updated, Attrs: map[string]string{}}
	if serviceClasses[class] || (class == table && strings.HasPrefix(table, "cmdb_ci_service")) {
		c.Service = strings.ToLower(name)
	}
	if s := r.value("u_lbsys_service"); s != "" {
		c.Service = s
	}
	for _, k := range []string{"operational_status", "busines_criticality", "environment", "used_for", "owned_by", "support_group", "service_classification"} {
		if v := r.display(k); v != "" {
			c.Attrs[k] = v
		}
	}
	return c, nil
}

// relKind maps a cmdb_rel_type name ("Depends on::Used by") to a relation
// kind: the parent-side phrase says how the parent relates to the child.
func relKind(typeName string) string {
	parent, _, _ := strings.Cut(typeName, "::")
	switch strings.ToLower(strings.TrimSpace(parent)) {
	case "depends on", "uses", "runs on", "hosted on", "calls", "sends data to", "connects to",
		"virtualized by", "provided by", "consumes", "receives data from", "powered by", "stored on":
		return store.KindDependsOn
	case "contains", "members", "cluster of", "owns", "includes", "instantiates":
		return "contains"
	case "":
		return "related"
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(parent)), " ", "_")
}

// MapSNRelation turns a cmdb_rel_ci row into a store.Relation (ends not
// yet checked against the store).
func MapSNRelation(r SNRecord) (store.Relation, *Problem) {
	id, parent, child := r.value("sys_id"), r.value("parent"), r.value("child")
	typ := r.display("type")
	for _, f := range []struct{ k, v string }{{"sys_id", id}, {"parent", parent}, {"child", child}, {"type", r.value("type")}} {
		if f.v == "" {
			return store.Relation{}, &Problem{Reason: store.ReasonMissingField, Detail: f.k + " is missing"}
		}
	}
	if typ == r.value("type") && !strings.Contains(typ, "::") {
		// Without display values the type is only a sys_id of
		// cmdb_rel_type: nothing says which way the dependency goes.
		return store.Relation{}, &Problem{Reason: store.ReasonInvalidValue,
			Detail: fmt.Sprintf("type %q has no name (\"Depends on::Used by\"); read with sysparm_display_value=all", typ)}
	}
	updated, p := snTime(r, "sys_updated_on")
	if p != nil {
		return store.Relation{}, p
	}
	return store.Relation{ID: "sn:rel:" + id, Parent: snID(parent), Child: snID(child), Kind: relKind(typ), Type: typ,
		Source: "servicenow", Updated: updated}, nil
}

// leadingInt reads "2" and "2 - High" as 2.
func leadingInt(s string) (int, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 3 {
		return 0, false
	}
	n, _ := strconv.Atoi(s[:i])
	return n, true
}

// MapSNTicket turns an incident or change_request row into a store.Ticket
// (CI references not yet resolved).
func MapSNTicket(r SNRecord, table string) (store.Ticket, *Problem) {
	kind := store.Incident
	if table == "change_request" {
		kind = store.Change
	}
	t := store.Ticket{Kind: kind, Source: "servicenow", Attrs: map[string]string{}}
	id := r.value("sys_id")
	t.Number = r.display("number")
	switch {
	case id == "":
		return t, &Problem{Reason: store.ReasonMissingField, Detail: "sys_id is missing"}
	case t.Number == "":
		return t, &Problem{Reason: store.ReasonMissingField, Detail: "number is missing"}
	}
	t.ID = "sn:" + table + ":" + id
	times := map[string]*time.Time{"opened_at": &t.Opened, "resolved_at": &t.Resolved, "closed_at": &t.Closed, "sys_updated_on": &t.Updated}
	var start, end, workStart, workEnd time.Time
	if kind == store.Change {
		times["start_date"], times["end_date"], times["work_start"], times["work_end"] = &start, &end, &workStart, &workEnd
	}
	for k, dst := range times {
		v, p := snTime(r, k)
		if p != nil {
			return t, p
		}
		*dst = v
	}
	if kind == store.Incident {
		if t.Opened.IsZero() {
			return t, &Problem{Reason: store.ReasonMissingField, Detail: "opened_at is missing"}
		}
		t.Start = t.Opened
		t.End = t.Resolved
		if t.End.IsZero() {
			t.End = t.Closed
		}
		t.Category = r.value("category")
	} else {
		t.Start, t.End = start, end
		if t.Start.IsZero() {
			t.Start, t.End = workStart, workEnd
		}
		if t.Start.IsZero() {
			return t, &Problem{Reason: store.ReasonMissingField, Detail: "start_date (planned) and work_start are both missing: a change needs a window"}
		}
		t.Category = r.value("type")
		if v := r.display("risk"); v != "" {
			t.Attrs["risk"] = v
		}
	}
	if !t.End.IsZero() && t.End.Before(t.Start) {
		return t, &Problem{Reason: store.ReasonInvalidValue, Detail: fmt.Sprintf("ends (%s) before it starts (%s)", t.End.Format(time.RFC3339), t.Start.Format(time.RFC3339))}
	}
	if p := r.value("priority"); p != "" {
		n, ok := leadingInt(p)
		if !ok {
			return t, &Problem{Reason: store.ReasonNotANumber, Detail: fmt.Sprintf("priority %q is not a number", p)}
		}
		t.Priority = n
	}
	t.State = r.display("state")
	t.Summary = r.display("short_description")
	t.CI = r.value("cmdb_ci")
	if t.CI != "" {
		t.CI = snID(t.CI)
	}
	// business_service is kept as a CI id in Service until resolved.
	if bs := r.value("business_service"); bs != "" {
		t.Service = snID(bs)
	}
	for _, k := range []string{"impact", "urgency", "assignment_group", "close_code"} {
		if v := r.display(k); v != "" {
			t.Attrs[k] = v
		}
	}
	return t, nil
}

// plannedAhead bounds how far ahead of the run's clock a change may be
// planned: further is a typo in a year, and a window to 2126 would mark the
// service as "in change" for a century of features.
const plannedAhead = 5 * 366 * 24 * time.Hour

// snFutureTime refuses a record whose times say it happened after the
// run's clock (plus the run's allowed lead): an incident opened, resolved
// or closed, or a change worked on, in 2126 is a typo or a broken clock,
// and stored it would be an incident that never ends. Planned change
// windows may be ahead, up to plannedAhead.
func snFutureTime(run *Run, r SNRecord, table string) *Problem {
	actual := []string{"opened_at", "resolved_at", "closed_at"}
	if table == "change_request" {
		actual = append(actual, "work_start", "work_end")
	}
	for _, k := range actual {
		if t, p := snTime(r, k); p == nil && !t.IsZero() {
			if fp := run.futureProblem(t, k); fp != nil {
				return fp
			}
		}
	}
	if table == "change_request" {
		limit := run.Now().Add(plannedAhead)
		for _, k := range []string{"start_date", "end_date"} {
			if t, p := snTime(r, k); p == nil && t.After(limit) {
				return &Problem{Reason: store.ReasonFutureTime, Detail: fmt.Sprintf("%s %s is more than 5 years ahead of this run's clock: a typo in the year?", k, t.Format(time.RFC3339))}
			}
		}
	}
	return nil
}

// snFields are the fields asked for per kind of table (sysparm_fields keeps
// pages small).
var snFields = map[string]string{
	"ci":       "sys_id,name,sys_class_name,sys_updated_on,operational_status,busines_criticality,environment,used_for,owned_by,support_group,service_classification,u_lbsys_service",
	"rel":      "sys_id,parent,child,type,sys_updated_on",
	"incident": "sys_id,number,short_description,priority,state,category,impact,urgency,assignment_group,close_code,opened_at,resolved_at,closed_at,sys_updated_on,cmdb_ci,business_service",
	"change":   "sys_id,number,short_description,priority,state,type,risk,assignment_group,close_code,start_date,end_date,work_start,work_end,opened_at,closed_at,sys_updated_on,cmdb_ci,business_service",
}

func snTableKind(table string) (string, error) {
	switch {
	case table == "cmdb_rel_ci":
		return "rel", nil
	case table == "incident":
		return "incident", nil
	case table == "change_request":
		return "change", nil
	case table == "cmdb_ci" || strings.HasPrefix(table, "cmdb_ci_"):
		return "ci", nil
	}
	return "", fmt.Errorf("servicenow: table %q is not supported: use cmdb_ci, cmdb_ci_* (CI classes), cmdb_rel_ci, incident or change_request", table)
}

// parseLinkHeader reads RFC 8288 links: <uri>; rel="next", <uri>; rel="last".
func parseLinkHeader(h string) map[string]string {
	out := map[string]string{}
	for {
		i := strings.IndexByte(h, '<')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(h[i:], '>')
		if j < 0 {
			return out
		}
		uri := h[i+1 : i+j]
		h = h[i+j+1:]
		params := h
		if k := strings.IndexByte(h, '<'); k >= 0 {
			params = h[:k]
		}
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
				continue
			}
			for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(v), ",")), `"`)) {
				out[strings.ToLower(rel)] = uri
			}
		}
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// snClient does the HTTP part.
type snClient struct {
	base  *url.URL
	o     ServiceNowOptions
	auth  func(*http.Request)
	pages int
}

// ImportServiceNow syncs the tables into the store. Per table the newest
// sys_updated_on seen is saved after every page, so an interrupted sync
// resumes and the next sync reads only what changed (minus Overlap).
func ImportServiceNow(ctx context.Context, run *Run, o ServiceNowOptions) error {
	base, err := url.Parse(strings.TrimRight(o.Instance, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "https" && base.Scheme != "http") {
		return fmt.Errorf("servicenow: --instance %q: want a URL such as https://acme.service-now.com", o.Instance)
	}
	if base.Scheme == "http" && !isLoopback(base.Hostname()) {
		return fmt.Errorf("servicenow: --instance %s: use https (credentials would cross the network in clear)", base.Redacted())
	}
	c := &snClient{base: base, o: o}
	switch {
	case o.Token != "":
		c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+o.Token) }
	case o.User != "" && o.Password != "":
		c.auth = func(r *http.Request) { r.SetBasicAuth(o.User, o.Password) }
	default:
		return errors.New("servicenow: no credentials: set SERVICENOW_USER and SERVICENOW_PASSWORD (or --password-file), or SERVICENOW_TOKEN (or --token-file)")
	}
	if c.o.PageSize <= 0 {
		c.o.PageSize = 1000
	}
	if c.o.Overlap <= 0 {
		c.o.Overlap = 14 * time.Hour
	}
	if c.o.Client == nil {
		c.o.Client = &http.Client{Timeout: 2 * time.Minute}
	}
	tables := o.Tables
	if len(tables) == 0 {
		tables = DefaultServiceNowTables
	}
	// CIs first, then relations, then tickets: references resolve against
	// what is already stored.
	rank := map[string]int{"ci": 0, "rel": 1, "incident": 2, "change": 3}
	ordered := make([]string, 0, len(tables))
	for r := 0; r < 4; r++ {
		for _, t := range tables {
			k, err := snTableKind(t)
			if err != nil {
				return err
			}
			if rank[k] == r {
				ordered = append(ordered, t)
			}
		}
	}
	for _, t := range ordered {
		if err := c.syncTable(ctx, run, t); err != nil {
			return err
		}
	}
	return nil
}

func (c *snClient) stateKey(table string) string {
	return "servicenow:" + c.base.Host + c.base.Path + ":" + table
}

func (c *snClient) syncTable(ctx context.Context, run *Run, table string) error {
	kind, _ := snTableKind(table)
	key := c.stateKey(table)
	watermark := ""
	if !c.o.Full {
		v, ok, err := run.st.SyncState(ctx, key)
		if err != nil {
			return err
		}
		if ok {
			watermark = v
		}
	}
	query := "ORDERBYsys_updated_on^ORDERBYsys_id"
	if watermark != "" {
		from := watermark
		if t, err := time.Parse(snLayout, watermark); err == nil {
			from = t.Add(-c.o.Overlap).Format(snLayout)
		}
		query = "sys_updated_on>=" + from + "^" + query
	}
	if c.o.Query != "" {
		query = c.o.Query + "^" + query
	}
	q := url.Values{}
	q.Set("sysparm_query", query)
	q.Set("sysparm_display_value", "all")
	q.Set("sysparm_exclude_reference_link", "false")
	q.Set("sysparm_fields", snFields[kind])
	q.Set("sysparm_limit", strconv.Itoa(c.o.PageSize))
	q.Set("sysparm_offset", "0")
	next := c.base.String() + "/api/now/table/" + url.PathEscape(table) + "?" + q.Encode()
	seen := map[string]bool{}
	var ciCache map[string]store.CI
	newest := watermark
	futureUpdated, firstFuture := 0, ""
	defer func() {
		if futureUpdated > 0 {
			run.Note("%s: %d records were updated (sys_updated_on) more than %s after this run's clock, the first %s: they do not move the sync watermark; check the instance's clock or the records",
				table, futureUpdated, run.maxFutureValue(), firstFuture)
		}
	}()
	for next != "" {
		if seen[next] {
			return fmt.Errorf("servicenow: %s: the Link header points back to a page already read (%s)", table, next)
		}
		seen[next] = true
		resp, body, err := c.o.Retry.do(ctx, c.o.Client, func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodGet, next, nil)
			if err == nil {
				req.Header.Set("Accept", "application/json")
				c.auth(req)
			}
			return req, err
		})
		if err != nil {
			return c.explain(table, err)
		}
		c.pages++
		recs, problems, err := ParseSNPage(body)
		if err != nil {
			return fmt.Errorf("servicenow: %s: %w", table, err)
		}
		loc := func(sysID string) string { return table + "/" + sysID }
		for _, p := range problems {
			p.Location = table + " " + p.Location + " of " + next
			run.Quarantine(p)
		}
		switch kind {
		case "ci":
			var cis []store.CI
			for _, r := range recs {
				ci, p := MapSNCI(r, table)
				if p != nil {
					p.Location, p.Raw = loc(r.value("sys_id")), rawJSON(r)
					run.Quarantine(*p)
					continue
				}
				cis = append(cis, ci)
			}
			u, err := run.st.UpsertCIs(ctx, cis)
			if err != nil {
				return err
			}
			run.CountUpsert(u)
		case "rel":
			var rels []store.Relation
			var ends []string
			for _, r := range recs {
				rel, p := MapSNRelation(r)
				if p != nil {
					p.Location, p.Raw = loc(r.value("sys_id")), rawJSON(r)
					run.Quarantine(*p)
					continue
				}
				rels = append(rels, rel)
				ends = append(ends, rel.Parent, rel.Child)
			}
			known, err := run.st.KnownCIs(ctx, ends)
			if err != nil {
				return err
			}
			var ok []store.Relation
			for i, rel := range rels {
				var missing []string
				for _, e := range []string{rel.Parent, rel.Child} {
					if !known[e] {
						missing = append(missing, strings.TrimPrefix(e, "sn:"))
					}
				}
				if len(missing) > 0 {
					run.Quarantine(Problem{loc(strings.TrimPrefix(rel.ID, "sn:rel:")), store.ReasonUnknownReference,
						fmt.Sprintf("CI %s is not in the store: add its class table (for example --tables cmdb_ci,...) so it is synced first", strings.Join(missing, ", ")),
						fmt.Sprintf("%s -[%s]-> %s", rel.Parent, rel.Type, rel.Child)})
					continue
				}
				ok = append(ok, rels[i])
			}
			u, err := run.st.UpsertRelations(ctx, ok)
			if err != nil {
				return err
			}
			run.CountUpsert(u)
		default:
			if ciCache == nil {
				all, err := run.st.CIs(ctx, store.CIFilter{})
				if err != nil {
					return err
				}
				ciCache = make(map[string]store.CI, len(all))
				for _, ci := range all {
					ciCache[ci.ID] = ci
				}
			}
			var ts []store.Ticket
			for _, r := range recs {
				t, p := MapSNTicket(r, table)
				if p == nil {
					p = snFutureTime(run, r, table)
				}
				if p == nil {
					p = resolveTicket(&t, ciCache)
				}
				if p != nil {
					p.Location, p.Raw = loc(r.value("sys_id")), rawJSON(r)
					run.Quarantine(*p)
					continue
				}
				ts = append(ts, t)
			}
			u, err := run.st.UpsertTickets(ctx, ts)
			if err != nil {
				return err
			}
			run.CountUpsert(u)
		}
		// The watermark is "read up to here": it never passes the run's
		// clock, and a record updated far in the future (a typo, a broken
		// instance clock) does not move it at all. Stored as 2126, it made
		// every later sync ask for sys_updated_on>=2126 and read nothing.
		clock := run.Now().UTC().Format(snLayout)
		latest := run.Latest()
		for _, r := range recs {
			v := r.value("sys_updated_on")
			t, err := time.Parse(snLayout, v)
			if err != nil {
				continue
			}
			if t.After(latest) {
				if futureUpdated++; futureUpdated == 1 {
					firstFuture = fmt.Sprintf("%s/%s at %s", table, r.value("sys_id"), v)
				}
				continue
			}
			if v > clock {
				v = clock
			}
			if v > newest {
				newest = v
			}
		}
		if newest != watermark && newest != "" {
			if err := run.st.SetSyncState(ctx, key, newest); err != nil {
				return err
			}
		}
		if err := run.Flush(ctx); err != nil {
			return err
		}
		next, err = c.nextPage(resp, next, len(recs)+len(problems))
		if err != nil {
			return fmt.Errorf("servicenow: %s: %w", table, err)
		}
	}
	return nil
}

// resolveTicket maps the ticket's CI references to a service: the business
// service's, else the CI's. A reference the store does not know is left as
// it is when another one resolves; when none does, the ticket cannot be
// attached to the graph and is quarantined.
func resolveTicket(t *store.Ticket, cis map[string]store.CI) *Problem {
	bs := t.Service
	t.Service = ""
	var unknown []string
	if bs != "" {
		if ci, ok := cis[bs]; ok {
			t.Service = ci.Service
			if t.Service == "" {
				t.Service = ci.Name
			}
		} else {
			unknown = append(unknown, "business_service "+strings.TrimPrefix(bs, "sn:"))
		}
	}
	if t.CI != "" {
		if ci, ok := cis[t.CI]; ok {
			if t.Service == "" {
				t.Service = ci.Service
			}
		} else {
			unknown = append(unknown, "cmdb_ci "+strings.TrimPrefix(t.CI, "sn:"))
		}
	}
	if bs != "" {
		t.Attrs["business_service"] = bs
	}
	resolved := (bs != "" && !contains(unknown, "business_service")) || (t.CI != "" && !contains(unknown, "cmdb_ci"))
	if len(unknown) > 0 && !resolved {
		return &Problem{Reason: store.ReasonUnknownReference,
			Detail: strings.Join(unknown, " and ") + " not in the store: sync the CI tables first (cmdb_ci_service, or cmdb_ci for any class)"}
	}
	return nil
}

func contains(l []string, prefix string) bool {
	for _, s := range l {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func rawJSON(r SNRecord) string {
	m := make(map[string]string, len(r))
	for k, f := range r {
		m[k] = f.Value
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// nextPage follows the Link header's rel="next" (only to the instance's own
// host: credentials go nowhere else); without one, a full page means there
// may be more at the next offset.
func (c *snClient) nextPage(resp *http.Response, cur string, n int) (string, error) {
	if resp != nil {
		if h := resp.Header.Values("Link"); len(h) > 0 {
			links := parseLinkHeader(strings.Join(h, ","))
			next, ok := links["next"]
			if !ok {
				return "", nil
			}
			u, err := url.Parse(next)
			if err != nil {
				return "", fmt.Errorf("Link rel=next %q: %w", next, err)
			}
			u = c.base.ResolveReference(u)
			if u.Scheme != c.base.Scheme || u.Host != c.base.Host {
				return "", fmt.Errorf("Link rel=next points to %s, not to the instance %s: refusing to send credentials there", u.Redacted(), c.base.Host)
			}
			return u.String(), nil
		}
	}
	if n < c.o.PageSize {
		return "", nil
	}
	u, err := url.Parse(cur)
	if err != nil {
		return "", err
	}
	q := u.Query()
	off, _ := strconv.Atoi(q.Get("sysparm_offset"))
	if resp != nil {
		// X-Total-Count saves asking for an empty page after a full one.
		if total, err := strconv.Atoi(resp.Header.Get("X-Total-Count")); err == nil && off+n >= total {
			return "", nil
		}
	}
	q.Set("sysparm_offset", strconv.Itoa(off+n))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// explain turns HTTP failures into advice.
func (c *snClient) explain(table string, err error) error {
	var he *HTTPError
	if !errors.As(err, &he) {
		return fmt.Errorf("servicenow: %s: %w", table, err)
	}
	msg := he.Body
	var env struct {
		Error struct {
			Message string `json:"message"`
			Detail  string `json:"detail"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(he.Body), &env) == nil && env.Error.Message != "" {
		msg = env.Error.Message
		if env.Error.Detail != "" {
			msg += " (" + env.Error.Detail + ")"
		}
	}
	switch he.Status {
	case http.StatusUnauthorized:
		how := "check SERVICENOW_USER and SERVICENOW_PASSWORD (or --password-file)"
		if c.o.Token != "" {
			how = "check the bearer token (SERVICENOW_TOKEN or --token-file); it may have expired"
		}
		return fmt.Errorf("servicenow: authentication failed at %s (401): %s: %s", c.base.Host, how, msg)
	case http.StatusForbidden:
		return fmt.Errorf("servicenow: the user may not read table %s (403): grant it a role with read access (for example itil, cmdb_read): %s", table, msg)
	case http.StatusNotFound:
		return fmt.Errorf("servicenow: table %s not found at %s (404): check --instance and --tables: %s", table, c.base.Host, msg)
	}
	return fmt.Errorf("servicenow: %s: %w", table, err)
}
