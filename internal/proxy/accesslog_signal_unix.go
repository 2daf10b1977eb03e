//go:build unix

package proxy

import (
	"os"
	"syscall"
)

// ReopenSignals are the signals on which `lbsys proxy` reopens its access
// log files (Proxy.ReopenAccessLogs): SIGUSR1, as NGINX, so logrotate's
// `postrotate kill -USR1` works without copytruncate.
func ReopenSignals() []os.Signal { return []os.Signal{syscall.SIGUSR1} }
