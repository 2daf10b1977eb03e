// Package wire does I/O.
package wire

import _ "net/http"
