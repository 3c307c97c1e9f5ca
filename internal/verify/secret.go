package verify

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// standardSecretPrefix marks Standard Webhooks secrets so that they are
// recognizable in configuration and secret scanners.
const standardSecretPrefix = "whsec_"

// secretBytes is the amount of randomness in every generated secret or token:
// 256 bits, the output size of SHA-256, so the key is never the weak link.
const secretBytes = 32

// DecodeStandardSecret turns a Standard Webhooks secret ("whsec_<base64>",
// prefix optional) into HMAC key bytes. Standard, padded base64 is expected,
// but unpadded input is accepted too because secrets are often copied without
// their trailing "=". An empty or undecodable secret yields an error wrapping
// [ErrInvalidSecret]; the error never includes the secret itself.
func DecodeStandardSecret(secret string) ([]byte, error) {
	s := strings.TrimPrefix(secret, standardSecretPrefix)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not valid base64", ErrInvalidSecret)
	}
	// The decoder skips line breaks, so input made only of them decodes to
	// nothing; an empty key would let anyone compute signatures.
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	return key, nil
}

// NewStandardSecret returns a fresh Standard Webhooks secret: "whsec_"
// followed by standard base64 of 32 random bytes, the format senders expect
// to be given.
func NewStandardSecret() string {
	return standardSecretPrefix + base64.StdEncoding.EncodeToString(randomBytes())
}

// NewKlingSecret returns a fresh secret for [KlingSignature]: 32 random bytes
// as unpadded URL-safe base64 (43 characters). The string itself, not its
// decoding, is the HMAC key ([]byte(s)), because that is how it is pasted
// into the Kling console; the encoding just keeps it printable.
func NewKlingSecret() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes())
}

// NewURLToken returns a fresh ingest URL token: 32 random bytes as unpadded
// URL-safe base64 (43 characters), so it can be placed in a query string
// without escaping.
func NewURLToken() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes())
}

// randomBytes returns secretBytes bytes from crypto/rand. Since Go 1.24
// rand.Read never returns an error; it crashes the program irrecoverably if
// the system generator fails, which is the only safe outcome for key
// generation.
func randomBytes() []byte {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b)
	return b
}
