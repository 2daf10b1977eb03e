//go:build !linux

package fleet

import "syscall"

// procAttr puts an instance in its own process group. Only Linux can have
// the kernel kill it with its parent; elsewhere a scaler killed with
// SIGKILL leaves its instances running.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
