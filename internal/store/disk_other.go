//go:build !unix

package store

import "errors"

// diskSpace is not implemented off Unix: set --max-store-bytes there.
var diskSpace = func(string) (free, total int64, err error) {
	return 0, 0, errors.New("free disk space is only known on Unix; set --max-store-bytes")
}
