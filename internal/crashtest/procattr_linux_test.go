package crashtest_test

import "syscall"

// procAttr makes the kernel kill a server whose test binary died (a panic
// or timeout), so no klingfan outlives the test even when t.Cleanup cannot
// run.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
