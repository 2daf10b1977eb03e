package fleet

import "syscall"

// procAttr puts an instance in its own process group (a Ctrl-C at the
// terminal reaches the demo, which stops its instances in order) and has
// the kernel kill it when the process that started it dies, even by
// SIGKILL, so no shop outlives its scaler.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
