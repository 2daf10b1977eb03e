// Command backend is the origin server used by bench/peers.sh: a tiny, fast
// HTTP/1.1 server that answers every path with a fixed body (1 KiB by
// default) and /healthz with "ok". One process can serve several listeners,
// so the three benchmark backends run as one process pinned on one core.
// With -cacheable PREFIX, paths under PREFIX answer with caching headers
// (Cache-Control: public, max-age=3600, an ETag and Last-Modified), so that
// a caching proxy in front (lbsys's cache, NGINX's proxy_cache) stores them;
// every other path has none and is proxied every time.
//
//	go run ./bench/backend -listen 127.0.0.1:18001 -listen 127.0.0.1:18002
//	go run ./bench/backend -ports 18001,18002,18003 -cacheable /cached/
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var listens listFlag
	flag.Var(&listens, "listen", "host:port to serve on (repeatable)")
	ports := flag.String("ports", "", "comma-separated ports to serve on, bound to -host")
	host := flag.String("host", "127.0.0.1", "host for -ports")
	size := flag.Int("size", 1024, "response body size in bytes")
	cacheable := flag.String("cacheable", "", "path prefix whose responses carry caching headers (Cache-Control: public, max-age=3600, ETag, Last-Modified); empty: none")
	flag.Parse()
	if *cacheable != "" && !strings.HasPrefix(*cacheable, "/") {
		log.Fatalf("backend: -cacheable must be a path prefix starting with /, got %q", *cacheable)
	}

	if *ports != "" {
		for _, p := range strings.Split(*ports, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if _, err := strconv.Atoi(p); err != nil {
				log.Fatalf("backend: bad port %q in -ports", p)
			}
			listens = append(listens, net.JoinHostPort(*host, p))
		}
	}
	if len(listens) == 0 {
		listens = append(listens, "127.0.0.1:18001")
	}
	if *size < 0 {
		log.Fatalf("backend: -size must be >= 0")
	}

	body := bytes.Repeat([]byte("x"), *size)
	if *size > 0 {
		body[len(body)-1] = '\n'
	}
	bodyLen := []string{strconv.Itoa(len(body))}
	okBody := []byte("ok")
	okLen := []string{strconv.Itoa(len(okBody))}
	textPlain := []string{"text/plain"}
	// Caching headers, built once: every cacheable response is the same
	// representation.
	cacheControl := []string{"public, max-age=3600"}
	etag := []string{`"bench-` + strconv.Itoa(len(body)) + `"`}
	lastModified := []string{time.Now().UTC().Add(-time.Hour).Format(http.TimeFormat)}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = textPlain
		if r.URL.Path == "/healthz" {
			h["Content-Length"] = okLen
			w.WriteHeader(http.StatusOK)
			w.Write(okBody)
			return
		}
		if *cacheable != "" && strings.HasPrefix(r.URL.Path, *cacheable) {
			h["Cache-Control"] = cacheControl
			h["Etag"] = etag
			h["Last-Modified"] = lastModified
			if r.Header.Get("If-None-Match") == etag[0] {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		h["Content-Length"] = bodyLen
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})

	var servers []*http.Server
	var wg sync.WaitGroup
	errc := make(chan error, len(listens))
	for _, addr := range listens {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Fatalf("backend: listen %s: %v", addr, err)
		}
		srv := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       5 * time.Minute,
		}
		srv.SetKeepAlivesEnabled(true)
		servers = append(servers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
		}()
	}
	fmt.Fprintf(os.Stderr, "backend: serving %d-byte body on %s (cacheable: %q)\n", len(body), strings.Join(listens, " "), *cacheable)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case err := <-errc:
		log.Printf("backend: %v", err)
	}
	for _, s := range servers {
		s.Close()
	}
	wg.Wait()
}
