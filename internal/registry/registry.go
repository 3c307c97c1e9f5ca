// Package registry keeps the webhook registrations: their settings and
// secrets, stored in the JetStream KV bucket and mirrored in memory. Every
// replica watches the bucket, so a change made on one (a rotated secret, a
// deleted registration) is honoured by all of them at once, and the ingest
// hot path reads only memory.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/store"
	"github.com/klingfan/klingfan/internal/verify"
)

// Errors returned by the registry. The API layer maps them to status codes.
var (
	ErrNotFound      = errors.New("registry: webhook not found")
	ErrAlreadyExists = errors.New("registry: webhook already exists")
	ErrUnavailable   = errors.New("registry: store unavailable")
	// ErrInactive is a delivery to a registration that is switched off.
	ErrInactive = errors.New("registry: webhook is inactive")
	// ErrFiltered is a delivery whose event type the registration's
	// event_types filter excludes.
	ErrFiltered = errors.New("registry: event type excluded by the webhook's filter")
)

// DefaultID is the registration that KLINGAI_WEBHOOK_SECRET configures and
// POST /webhooks/klingai delivers to.
const DefaultID = "default"

// DefaultTolerance is the signature timestamp tolerance of a new registration.
const DefaultTolerance = verify.DefaultTolerance

// Webhook is one registration as stored. Values handed out by the Registry
// are snapshots: callers must not modify them, and Update gives its callback
// a private copy.
type Webhook struct {
	ID          string                    `json:"id"`
	DisplayName string                    `json:"display_name,omitempty"`
	Scheme      gatewayv1.SignatureScheme `json:"scheme"`
	EventTypes  []gatewayv1.EventType     `json:"event_types,omitempty"`
	Active      bool                      `json:"active"`
	Tolerance   time.Duration             `json:"tolerance"`
	// Secrets holds the current secret first, then previous ones that are
	// still inside their rotation grace period.
	Secrets    []Secret  `json:"secrets"`
	CreateTime time.Time `json:"create_time"`
	UpdateTime time.Time `json:"update_time"`

	// keys caches the verification keys decoded from Secrets.
	keys [][]byte
	// revision is the KV revision this snapshot was read at.
	revision uint64
}

// Secret is one verification secret of a registration.
type Secret struct {
	// Value is the secret in plain text. With a Sealer it is empty in the
	// bucket and Sealed holds it encrypted.
	Value  string `json:"value,omitempty"`
	Sealed string `json:"sealed,omitempty"`
	// ExpireTime is when the secret stops verifying; zero means never.
	ExpireTime time.Time `json:"expire_time,omitzero"`
}

// Valid reports whether the secret still verifies at now.
func (s Secret) Valid(now time.Time) bool { return s.ExpireTime.IsZero() || now.Before(s.ExpireTime) }

// Keys returns the verification keys that are valid at now, current first.
func (w *Webhook) Keys(now time.Time) [][]byte {
	out := make([][]byte, 0, len(w.Secrets))
	for i, s := range w.Secrets {
		if s.Valid(now) && i < len(w.keys) && w.keys[i] != nil {
			out = append(out, w.keys[i])
		}
	}
	return out
}

// Accepts reports whether the registration's event filter lets t through.
func (w *Webhook) Accepts(t gatewayv1.EventType) bool {
	return len(w.EventTypes) == 0 || slices.Contains(w.EventTypes, t)
}

// PreviousSecretExpireTime returns when the last still-valid previous secret
// stops verifying, or zero when only the current secret is valid.
func (w *Webhook) PreviousSecretExpireTime(now time.Time) time.Time {
	var latest time.Time
	for _, s := range w.Secrets[min(1, len(w.Secrets)):] {
		if s.Valid(now) && s.ExpireTime.After(latest) {
			latest = s.ExpireTime
		}
	}
	return latest
}

