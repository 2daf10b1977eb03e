// Package sim imports the cache's store (rule simulator) and its pure
// rules (allowed).
package sim

import (
	_ "example.com/planted/internal/cache"
	_ "example.com/planted/internal/cache/rfc9111"
)
