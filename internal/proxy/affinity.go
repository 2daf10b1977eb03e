package proxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/balance"
)

// cookieSigner makes and checks affinity cookies. A cookie names an endpoint
// by the 64-bit hash of its ID (so it does not reveal the backend's address)
// followed by a truncated HMAC-SHA256 over the service name and that hash, so
// a client cannot steer itself to an endpoint of its choosing.
//
// Value layout (base64url, no padding): id(8 bytes, big endian) | mac(16).
type cookieSigner struct {
	service string
	name    string
	maxAge  int
	secure  bool
	macs    sync.Pool // of hash.Hash keyed with the secret
}

const cookieMACLen = 16

func newCookieSigner(service, name string, ttl time.Duration, secure bool, secret []byte) *cookieSigner {
	s := &cookieSigner{service: service, name: name, maxAge: int(ttl / time.Second), secure: secure}
	key := append([]byte(nil), secret...)
	s.macs.New = func() any { return hmac.New(sha256.New, key) }
	return s
}

func (s *cookieSigner) mac(id uint64, out []byte) []byte {
	h := s.macs.Get().(hash.Hash)
	h.Reset()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	h.Write([]byte("lbsys-affinity-v1|"))
	h.Write([]byte(s.service))
	h.Write([]byte{'|'})
	h.Write(b[:])
	out = h.Sum(out)
	s.macs.Put(h)
	return out
}

// value returns the cookie value naming the endpoint with ID hash id.
func (s *cookieSigner) value(id uint64) string {
	var raw [8 + sha256.Size]byte
	binary.BigEndian.PutUint64(raw[:8], id)
	s.mac(id, raw[8:8])
	return base64.RawURLEncoding.EncodeToString(raw[:8+cookieMACLen])
}

// parse returns the endpoint ID hash named by a cookie value, or false when
// the value is malformed or its MAC does not verify.
func (s *cookieSigner) parse(v string) (uint64, bool) {
	var raw [8 + cookieMACLen]byte
	if base64.RawURLEncoding.DecodedLen(len(v)) != len(raw) {
		return 0, false
	}
	if n, err := base64.RawURLEncoding.Decode(raw[:], []byte(v)); err != nil || n != len(raw) {
		return 0, false
	}
	id := binary.BigEndian.Uint64(raw[:8])
	var want [sha256.Size]byte
	s.mac(id, want[:0])
	if !hmac.Equal(want[:cookieMACLen], raw[8:]) {
		return 0, false
	}
	return id, true
}

// setCookie returns the Set-Cookie header value for endpoint id.
func (s *cookieSigner) setCookie(id uint64) string {
	var b strings.Builder
	b.WriteString(s.name)
	b.WriteByte('=')
	b.WriteString(s.value(id))
	b.WriteString("; Path=/; HttpOnly; SameSite=Lax")
	if s.maxAge > 0 {
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.Itoa(s.maxAge))
	}
	if s.secure {
		b.WriteString("; Secure")
	}
	return b.String()
}

// endpointKey is the 64-bit identity of an endpoint in cookies.
func endpointKey(id string) uint64 { return balance.HashString(id) }

// cookieValue finds the named cookie in the request headers without
// allocating the []*http.Cookie that Request.Cookie builds.
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for len(line) > 0 {
			var part string
			if i := strings.IndexByte(line, ';'); i >= 0 {
				part, line = line[:i], line[i+1:]
			} else {
				part, line = line, ""
			}
			part = strings.TrimSpace(part)
			if len(part) > len(name) && part[len(name)] == '=' && part[:len(name)] == name {
				v := part[len(name)+1:]
				if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v, true
			}
		}
	}
	return "", false
}
