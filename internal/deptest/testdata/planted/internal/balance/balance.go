// Package balance is planted decision code that reaches net/http through
// another package and reads the wall clock (rule pure).
package balance

import (
	"time"

	_ "example.com/planted/internal/wire"
)

// Pick reads the wall clock.
func Pick() time.Time { return time.Now() }
