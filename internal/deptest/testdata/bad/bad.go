// Package bad breaks every purity rule; deptest's own test checks that each
// is reported.
package bad

import (
	"math/rand/v2"
	"net/http"
	"time"
)

// Decide breaks the rules.
func Decide() (time.Time, int, *http.Request) {
	time.Sleep(time.Millisecond)
	return time.Now(), rand.IntN(3), nil
}
