//go:build unix && !linux

package crashtest_test

import "syscall"

// procAttr has no parent-death signal outside Linux; t.Cleanup kills the
// server instead.
func procAttr() *syscall.SysProcAttr { return nil }
