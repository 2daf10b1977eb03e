package yamlstrict

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parse returns the root node of the single YAML document in data: the
// content of the document, or nil when there is none (an empty file, only
// comments, a lone `---` or an explicit null), which callers report in
// their own words. A syntax error names the line to fix; a second
// document is an error at its first line.
func Parse(data []byte) (root *yaml.Node, perr *Error) {
	// yaml.v3 is mature but not panic-proof on every input; a file must
	// never crash the process that reads it (the proxy on a hot reload).
	defer func() {
		if r := recover(); r != nil {
			root, perr = nil, &Error{Msg: fmt.Sprintf("cannot parse the file (internal error: %v); please report this with the file attached", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(data, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Error{Line: extra.Line, Msg: "the file holds more than one YAML document (separated by `---`); it must hold exactly one: merge them or remove the extra one"}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(data, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || IsNull(doc.Content[0]) {
		return nil, nil
	}
	return doc.Content[0], nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// SyntaxError turns the error yaml.v3 returned for data ("yaml: line 3:
// did not find expected key") into an Error at the line to fix, for
// readers that decode with yaml.v3 themselves (a multi-document catalog).
func SyntaxError(data []byte, err error) *Error { return syntaxError(data, err) }

func syntaxError(data []byte, err error) *Error {
	msg := err.Error()
	reported := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		reported, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &Error{Line: syntaxLine(data, reported), Msg: "invalid YAML: " + msg + " (check the indentation and quoting around this line)"}
}

// Bounds of the search for the line to fix: the lines looked ahead of a
// failing prefix (a prefix cut inside a flow collection or a quoted value
// that spans lines fails only because it ends there), and the bytes parsed
// in all before the search switches from a line-by-line scan to bisection.
const (
	lookahead  = 20
	scanBudget = 32 << 20
)

// syntaxLine finds the line to fix in data, which yaml.v3 refused: the
// first line after which no continuation could make the text valid, found
// as the shortest prefix of whole lines that fails to parse.
//
// yaml.v3 reports the line of the error's context (where the enclosing
// block, flow collection or quoted value began), and for parser errors
// that line's 0-based number, so the reported number is at or before the
// line to fix: the search starts just before it. A prefix that fails only
// because it ends inside a valid multi-line value is recognised by a
// longer prefix (at most lookahead lines more) that parses again. Past
// scanBudget bytes parsed the rest is bisected, assuming that once a
// prefix fails every longer one does.
func syntaxLine(data []byte, reported int) int {
	ends := lineEnds(data)
	n := len(ends)
	if n == 0 {
		return reported
	}
	spent := 0
	fails := func(k int) bool {
		spent += ends[k-1]
		return !parses(data[:ends[k-1]])
	}
	firstFailing := func(lo, hi int) int { // lo passes (or is 0), hi fails
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			if fails(mid) {
				hi = mid
			} else {
				lo = mid
			}
		}
		return hi
	}
	start := min(max(reported-1, 1), n)
	if fails(start) {
		return firstFailing(0, start)
	}
	for k := start + 1; k <= n; k++ {
		if spent > scanBudget {
			return firstFailing(k-1, n)
		}
		if !fails(k) {
			continue
		}
		resumed := false
		for j := k + 1; j <= min(n, k+lookahead); j++ {
			if !fails(j) {
				k, resumed = j, true
				break
			}
		}
		if !resumed {
			return k
		}
	}
	return reported
}

// lineEnds returns, for each line of data, the offset just past it
// (including its line break). Lines break where yaml.v3's do, so that the
// numbers agree with the nodes': at \n, \r\n, a lone \r, and the Unicode
// breaks NEL, LS and PS.
func lineEnds(data []byte) []int {
	var ends []int
	for i := 0; i < len(data); i++ {
		switch {
		case data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n':
			i++
			ends = append(ends, i+1)
		case data[i] == '\n' || data[i] == '\r':
			ends = append(ends, i+1)
		case data[i] == 0xC2 && i+1 < len(data) && data[i+1] == 0x85:
			i++
			ends = append(ends, i+1)
		case data[i] == 0xE2 && i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9):
			i += 2
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] < len(data) {
		ends = append(ends, len(data))
	}
	return ends
}

// parses reports whether every document of data parses.
func parses(data []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			return errors.Is(err, io.EOF)
		}
	}
}
