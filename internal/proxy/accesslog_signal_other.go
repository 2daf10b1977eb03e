//go:build !unix

package proxy

import "os"

// ReopenSignals are the signals on which `lbsys proxy` reopens its access
// log files; there is no SIGUSR1 here, so none.
func ReopenSignals() []os.Signal { return nil }
