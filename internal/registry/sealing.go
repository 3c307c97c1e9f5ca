package registry

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/klingfan/klingfan/internal/store"
)

// ErrSealed reports a secret sealed with a key this process does not have.
var ErrSealed = errors.New("registry: secret sealed with an unknown key")

// Sealer encrypts registration secrets at rest with AES-256-GCM. The first
// key seals; every key opens, so keys can be rotated by putting the new key
// first and keeping the old one until every registration was rewritten.
// Each sealed value names its key by id, so the right key is found without
// trial decryption.
type Sealer struct {
	keys []sealKey // keys[0] seals
}

type sealKey struct {
	id   string
	aead cipher.AEAD
}

// sealPrefix versions the sealed format.
const sealPrefix = "v1:"

// NewSealer builds a Sealer from a comma-separated list of keys (the value
// of KLINGFAN_SECRET_KEY). Each key is any string of at least 32
// characters, for example `openssl rand -base64 32`; it is stretched to an
// AES-256 key with SHA-256.
func NewSealer(spec string) (*Sealer, error) {
	s := &Sealer{}
	for i, k := range strings.Split(spec, ",") {
		k = strings.TrimSpace(k)
		if len(k) < 32 {
			return nil, fmt.Errorf("registry: KLINGFAN_SECRET_KEY key %d is shorter than 32 characters", i+1)
		}
		sum := sha256.Sum256([]byte("klingfan secret key v1\x00" + k))
		block, err := aes.NewCipher(sum[:])
		if err != nil {
			return nil, fmt.Errorf("registry: secret key: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("registry: secret key: %w", err)
		}
		idSum := sha256.Sum256(append([]byte("klingfan key id\x00"), sum[:]...))
		s.keys = append(s.keys, sealKey{id: hex.EncodeToString(idSum[:4]), aead: aead})
	}
	return s, nil
}

// KeyID returns the id of the sealing key, safe to log.
func (s *Sealer) KeyID() string { return s.keys[0].id }

// seal encrypts plaintext; the registration id is authenticated with it,
// so a sealed secret cannot be moved to another registration.
func (s *Sealer) seal(plaintext, registrationID string) string {
	k := s.keys[0]
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce)
	ct := k.aead.Seal(nonce, nonce, []byte(plaintext), []byte(registrationID))
	return sealPrefix + k.id + ":" + base64.RawStdEncoding.EncodeToString(ct)
}

// open decrypts a value made by seal.
func (s *Sealer) open(sealed, registrationID string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return "", fmt.Errorf("registry: sealed secret has an unknown format")
	}
	id, body, ok := strings.Cut(rest, ":")
	if !ok {
		return "", fmt.Errorf("registry: sealed secret has an unknown format")
	}
	for _, k := range s.keys {
		if k.id != id {
			continue
		}
		ct, err := base64.RawStdEncoding.DecodeString(body)
		if err != nil || len(ct) < k.aead.NonceSize() {
			return "", fmt.Errorf("registry: sealed secret is corrupt")
		}
		pt, err := k.aead.Open(nil, ct[:k.aead.NonceSize()], ct[k.aead.NonceSize():], []byte(registrationID))
		if err != nil {
			return "", fmt.Errorf("registry: sealed secret does not authenticate with key %s", id)
		}
		return string(pt), nil
	}
	return "", fmt.Errorf("%w %s", ErrSealed, id)
}

// sharedKeyAD binds a sealed shared key to its name; the prefix keeps it
// apart from any registration id.
func sharedKeyAD(name string) string { return store.InternalKeyPrefix + "keys." + name }

// SealKey seals a shared key (store.KeySealer).
func (s *Sealer) SealKey(key []byte, name string) []byte {
	return []byte(s.seal(string(key), sharedKeyAD(name)))
}

// OpenKey opens a shared key sealed by SealKey (store.KeySealer).
func (s *Sealer) OpenKey(sealed []byte, name string) ([]byte, error) {
	v, err := s.open(string(sealed), sharedKeyAD(name))
	if err != nil {
		return nil, err
	}
	return []byte(v), nil
}
