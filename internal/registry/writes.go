package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Writes go to the KV bucket first; the in-memory copy follows through
// the watch (and is updated directly so the writer reads its own write).

// Create stores a new registration; ErrAlreadyExists when the id is taken.
func (r *Registry) Create(ctx context.Context, w *Webhook) (*Webhook, error) {
	w = w.clone()
	if err := w.decodeKeys(r.schemes); err != nil {
		return nil, err
	}
	data, err := r.encode(w)
	if err != nil {
		return nil, err
	}
	rev, err := r.kv.Create(ctx, w.ID, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("%w: %q", ErrAlreadyExists, w.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: create %q: %w", ErrUnavailable, w.ID, err)
	}
	w.revision = rev
	r.mu.Lock()
	r.storeLocked(w)
	r.mu.Unlock()
	return w, nil
}

// Update applies fn to a private copy of the stored registration and writes
// the result back, retrying when another writer got there first. fn may be
// called more than once and must not keep the copy.
func (r *Registry) Update(ctx context.Context, id string, fn func(*Webhook) error) (*Webhook, error) {
	for {
		e, err := r.kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: read %q: %w", ErrUnavailable, id, err)
		}
		cur, err := r.decode(e)
		if err != nil {
			return nil, err
		}
		next := cur.clone()
		if err := fn(next); err != nil {
			return nil, err
		}
		next.ID = id
		if err := next.decodeKeys(r.schemes); err != nil {
			return nil, err
		}
		data, err := r.encode(next)
		if err != nil {
			return nil, err
		}
		rev, err := r.kv.Update(ctx, id, data, e.Revision())
		if isConflict(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: update %q: %w", ErrUnavailable, id, err)
		}
		next.revision = rev
		r.mu.Lock()
		r.storeLocked(next)
		r.mu.Unlock()
		return next, nil
	}
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Delete removes a registration; ErrNotFound when there is none.
func (r *Registry) Delete(ctx context.Context, id string) error {
	e, err := r.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("%w: read %q: %w", ErrUnavailable, id, err)
	}
	if err := r.kv.Delete(ctx, id, jetstream.LastRevision(e.Revision())); err != nil {
		if isConflict(err) {
			return r.Delete(ctx, id)
		}
		return fmt.Errorf("%w: delete %q: %w", ErrUnavailable, id, err)
	}
	r.mu.Lock()
	delete(r.byID, id)
	r.mu.Unlock()
	return nil
}

// Rotate makes secret the current one and lets the previous secrets verify
// until now+grace (a grace of zero revokes them at once). Secrets already
// expired are dropped.
func Rotate(w *Webhook, secret string, now time.Time, grace time.Duration) {
	kept := []Secret{{Value: secret}}
	for _, s := range w.Secrets {
		if !s.Valid(now) || grace <= 0 {
			continue
		}
		if exp := now.Add(grace); s.ExpireTime.IsZero() || exp.Before(s.ExpireTime) {
			s.ExpireTime = exp
		}
		kept = append(kept, s)
	}
	w.Secrets = kept
}

// EnsureDefault makes the registration `default` verify X-Kling-Signature
// with secret, creating it when missing. The environment is the authority
// for this registration: a different stored secret is replaced at once.
func (r *Registry) EnsureDefault(ctx context.Context, secret string, now time.Time) error {
	if _, err := r.Key(gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE, secret); err != nil {
		return fmt.Errorf("registry: KLINGAI_WEBHOOK_SECRET: %w", err)
	}
	_, err := r.Create(ctx, &Webhook{
		ID:          DefaultID,
		DisplayName: "Kling (KLINGAI_WEBHOOK_SECRET)",
		Scheme:      gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE,
		Active:      true,
		Tolerance:   DefaultTolerance,
		Secrets:     []Secret{{Value: secret}},
		CreateTime:  now,
		UpdateTime:  now,
	})
	if !errors.Is(err, ErrAlreadyExists) {
		return err
	}
	_, err = r.Update(ctx, DefaultID, func(w *Webhook) error {
		if w.Scheme != gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE {
			return fmt.Errorf("registry: registration %q exists with scheme %s, but KLINGAI_WEBHOOK_SECRET needs SIGNATURE_SCHEME_KLING_SIGNATURE; delete it or unset the variable", DefaultID, w.Scheme)
		}
		if len(w.Secrets) == 1 && w.Secrets[0].Value == secret {
			return errUnchanged
		}
		w.Secrets = []Secret{{Value: secret}}
		w.UpdateTime = now
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

var errUnchanged = errors.New("registry: unchanged")
