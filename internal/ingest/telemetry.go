package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

// Telemetry metrics: one series per record field. Latency quantiles of a
// second without requests are not written (the proxy reports 0 there; the
// truth is "no data", a gap).
var telemetryCounts = []string{"requests", "errors", "in_flight", "bytes_in", "bytes_out"}
var telemetryLatencies = []string{"p50_ms", "p90_ms", "p99_ms"}

// jsonKeys maps metric names to the record's JSON keys.
var jsonKeys = map[string]string{"requests": "requests", "errors": "errors", "in_flight": "in_flight",
	"bytes_in": "bytes_in", "bytes_out": "bytes_out", "p50_ms": "p50_ms", "p90_ms": "p90_ms", "p99_ms": "p99_ms"}

// TelemetryRecord is a validated proxy record (telemetry.Record) as the
// values the store keeps.
type TelemetryRecord struct {
	Time              time.Time
	Service, Endpoint string
	Values            map[string]float64
}

// ParseTelemetryRecord validates one JSON record of the proxy's sink or
// admin API. Every field of telemetry.Record is required except endpoint.
func ParseTelemetryRecord(b []byte) (TelemetryRecord, *Problem) {
	var rec TelemetryRecord
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		detail := "not a JSON object"
		if err != nil {
			detail = err.Error()
		}
		return rec, &Problem{Reason: store.ReasonMalformed, Detail: detail}
	}
	str := func(k string) (string, *Problem) {
		raw, ok := m[k]
		if !ok || string(raw) == "null" {
			return "", &Problem{Reason: store.ReasonMissingField, Detail: k + " is missing"}
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", &Problem{Reason: store.ReasonInvalidValue, Detail: fmt.Sprintf("%s: want a string, got %s", k, raw)}
		}
		return s, nil
	}
	ts, p := str("ts")
	if p != nil {
		return rec, p
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return rec, &Problem{Reason: store.ReasonUnparseableTime, Detail: fmt.Sprintf("ts %q is not RFC 3339", ts)}
	}
	rec.Time = t.UTC()
	if rec.Service, p = str("service"); p != nil {
		return rec, p
	}
	if strings.TrimSpace(rec.Service) == "" {
		return rec, &Problem{Reason: store.ReasonMissingField, Detail: "service is empty"}
	}
	if _, ok := m["endpoint"]; ok {
		if rec.Endpoint, p = str("endpoint"); p != nil {
			return rec, p
		}
	}
	rec.Values = make(map[string]float64, len(jsonKeys))
	for _, metric := range append(append([]string(nil), telemetryCounts...), telemetryLatencies...) {
		k := jsonKeys[metric]
		raw, ok := m[k]
		if !ok || string(raw) == "null" {
			return rec, &Problem{Reason: store.ReasonMissingField, Detail: k + " is missing"}
		}
		v, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || len(raw) == 0 || raw[0] == '"' {
			return rec, &Problem{Reason: store.ReasonNotANumber, Detail: fmt.Sprintf("%s is %s, not a number", k, raw)}
		}
		rec.Values[metric] = v
	}
	if rec.Values["requests"] == 0 {
		for _, k := range telemetryLatencies {
			delete(rec.Values, k)
		}
	}
	return rec, nil
}

// telemetryWriter turns records into points, refusing a repeated or
// earlier second per service/endpoint once (not once per metric).
type telemetryWriter struct {
	run  *Run
	sink *PointSink
	last map[[2]string]time.Time
	// future remembers the records refused as future_time: the admin API
	// answers them again on every poll (since= cannot pass them), and one
	// record is one row lost, not one a second.
	future map[string]bool
}

// maxFutureSeen bounds telemetryWriter.future.
const maxFutureSeen = 4096

func newTelemetryWriter(run *Run) *telemetryWriter {
	return &telemetryWriter{run: run, sink: NewPointSink(run, "telemetry"), last: map[[2]string]time.Time{}, future: map[string]bool{}}
}

