// Package ids owns the shape of the identifiers the gateway mints: lower
// case base32 without padding, so an id survives URLs, subjects and KV keys
// unescaped and reads the same in every place it appears.
package ids

import (
	"crypto/rand"
	"encoding/base32"
)

// Encoding is lower case base32 without padding.
var Encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Random returns n random characters of Encoding (5 bits each).
func Random(n int) string {
	b := make([]byte, (n*5+7)/8)
	_, _ = rand.Read(b)
	return Encoding.EncodeToString(b)[:n]
}
