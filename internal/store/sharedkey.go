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