// add validates and stores one record. It returns the record's second when
// the reader may count it as read (stored, or refused for its content),
// and the zero time when the record has no usable time (unreadable, or
// further in the future than the run allows): such a record must not move
// a read position.
func (w *telemetryWriter) add(ctx context.Context, b []byte, loc string) (time.Time, error) {
	rec, p := ParseTelemetryRecord(b)
	if p != nil {
		p.Location, p.Raw = loc, string(b)
		w.run.Quarantine(*p)
		if rec.Time.IsZero() || w.run.futureProblem(rec.Time, "ts") != nil {
			return time.Time{}, nil
		}
		return rec.Time, nil
	}
	// Before the ordering check: a second from 2126 must not become the
	// "latest" second every later record is compared with.
	if fp := w.run.futureProblem(rec.Time, "ts"); fp != nil {
		if !w.future[string(b)] {
			if len(w.future) < maxFutureSeen {
				w.future[string(b)] = true
			}
			fp.Location, fp.Raw = loc, string(b)
			w.run.Quarantine(*fp)
		}
		return time.Time{}, nil
	}
	k := [2]string{rec.Service, rec.Endpoint}
	if prev, ok := w.last[k]; ok {
		switch {
		case rec.Time.Equal(prev):
			w.run.Quarantine(Problem{loc, store.ReasonDuplicateTimestamp, fmt.Sprintf("second %s of %s/%s repeated", rec.Time.Format(time.RFC3339), rec.Service, rec.Endpoint), string(b)})
			return rec.Time, nil
		case rec.Time.Before(prev):
			w.run.Quarantine(Problem{loc, store.ReasonOutOfOrder, fmt.Sprintf("second %s of %s/%s comes after %s", rec.Time.Format(time.RFC3339), rec.Service, rec.Endpoint, prev.Format(time.RFC3339)), string(b)})
			return rec.Time, nil
		}
	}
	// Counts before latencies, so a negative count quarantines the rest of
	// the record with it (one reason per bad field).
	bad := false
	for _, metric := range telemetryCounts {
		if rec.Values[metric] < 0 {
			bad = true
		}
	}
	if bad {
		w.run.Quarantine(Problem{loc, store.ReasonNegative, "a count (requests, errors, in_flight, bytes) is negative", string(b)})
		return rec.Time, nil
	}
	w.last[k] = rec.Time
	for _, metric := range append(append([]string(nil), telemetryCounts...), telemetryLatencies...) {
		v, ok := rec.Values[metric]
		if !ok {
			continue
		}
		key := store.SeriesKey{Service: rec.Service, Endpoint: rec.Endpoint, Metric: metric}
		if err := w.sink.Add(ctx, key, rec.Time, v, loc, string(b)); err != nil {
			return time.Time{}, err
		}
	}
	return rec.Time, nil
}

// TelemetryAdminOptions configure polling a proxy's GET /telemetry.
type TelemetryAdminOptions struct {
	// URL is the admin base URL, e.g. http://127.0.0.1:9901.
	URL string
	// Service keeps only one service's records ("" for all).
	Service string
	// Follow keeps polling every Interval until ctx ends; otherwise one
	// poll reads what the proxy's ring holds.
	Follow   bool
	Interval time.Duration
	Client   *http.Client
	// CompactEvery runs the store's retention while following. Default
	// 10 minutes.
	CompactEvery time.Duration
}

// ImportTelemetryAdmin polls the proxy's admin API. Each poll asks for the
// seconds after the newest one already read (since=), and the position is
// kept in the store, so a restarted importer continues where it stopped;
// reading a second twice changes nothing either way.
func ImportTelemetryAdmin(ctx context.Context, run *Run, o TelemetryAdminOptions) error {
	return canceledWins(ctx, importTelemetryAdmin(ctx, run, o))
}

