// Command conformance runs lbsys's cache in front of one origin, as a
// reverse proxy, so that the HTTP caching test suite of
// http-tests/cache-tests (cache-tests.fyi) can be run against it; run.sh
// does the whole run and compares the result with the suite's published
// results for NGINX, Apache httpd, Varnish and others.
//
//	go run ./internal/cache/conformance --listen 127.0.0.1:8001 --origin http://127.0.0.1:8000
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/lbsys/lbsys/internal/cache"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8001", "address to serve on")
	origin := flag.String("origin", "http://127.0.0.1:8000", "the origin (the suite's server)")
	setCookie := flag.Bool("allow-set-cookie", false, "store responses with Set-Cookie (route allow_set_cookie)")
	auth := flag.Bool("allow-authorization", false, "store responses to requests with Authorization where RFC 9111 §3.5 allows")
	staleIfError := flag.Duration("stale-if-error", 0, "the cache's stale_if_error default")
	flag.Parse()
	u, err := url.Parse(*origin)
	if err != nil || u.Host == "" {
		fmt.Fprintf(os.Stderr, "--origin %q: want an absolute URL such as http://127.0.0.1:8000\n", *origin)
		os.Exit(2)
	}
	c, err := cache.New(cache.Config{StaleIfError: *staleIfError}, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	rt, err := c.Route("conformance", cache.RouteConfig{Enabled: true, AllowSetCookie: *setCookie, AllowAuthorization: *auth})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *listen, Handler: c.Handler(rt, cache.NewProxyOrigin(u, nil)), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("lbsys cache on %s in front of %s", *listen, u)
	log.Fatal(srv.ListenAndServe())
}
