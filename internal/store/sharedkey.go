package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// InternalKeyPrefix marks keys of the registry bucket that are not
// registrations, such as shared keys. Webhook ids cannot start with it.
const InternalKeyPrefix = "_"

// SharedKey returns a random 32-byte key that every replica sharing the
// bucket agrees on, creating it on first use. It keys things that must
// verify on any replica, such as page tokens.
func (s *Store) SharedKey(ctx context.Context, name string) ([]byte, error) {
	key := InternalKeyPrefix + "keys." + name
	for {
		e, err := s.kv.Get(ctx, key)
		if err == nil {
			return e.Value(), nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("%w: read %s: %w", ErrUnavailable, key, err)
		}
		fresh := make([]byte, 32)
		_, _ = rand.Read(fresh)
		if _, err := s.kv.Create(ctx, key, fresh); err == nil {
			return fresh, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("%w: create %s: %w", ErrUnavailable, key, err)
		}
		// Another replica created it first: read theirs.
	}
}

// KeySealer encrypts shared keys at rest. registry.Sealer is one.
type KeySealer interface {
	// SealKey encrypts key, binding it to name.
	SealKey(key []byte, name string) []byte
	// OpenKey decrypts what SealKey made for name.
	OpenKey(sealed []byte, name string) ([]byte, error)
}

// sharedKeyLen is the length of a shared key in plain text; a sealed one
// is longer.
const sharedKeyLen = 32

// SealedSharedKey is SharedKey with the key sealed at rest by ks, so a
// copy of the bucket does not let anyone forge what it authenticates. A
// key stored in plain text before is sealed in place (compare-and-set).
// With a nil ks it is SharedKey.
func (s *Store) SealedSharedKey(ctx context.Context, name string, ks KeySealer) ([]byte, error) {
	key := InternalKeyPrefix + "keys." + name
	plain, err := s.SharedKey(ctx, name)
	if err != nil || ks == nil {
		return plain, err
	}
	for {
		e, err := s.kv.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("%w: read %s: %w", ErrUnavailable, key, err)
		}
		if len(e.Value()) != sharedKeyLen {
			k, err := ks.OpenKey(e.Value(), name)
			if err != nil {
				return nil, fmt.Errorf("store: shared key %s: %w", name, err)
			}
			return k, nil
		}
		_, err = s.kv.Update(ctx, key, ks.SealKey(e.Value(), name), e.Revision())
		if err == nil {
			return e.Value(), nil
		}
		if !isWrongLastSequence(err) {
			return nil, fmt.Errorf("%w: seal %s: %w", ErrUnavailable, key, err)
		}
		// Another replica sealed it first: read theirs.
	}
}