func importTelemetryAdmin(ctx context.Context, run *Run, o TelemetryAdminOptions) error {
	base, err := url.Parse(strings.TrimRight(o.URL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("telemetry: --admin %q: want a URL such as http://127.0.0.1:9901", o.URL)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.CompactEvery <= 0 {
		o.CompactEvery = 10 * time.Minute
	}
	stateKey := "telemetry:admin:" + base.String() + "?service=" + o.Service
	var since time.Time
	if v, ok, err := run.st.SyncState(ctx, stateKey); err != nil {
		return err
	} else if ok {
		since, _ = time.Parse(time.RFC3339, v)
	}
	w := newTelemetryWriter(run)
	lastCompact := time.Now()
	failures := 0
	for {
		_, newest, err := pollTelemetry(ctx, o.Client, base, o.Service, since, w)
		if err == nil {
			if !newest.last.IsZero() {
				if !since.IsZero() && newest.first.After(since) {
					run.Note("gap: seconds %s to %s were no longer in the proxy's ring (poll more often or raise telemetry.ring_seconds)",
						since.Format(time.RFC3339), newest.first.Add(-time.Second).Format(time.RFC3339))
				}
				if next := newest.last.Add(time.Second); next.After(since) {
					since = next
				}
			}
			if err = w.sink.Flush(ctx); err == nil && !newest.last.IsZero() {
				err = run.st.SetSyncState(ctx, stateKey, since.Format(time.RFC3339))
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !o.Follow {
				return err
			}
			failures++
			if failures == 1 || failures%60 == 0 {
				run.Note("poll failed (%d in a row): %v", failures, err)
			}
		} else {
			failures = 0
		}
		if !o.Follow {
			return nil
		}
		if time.Since(lastCompact) >= o.CompactEvery {
			if _, err := run.st.Compact(ctx); err != nil && ctx.Err() == nil {
				run.Note("compaction failed: %v", err)
			}
			lastCompact = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoffFor(o.Interval, failures)):
		}
	}
}

// backoffFor waits longer while a followed source keeps failing (a proxy
// that restarts), up to 30 intervals.
func backoffFor(interval time.Duration, failures int) time.Duration {
	if failures <= 1 {
		return interval
	}
	return min(interval*time.Duration(1<<min(failures-1, 5)), 30*interval)
}

type span struct{ first, last time.Time }

func pollTelemetry(ctx context.Context, c *http.Client, base *url.URL, service string, since time.Time, w *telemetryWriter) (int, span, error) {
	u := *base
	u.Path += "/telemetry"
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339))
	}
	if service != "" {
		q.Set("service", service)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, span{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, span{}, fmt.Errorf("telemetry: GET %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return 0, span{}, fmt.Errorf("telemetry: GET %s: %w", u.Redacted(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, span{}, fmt.Errorf("telemetry: GET %s: %s: %s", u.Redacted(), resp.Status, strings.TrimSpace(string(body)))
	}
	var env struct {
		Records []json.RawMessage `json:"records"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return 0, span{}, fmt.Errorf("telemetry: GET %s: the answer is not the admin API's {\"records\": [...]}: %w", u.Redacted(), err)
	}
	// The span (where the next poll starts, and the gap check) is taken
	// from the records with a usable time only: one record stamped 2126
	// would otherwise move since= past every second the proxy will ever
	// have, and the saved position with it.
	var sp span
	for i, raw := range env.Records {
		at, err := w.add(ctx, raw, fmt.Sprintf("%s#%d", u.Redacted(), i))
		if err != nil {
			return i, sp, err
		}
		if at.IsZero() {
			continue
		}
		if sp.first.IsZero() || at.Before(sp.first) {
			sp.first = at
		}
		if at.After(sp.last) {
			sp.last = at
		}
	}
	return len(env.Records), sp, nil
}

// TelemetryFileOptions configure reading the proxy's JSON-lines sink
// (telemetry.jsonl_path).
type TelemetryFileOptions struct {
	Path string
	// Follow keeps reading as the proxy appends, across rotation and
	// truncation, until ctx ends.
	Follow   bool
	Interval time.Duration
	// FromStart ignores the saved offset and reads the file again (every
	// second already stored counts as unchanged).
	FromStart    bool
	CompactEvery time.Duration
}

// ImportTelemetryFile reads the proxy's JSON-lines file. The byte offset of
// the last whole line read is kept in the store, so a restart continues
// where it stopped; only whole lines are read, so a line the proxy is
// still writing waits for its newline.
func ImportTelemetryFile(ctx context.Context, run *Run, o TelemetryFileOptions) error {
	return canceledWins(ctx, importTelemetryFile(ctx, run, o))
}

// canceledWins reports a stop by the caller as such: when ctx ends during a
// write, database/sql rolls the transaction back and the write fails with
// "transaction has already been committed or rolled back", which would hide
// that the caller asked to stop (and mark the run failed, not interrupted).
func canceledWins(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func importTelemetryFile(ctx context.Context, run *Run, o TelemetryFileOptions) error {
	abs, err := filepath.Abs(o.Path)
	if err != nil {
		return err
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.CompactEvery <= 0 {
		o.CompactEvery = 10 * time.Minute
	}
	stateKey := "telemetry:file:" + abs
	var offset int64
	if !o.FromStart {
		if v, ok, err := run.st.SyncState(ctx, stateKey); err != nil {
			return err
		} else if ok {
			offset, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("telemetry: --file: %w", err)
	}
	defer func() { f.Close() }()
	if st, err := f.Stat(); err == nil && st.Size() < offset {
		run.Note("%s is shorter than the saved offset %d (truncated or replaced): reading it from the start", abs, offset)
		offset = 0
	}
	w := newTelemetryWriter(run)
	line := lineOf(f, offset)
	lastCompact := time.Now()
	var partial []byte
	for {
		n, rest, err := readLines(ctx, f, &offset, partial, w, abs, &line)
		partial = rest
		if err != nil {
			return err
		}
		if err := w.sink.Flush(ctx); err != nil {
			return err
		}
		if n > 0 {
			if err := run.st.SetSyncState(ctx, stateKey, strconv.FormatInt(offset, 10)); err != nil {
				return err
			}
		}
		if !o.Follow {
			if len(partial) > 0 {
				run.Note("%s ends with an unfinished line (%d bytes): it will be read once complete", abs, len(partial))
			}
			return nil
		}
		// Rotation (a new file at the path) or truncation: finish the old
		// file (done above), then start the new one from its beginning.
		if cur, err := os.Stat(abs); err == nil {
			old, _ := f.Stat()
			if !os.SameFile(cur, old) || cur.Size() < offset {
				nf, err := os.Open(abs)
				if err == nil {
					run.Note("%s was rotated or truncated: reading the new file from the start", abs)
					f.Close()
					f, offset, line, partial = nf, 0, 1, nil
					w.reset()
					if err := run.st.SetSyncState(ctx, stateKey, "0"); err != nil {
						return err
					}
					continue
				}
			}
		}
		if time.Since(lastCompact) >= o.CompactEvery {
			if _, err := run.st.Compact(ctx); err != nil && ctx.Err() == nil {
				run.Note("compaction failed: %v", err)
			}
			lastCompact = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.Interval):
		}
	}
}

func (w *telemetryWriter) reset() {
	clear(w.last)
	w.sink.Forget()
}

// lineOf counts the lines before offset (for quarantine locations after a
// resume); it reads the file once at start.
func lineOf(f *os.File, offset int64) int {
	if offset == 0 {
		return 1
	}
	n := 1
	r := bufio.NewReader(io.NewSectionReader(f, 0, offset))
	buf := make([]byte, 64<<10)
	for {
		k, err := r.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err != nil {
			return n
		}
	}
}

// readLines reads whole lines from offset to the end of f.
func readLines(ctx context.Context, f *os.File, offset *int64, partial []byte, w *telemetryWriter, name string, line *int) (int, []byte, error) {
	if _, err := f.Seek(*offset+int64(len(partial)), io.SeekStart); err != nil {
		return 0, partial, err
	}
	r := bufio.NewReaderSize(f, 256<<10)
	n := 0
	for {
		chunk, err := r.ReadSlice('\n')
		if len(chunk) > 0 {
			partial = append(partial, chunk...)
		}
		if err == bufio.ErrBufferFull {
			if len(partial) > 16<<20 {
				return n, nil, fmt.Errorf("%s:%d: a line longer than 16 MiB: this is not a telemetry file", name, *line)
			}
			continue
		}
		if err == io.EOF {
			return n, partial, nil
		}
		if err != nil {
			return n, partial, err
		}
		// A whole line.
		*offset += int64(len(partial))
		content := bytes.TrimSpace(partial)
		if len(content) > 0 {
			if _, err := w.add(ctx, content, fmt.Sprintf("%s:%d", name, *line)); err != nil {
				return n, nil, err
			}
			n++
		}
		*line++
		partial = partial[:0]
		if n%10_000 == 0 {
			if err := ctx.Err(); err != nil {
				return n, nil, err
			}
		}
	}
}
