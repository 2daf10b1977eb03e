// Package relay belongs to no plane; it makes the data plane's chain two
// steps long.
package relay

import _ "example.com/planted/internal/gaia"
