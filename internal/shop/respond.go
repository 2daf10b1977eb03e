package shop

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// maxBodyBytes bounds request bodies; the API's largest body is a reserve
// of a big cart, well under this.
const maxBodyBytes = 64 << 10

// errorBody is the JSON of every error answer: a stable machine-readable
// code plus a sentence for humans.
type errorBody struct {
	Error     string `json:"error"`
	Message   string `json:"message,omitempty"`
	ProductID string `json:"product_id,omitempty"`
	Step      string `json:"step,omitempty"`
}

// jsonReply marshals v into a answer. The values marshalled here are plain
// structs of strings and numbers, which cannot fail to encode.
func jsonReply(status int, v any) answer {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("shop: marshal %T: %v", v, err))
	}
	return answer{Status: status, Body: b}
}

func errorReply(status int, code, msg string) answer {
	return jsonReply(status, errorBody{Error: code, Message: msg})
}

// setLoad writes X-Lbsys-Load as late as possible, just before the status
// line, so that it reports the instance's load when the answer leaves.
func (c *call) setLoad() {
	var buf [40]byte
	b := append(buf[:0], "rif="...)
	b = strconv.AppendInt(b, c.inst.inflight.Load(), 10)
	b = append(b, ",util="...)
	b = strconv.AppendFloat(b, float64(c.inc.pool.busy())/float64(c.inc.pool.workers), 'f', 3, 64)
	c.w.Header()["X-Lbsys-Load"] = []string{string(b)}
}

// reply writes a JSON answer with the load header.
func (c *call) reply(status int, body []byte) {
	h := c.w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	if status == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
		h["Retry-After"] = []string{"1"}
	}
	c.setLoad()
	c.w.WriteHeader(status)
	c.w.Write(body)
}

func (c *call) replyRep(r answer) { c.reply(r.Status, r.Body) }

func (c *call) replyJSON(status int, v any) { c.replyRep(jsonReply(status, v)) }

func (c *call) replyError(status int, code, msg string) {
	c.replyRep(errorReply(status, code, msg))
}

// replyStoreError answers a failed transaction. Nothing was kept, so the
// client may retry.
func (c *call) replyStoreError(err error) {
	c.g.log.Warn("shop: store error", "instance", c.inst.name, "path", c.r.URL.Path, "err", err)
	c.replyError(http.StatusInternalServerError, "store_error", "the shop's store failed; nothing was changed, retry")
}

// decode reads the JSON body into v strictly (unknown fields, trailing data
// and bodies over maxBodyBytes are errors) and answers 400 if it cannot.
func (c *call) decode(v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(c.w, c.r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err != nil {
		c.replyError(http.StatusBadRequest, "bad_request", "request body: "+err.Error())
		return false
	}
	return true
}

// idempotencyKey returns the request's Idempotency-Key, answering 400 when
// it is malformed, or missing and required.
func (c *call) idempotencyKey(required bool) (string, bool) {
	k := c.r.Header.Get("Idempotency-Key")
	if k == "" && required {
		c.replyError(http.StatusBadRequest, "idempotency_key_required", "send an Idempotency-Key header (a unique string per logical request, reused on retries)")
		return "", false
	}
	if len(k) > 200 {
		c.replyError(http.StatusBadRequest, "bad_idempotency_key", "Idempotency-Key is longer than 200 bytes")
		return "", false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			c.replyError(http.StatusBadRequest, "bad_idempotency_key", "Idempotency-Key must be printable ASCII without spaces")
			return "", false
		}
	}
	return k, true
}
