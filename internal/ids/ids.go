// Package ids owns the shape of the identifiers the gateway mints: lower
// case base32 without padding, so an id survives URLs, subjects and KV keys
// unescaped and reads the same in every place it appears.
package ids

import (
	"crypto/rand"
	"crypto/sha256"
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

// EventID derives an event's id from its registration and delivery id, so
// the same delivery always gets the same id whichever path logs it (ingest,
// the reconciler, CreateJob) and the log can recognise a repeat.
func EventID(webhookID, deliveryID string) string {
	h := sha256.New()
	h.Write([]byte(webhookID))
	h.Write([]byte{0})
	h.Write([]byte(deliveryID))
	return "evt_" + Encoding.EncodeToString(h.Sum(nil)[:16])
}
