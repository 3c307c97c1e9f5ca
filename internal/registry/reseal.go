package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klingfan/klingfan/internal/store"
)

// SealAll seals every stored secret that is in plain text, or sealed with a
// key other than the current one, so setting or rotating
// KLINGFAN_SECRET_KEY after registrations exist protects them too. Each
// write is a compare-and-set on the revision read, so a concurrent update
// by another replica wins and is looked at again. It returns the ids it
// sealed. Without a Sealer it does nothing.
func (r *Registry) SealAll(ctx context.Context) ([]string, error) {
	if r.sealer == nil {
		return nil, nil
	}
	keys, err := r.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: list registrations: %w", ErrUnavailable, err)
	}
	var sealed []string
	for key := range keys.Keys() {
		if strings.HasPrefix(key, store.InternalKeyPrefix) {
			continue
		}
		done, err := r.sealOne(ctx, key)
		if err != nil {
			return sealed, err
		}
		if done {
			sealed = append(sealed, key)
		}
	}
	return sealed, nil
}

// sealOne re-encodes one registration when a secret needs sealing.
func (r *Registry) sealOne(ctx context.Context, key string) (bool, error) {
	for {
		e, err := r.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%w: read %q: %w", ErrUnavailable, key, err)
		}
		var raw Webhook
		if err := json.Unmarshal(e.Value(), &raw); err != nil {
			return false, fmt.Errorf("registry: decode %q: %w", key, err)
		}
		current := sealPrefix + r.sealer.KeyID() + ":"
		if !slices.ContainsFunc(raw.Secrets, func(s Secret) bool { return !strings.HasPrefix(s.Sealed, current) }) {
			return false, nil
		}
		w, err := r.decode(e)
		if err != nil {
			return false, nil // unreadable: reported by Unreadable, never overwritten
		}
		data, err := r.encode(w)
		if err != nil {
			return false, err
		}
		rev, err := r.kv.Update(ctx, key, data, e.Revision())
		if isConflict(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("%w: update %q: %w", ErrUnavailable, key, err)
		}
		w.revision = rev
		r.mu.Lock()
		r.storeLocked(w)
		r.mu.Unlock()
		return true, nil
	}
}

// Unreadable returns the ids of stored registrations this process cannot
// open (sealed with a key it lacks, or corrupt), sorted. Their deliveries
// would get 404, so the server refuses to start, and reports not ready,
// while there are any.
func (r *Registry) Unreadable() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]string, 0, len(r.unreadable))
	for id := range r.unreadable {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
