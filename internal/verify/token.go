package verify

import (
	"crypto/sha256"
	"crypto/subtle"
)

// URLToken checks a token taken from the ingest URL's ?token= parameter
// against a registration's configured tokens; any match passes, which allows
// rotation.
//
// Both sides are hashed with SHA-256 before the constant-time comparison,
// because [subtle.ConstantTimeCompare] returns early on a length mismatch and
// would otherwise reveal the length of the configured token. An empty token
// yields [ErrMissingSignature]; a token matching none of the configured ones
// yields [ErrBadSignature].
func URLToken(given string, tokens [][]byte) error {
	if given == "" {
		return ErrMissingSignature
	}
	g := sha256.Sum256([]byte(given))
	matched := 0
	for _, token := range tokens {
		if len(token) == 0 {
			continue
		}
		w := sha256.Sum256(token)
		matched |= subtle.ConstantTimeCompare(g[:], w[:])
	}
	if matched == 0 {
		return ErrBadSignature
	}
	return nil
}
