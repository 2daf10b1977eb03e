// Command goproxy is the baseline peer of bench/peers.sh: a plain
// net/http/httputil.ReverseProxy doing round-robin over a fixed list of
// backends, with the default Transport except MaxIdleConnsPerHost. It is
// what "a Go proxy with no features" costs, so lbsys's overhead over it is
// the price of its features.
//
//	go run ./bench/goproxy -listen 127.0.0.1:18085 -backends 127.0.0.1:18001,127.0.0.1:18002
package main

import (
	"errors"
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18085", "host:port to serve on")
	backends := flag.String("backends", "127.0.0.1:18001,127.0.0.1:18002,127.0.0.1:18003", "comma-separated host:port backends")
	idle := flag.Int("max-idle-per-host", 64, "Transport.MaxIdleConnsPerHost")
	flag.Parse()

	var targets []*url.URL
	for _, b := range strings.Split(*backends, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		u, err := url.Parse("http://" + b)
		if err != nil {
			log.Fatalf("goproxy: bad backend %q: %v", b, err)
		}
		targets = append(targets, u)
	}
	if len(targets) == 0 {
		log.Fatal("goproxy: no backends")
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = *idle
	if tr.MaxIdleConns < *idle*len(targets) {
		tr.MaxIdleConns = *idle * len(targets)
	}

	var next atomic.Uint64
	rp := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := targets[(next.Add(1)-1)%uint64(len(targets))]
			pr.SetURL(t)
			pr.Out.Host = pr.In.Host
		},
	}

	srv := &http.Server{Addr: *listen, Handler: rp}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	log.Printf("goproxy: %s -> %d backends", *listen, len(targets))
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("goproxy: %v", err)
	}
}