// clone returns a deep copy that Update callbacks may change freely.
func (w *Webhook) clone() *Webhook {
	c := *w
	c.EventTypes = slices.Clone(w.EventTypes)
	c.Secrets = slices.Clone(w.Secrets)
	c.keys = nil
	return &c
}

// decodeKeys derives the verification key of every secret, in the scheme's
// own format.
func (w *Webhook) decodeKeys() error {
	w.keys = make([][]byte, len(w.Secrets))
	for i, s := range w.Secrets {
		k, err := Key(w.Scheme, s.Value)
		if err != nil {
			return err
		}
		w.keys[i] = k
	}
	return nil
}

// Key turns a secret into the bytes the scheme verifies with.
func Key(scheme gatewayv1.SignatureScheme, secret string) ([]byte, error) {
	sch, ok := verify.Lookup(scheme)
	if !ok {
		// Every scheme but STANDARD_WEBHOOKS uses the secret as its key;
		// an unknown one is refused where it is verified.
		sch, _ = verify.Lookup(gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE)
	}
	return sch.DecodeKey(secret)
}

// NewSecret generates a secret in the scheme's own format.
func NewSecret(scheme gatewayv1.SignatureScheme) string {
	sch, ok := verify.Lookup(scheme)
	if !ok {
		sch, _ = verify.Lookup(gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE)
	}
	return sch.NewSecret()
}

// Registry mirrors the KV bucket in memory and writes through to it.
type Registry struct {
	kv     jetstream.KeyValue
	log    *slog.Logger
	sealer *Sealer // nil: secrets are stored in plain text

	mu   sync.RWMutex
	byID map[string]*Webhook // guarded by mu; values are immutable snapshots
}

// Open loads every registration and starts watching the bucket. The watch
// stops when ctx ends; if it ends on its own (the connection to the log
// was lost long enough for the client to give the watch up), it is started
// again, replaying the current values, so the cache keeps following the
// bucket.
func Open(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger, opts ...Option) (*Registry, error) {
	r := &Registry{kv: kv, log: log, byID: make(map[string]*Webhook)}
	for _, o := range opts {
		o(r)
	}
	w, err := r.watch(ctx)
	if err != nil {
		return nil, err
	}
	go r.follow(ctx, w)
	return r, nil
}

// watch starts watching the bucket and applies the current values, which
// the watcher replays first and ends with a nil entry.
func (r *Registry) watch(ctx context.Context) (jetstream.KeyWatcher, error) {
	w, err := r.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: watch registrations: %w", ErrUnavailable, err)
	}
	// The watcher first replays current values, then sends nil.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		r.apply(e)
	}
	return w, nil
}

// follow applies changes from w until ctx ends, restarting the watch with
// backoff whenever it ends before. A restart replays every current value;
// apply ignores those the cache already holds and removes deleted ones.
func (r *Registry) follow(ctx context.Context, w jetstream.KeyWatcher) {
	const maxBackoff = 5 * time.Second
	for {
		r.consume(ctx, w)
		_ = w.Stop()
		if ctx.Err() != nil {
			return
		}
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, maxBackoff) {
			r.log.Warn("registration watch ended; restarting", "backoff", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			next, err := r.watch(ctx)
			if err == nil {
				r.log.Info("registration watch restarted")
				w = next
				break
			}
			if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed) {
				return // the store was closed: nothing left to follow
			}
			r.log.Warn("restarting registration watch failed", "error", err)
		}
	}
}

// consume applies changes from w until ctx ends or w's channel closes.
func (r *Registry) consume(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				r.apply(e)
			}
		}
	}
}

// apply folds one KV change into the cache, ignoring changes older than
// what the cache holds (a local write may already be newer).
func (r *Registry) apply(e jetstream.KeyValueEntry) {
	if strings.HasPrefix(e.Key(), store.InternalKeyPrefix) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.byID[e.Key()]
	if ok && cur.revision >= e.Revision() {
		return
	}
	if e.Operation() != jetstream.KeyValuePut {
		delete(r.byID, e.Key())
		return
	}
	w, err := r.decode(e)
	if err != nil {
		// Never log the value: it holds secrets.
		r.log.Error("ignoring unreadable registration", "id", e.Key(), "revision", e.Revision(), "error", err)
		return
	}
	r.byID[w.ID] = w
}

