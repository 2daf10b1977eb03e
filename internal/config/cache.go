package config

import (
	"errors"
	"strconv"
	"strings"

	"github.com/lbsys/lbsys/internal/cache/settings"
)

// The response cache's sections (issue #15): `cache:` at the top level
// (settings.Config) and `cache:` on a service or a route
// (settings.RouteConfig). Their fields are documented in
// internal/cache/settings and docs/config.md; here they get the config
// file's treatment: defaults filled so the Config shows what runs, an
// explicit 0 reported where the cache would silently use its default
// instead, and every problem reported with its field path and line.

// cacheDefaults fills the cache sections' unset fields with the cache's
// defaults.
func (ch *checker) cacheDefaults(c *Config) {
	cc := &c.Cache
	ch.defCacheSize(&cc.MaxBytes, "cache.max_bytes", settings.DefaultMaxBytes, false)
	objDef := settings.ByteSize(settings.DefaultMaxObjectBytes)
	if cc.MaxBytes > 0 && objDef > cc.MaxBytes/8 {
		objDef = cc.MaxBytes / 8
	}
	if cc.MaxBytes > 0 {
		ch.defCacheSize(&cc.MaxObjectBytes, "cache.max_object_bytes", objDef, false)
	}
	ch.defInt(&cc.MaxVariants, "cache.max_variants", settings.DefaultMaxVariants, false)
	ch.defInt(&cc.MaxVaryFields, "cache.max_vary_fields", settings.DefaultMaxVaryFields, false)
	ch.defFloat(&cc.HeuristicFraction, "cache.heuristic_fraction", settings.DefaultHeuristic, false)
	ch.defDur(&cc.MaxHeuristic, "cache.max_heuristic", settings.DefaultMaxHeuristic, false)
	ch.defDur(&cc.Keep, "cache.keep", settings.DefaultKeep, false)
	ch.defDur(&cc.PassTTL, "cache.pass_ttl", settings.DefaultPassTTL, false)
	ch.defDur(&cc.FetchTimeout, "cache.fetch_timeout", settings.DefaultFetchTimeout, false)
	ch.defInt(&cc.Coalesce.MaxWaiters, "cache.coalesce.max_waiters", settings.DefaultMaxWaiters, false)
	ch.defDur(&cc.Coalesce.WaitTimeout, "cache.coalesce.wait_timeout", settings.DefaultWaitTimeout, false)
	ch.defInt(&cc.Coalesce.MaxBackground, "cache.coalesce.max_background", settings.DefaultMaxBackground, false)
	ch.defFloat(&cc.Warm.Rate, "cache.warm.rate", settings.DefaultWarmRate, false)
	ch.defInt(&cc.Warm.Burst, "cache.warm.burst", settings.DefaultWarmBurst, false)
	ch.defInt(&cc.Warm.Queue, "cache.warm.queue", settings.DefaultWarmQueue, false)

	for i := range c.Services {
		ch.routeCacheDefaults(&c.Services[i].Cache, ch.servicePath(i)+".cache")
	}
	for i := range c.Listeners {
		for j := range c.Listeners[i].Routes {
			if rc := c.Listeners[i].Routes[j].Cache; rc != nil {
				ch.routeCacheDefaults(rc, ch.routePath(i, j)+".cache")
			}
		}
	}
}

func (ch *checker) routePath(listener, route int) string {
	return ch.listenerPath(listener) + ".routes[" + strconv.Itoa(route) + "]"
}

func (ch *checker) routeCacheDefaults(rc *settings.RouteConfig, p string) {
	ch.defFloat(&rc.Weight, p+".weight", 1, false)
	if rc.TagHeader == "" {
		if ch.set[p+".tag_header"] {
			ch.errf(p+".tag_header", "is empty; write - for no purge tags, or remove the line to use the default %s", settings.DefaultTagHeader)
			ch.markZeroed(p + ".tag_header")
		} else {
			rc.TagHeader = settings.DefaultTagHeader
		}
	}
}

func (ch *checker) defCacheSize(p *settings.ByteSize, path string, def settings.ByteSize, zeroOK bool) {
	if *p == 0 && !ch.zeroWritten(path, fmtSize(ByteSize(def)), zeroOK) {
		*p = def
	}
}

// validateCache checks the cache sections and how they combine with the
// rest of the file.
func (ch *checker) validateCache(c *Config) {
	ch.cacheErrors("cache", c.Cache.Validate())
	svcIndex := map[string]int{}
	for i := range c.Services {
		s := &c.Services[i]
		svcIndex[s.Name] = i
		ch.cacheErrors(ch.servicePath(i)+".cache", s.Cache.Validate())
	}
	cachedNames := map[string]string{} // route name -> path of the first cached route with it
	for i := range c.Listeners {
		for j := range c.Listeners[i].Routes {
			r := &c.Listeners[i].Routes[j]
			rp := ch.routePath(i, j)
			if r.Cache != nil {
				ch.cacheErrors(rp+".cache", r.Cache.Validate())
			}
			var svc *Service
			sp := ""
			if k, ok := svcIndex[r.Service]; ok {
				svc = &c.Services[k]
				sp = ch.servicePath(k)
			}
			rc := r.CacheConfig(svc)
			if !rc.Enabled {
				continue
			}
			// The route's name keys the cache (two routes may send one URL
			// to different services) and labels its metrics and purges:
			// two cached routes with one name would serve each other's
			// responses.
			if first, dup := cachedNames[r.Name]; dup {
				ch.errf(rp+".name", "route name %s is also the name of %s%s, which caches too: a cached route's name keys its stored responses, so give each cached route its own name", quote(r.Name), first, ch.where(first))
			} else {
				cachedNames[r.Name] = rp
			}
			if svc != nil && svc.Affinity.Type == "cookie" && rc.AllowSetCookie {
				at := sp + ".cache.allow_set_cookie"
				if r.Cache != nil {
					at = rp + ".cache.allow_set_cookie"
				}
				ch.errf(at, "cannot be true on a route of %s, which uses cookie affinity: the proxy's affinity cookie would be stored and sent to every client, pinning them all to one endpoint; remove allow_set_cookie (responses that set the affinity cookie are then not stored) or use `affinity: {type: hash}`", sp)
			}
		}
	}
}

// cacheErrors reports the problems of a cache section's Validate at their
// field paths below prefix.
func (ch *checker) cacheErrors(prefix string, err error) {
	if err == nil {
		return
	}
	var ce *settings.ConfigError
	if !errors.As(err, &ce) {
		ch.errf(prefix, "%v", err)
		return
	}
	for _, f := range ce.Errors {
		path := joinRel(prefix, f.Path)
		// A map key's line is recorded as "headers.Cookie"; the cache
		// names it "headers[Cookie]".
		if i := strings.IndexByte(path, '['); i > 0 && strings.HasSuffix(path, "]") {
			if l, ok := ch.lines[path[:i]+"."+path[i+1:len(path)-1]]; ok && !ch.zeroed[path] {
				ch.errs = append(ch.errs, &Error{Line: l, Path: path, Msg: f.Msg})
				continue
			}
		}
		ch.errf(path, "%s", f.Msg)
	}
}
