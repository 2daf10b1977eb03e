// Package proxy is planted data plane that reaches the coordinator through
// another package (rule data-plane).
package proxy

import _ "example.com/planted/internal/relay"