// storeLocked records a snapshot this replica just wrote. Caller holds mu.
func (r *Registry) storeLocked(w *Webhook) {
	if cur, ok := r.byID[w.ID]; ok && cur.revision >= w.revision {
		return
	}
	r.byID[w.ID] = w
}

// Option configures a Registry.
type Option func(*Registry)

// WithSealer encrypts secrets at rest with s.
func WithSealer(s *Sealer) Option { return func(r *Registry) { r.sealer = s } }

// encode serializes w for the bucket, sealing its secrets when a Sealer is
// configured.
func (r *Registry) encode(w *Webhook) ([]byte, error) {
	stored := *w
	stored.Secrets = make([]Secret, len(w.Secrets))
	for i, sec := range w.Secrets {
		if r.sealer != nil {
			sec = Secret{Sealed: r.sealer.seal(sec.Value, w.ID), ExpireTime: sec.ExpireTime}
		}
		stored.Secrets[i] = sec
	}
	data, err := json.Marshal(&stored)
	if err != nil {
		return nil, fmt.Errorf("registry: encode: %w", err)
	}
	return data, nil
}

func (r *Registry) decode(e jetstream.KeyValueEntry) (*Webhook, error) {
	var w Webhook
	if err := json.Unmarshal(e.Value(), &w); err != nil {
		return nil, fmt.Errorf("registry: decode %q: %w", e.Key(), err)
	}
	for i, sec := range w.Secrets {
		if sec.Sealed == "" {
			continue
		}
		if r.sealer == nil {
			return nil, fmt.Errorf("registry: decode %q: secrets are sealed but KLINGFAN_SECRET_KEY is not set", e.Key())
		}
		v, err := r.sealer.open(sec.Sealed, w.ID)
		if err != nil {
			return nil, fmt.Errorf("registry: decode %q: %w", e.Key(), err)
		}
		w.Secrets[i] = Secret{Value: v, ExpireTime: sec.ExpireTime}
	}
	if err := w.decodeKeys(); err != nil {
		return nil, fmt.Errorf("registry: decode %q: %w", e.Key(), err)
	}
	w.revision = e.Revision()
	return &w, nil
}

// Get returns the registration with id from memory.
func (r *Registry) Get(id string) (*Webhook, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	w, ok := r.byID[id]
	return w, ok
}

// List returns up to limit registrations with ids greater than after, in
// id order, and whether more follow.
func (r *Registry) List(after string, limit int) ([]*Webhook, bool) {
	r.mu.RLock()
	out := make([]*Webhook, 0, len(r.byID))
	for id, w := range r.byID {
		if id > after {
			out = append(out, w)
		}
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > limit {
		return out[:limit], true
	}
	return out, false
}

// Create stores a new registration; ErrAlreadyExists when the id is taken.
func (r *Registry) Create(ctx context.Context, w *Webhook) (*Webhook, error) {
	w = w.clone()
	if err := w.decodeKeys(); err != nil {
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
		return nil, fmt.Errorf("%w: create %q: %v", ErrUnavailable, w.ID, err)
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
			return nil, fmt.Errorf("%w: read %q: %v", ErrUnavailable, id, err)
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
		if err := next.decodeKeys(); err != nil {
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
			return nil, fmt.Errorf("%w: update %q: %v", ErrUnavailable, id, err)
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
		return fmt.Errorf("%w: read %q: %v", ErrUnavailable, id, err)
	}
	if err := r.kv.Delete(ctx, id, jetstream.LastRevision(e.Revision())); err != nil {
		if isConflict(err) {
			return r.Delete(ctx, id)
		}
		return fmt.Errorf("%w: delete %q: %v", ErrUnavailable, id, err)
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
	if _, err := Key(gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE, secret); err != nil {
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
