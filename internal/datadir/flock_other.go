//go:build !unix

package datadir

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("datadir: would block")

// lockFile does nothing off Unix: klingfan is built for Unix, and there one
// process per directory is enforced.
func lockFile(*os.File) error { return nil }
