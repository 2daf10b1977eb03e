package config

import (
	"path/filepath"
	"slices"
	"strings"
)

// Access log formats (listeners[].access_log.format).
const (
	// AccessLogCombined is the NCSA combined format followed by lbsys's own
	// fields as key=value pairs (docs/config.md describes the grammar).
	AccessLogCombined = "combined"
	// AccessLogJSON is one JSON object per line with stable field names.
	AccessLogJSON = "json"
	// AccessLogStdout and AccessLogStderr are the path values that write
	// to the process's standard streams instead of a file.
	AccessLogStdout = "stdout"
	AccessLogStderr = "stderr"
)

var accessLogFormats = []string{AccessLogCombined, AccessLogJSON}

// AccessLog is a listener's access log: one line per request, formatted on
// the request's goroutine and written by a background writer through a
// bounded queue, so a slow disk costs lines (counted in
// lbsys_access_log_dropped_total), never request latency.
type AccessLog struct {
	// Path is the file lines are appended to (created with mode 0640 when
	// missing), or `stdout` / `stderr`. Required. Listeners may share a
	// file; they then share one writer and must use the same format.
	// SIGUSR1 reopens the file (after logrotate renamed it); a reload that
	// changes the path opens the new file and closes the old one.
	Path string `yaml:"path"`
	// Format is `combined` (default): NCSA combined, then lbsys's fields
	// as key=value pairs; or `json`: one object per line.
	Format string `yaml:"format"`
	// Query logs the query string after the path. Default false: query
	// strings often carry tokens, e-mail addresses or session ids, and an
	// access log is read by more people than the application's data.
	Query bool `yaml:"query"`
	// Sample is the share of requests that are not errors to log, in
	// (0, 1]; errors (status >= 500 and answers the proxy made itself) are
	// always logged. Default 1: every request.
	Sample float64 `yaml:"sample"`
	// ErrorsOnly logs errors only: status >= 500 and answers the proxy made
	// itself (an `X-Lbsys-Error` reason such as no_route, overloaded or a
	// client that went away). Default false.
	ErrorsOnly bool `yaml:"errors_only"`
}

// IsStdStream reports whether Path names the process's stdout or stderr.
func (a *AccessLog) IsStdStream() bool {
	return a.Path == AccessLogStdout || a.Path == AccessLogStderr
}

// Key identifies the output of an access log: two listeners with the same
// key write to one file through one writer. A relative path is made
// absolute against the working directory, as the file will be opened.
func (a *AccessLog) Key() string {
	if a.IsStdStream() {
		return a.Path
	}
	if abs, err := filepath.Abs(a.Path); err == nil {
		return abs
	}
	return filepath.Clean(a.Path)
}

// accessLogDefaults fills the unset fields of every listener's access log.
// An explicit `sample: 0` is kept so that validation can point at
// errors_only, which is what it would mean.
func (ch *checker) accessLogDefaults(c *Config) {
	for i := range c.Listeners {
		a := c.Listeners[i].AccessLog
		if a == nil {
			continue
		}
		p := ch.listenerPath(i) + ".access_log"
		defStr(&a.Format, AccessLogCombined)
		ch.defFloat(&a.Sample, p+".sample", 1, true)
	}
}

// validateAccessLogs checks each access log section and how they combine:
// one file has one format, and is not the telemetry file.
func (ch *checker) validateAccessLogs(c *Config) {
	type user struct {
		path, format string
	}
	byKey := map[string]user{}
	var tele string
	if c.Telemetry.JSONLPath != "" {
		tele = (&AccessLog{Path: c.Telemetry.JSONLPath}).Key()
	}
	for i := range c.Listeners {
		a := c.Listeners[i].AccessLog
		if a == nil {
			continue
		}
		p := ch.listenerPath(i) + ".access_log"
		pathOK := ch.checkAccessLogPath(a, p+".path")
		if !slices.Contains(accessLogFormats, a.Format) {
			ch.errf(p+".format", "unknown format %s: %suse combined (NCSA combined plus lbsys's fields) or json (one object per line)", quote(a.Format), didYouMean(a.Format, accessLogFormats))
		}
		switch {
		case a.Sample != a.Sample || a.Sample < 0 || a.Sample > 1:
			ch.errf(p+".sample", "must be a share in (0, 1] such as 0.1 (one request in ten), got %g", a.Sample)
		case a.Sample == 0:
			ch.errf(p+".sample", "is 0, which would log nothing but errors: write `errors_only: true` for that, or a share such as 0.01")
		}
		if !pathOK {
			continue
		}
		key := a.Key()
		if key == tele && !a.IsStdStream() {
			ch.errf(p+".path", "%s is also telemetry.jsonl_path%s; give the access log its own file", quote(a.Path), ch.where("telemetry.jsonl_path"))
			continue
		}
		if first, ok := byKey[key]; ok {
			if first.format != a.Format {
				ch.errf(p+".format", "%s differs from the format of %s%s, which writes to the same file %s; one file holds one format: use the same format or another path", quote(a.Format), first.path, ch.where(first.path), quote(a.Path))
			}
			continue
		}
		byKey[key] = user{path: p, format: a.Format}
	}
}

// checkAccessLogPath reports an unusable path and returns whether the path
// can be compared with others.
func (ch *checker) checkAccessLogPath(a *AccessLog, p string) bool {
	switch {
	case a.Path == "":
		ch.errf(p, "required: name the file to append to (e.g. /var/log/lbsys/access.log), or write stdout or stderr")
	case strings.TrimSpace(a.Path) != a.Path:
		ch.errf(p, "%s has leading or trailing spaces; remove them", quote(a.Path))
	case strings.ContainsFunc(a.Path, func(r rune) bool { return r < ' ' || r == 0x7f }):
		ch.errf(p, "%s contains control characters; write a plain file path", quote(a.Path))
	case strings.HasSuffix(a.Path, "/") || strings.HasSuffix(a.Path, string(filepath.Separator)):
		ch.errf(p, "%s ends with a separator: name a file in that directory, e.g. %s", quote(a.Path), quote(a.Path+"access.log"))
	default:
		return true
	}
	return false
}
