// Package directive is a planted contract that imports internal code
// (rule api).
package directive

import _ "example.com/planted/internal/clock"
