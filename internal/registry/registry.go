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
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/retry"
	"github.com/klingfan/klingfan/internal/store"
)

// Errors returned by the registry.
var (
	ErrNotFound      = errkind.New(errkind.NotFound, "registry", "webhook not found")
	ErrAlreadyExists = errkind.New(errkind.AlreadyExists, "registry", "webhook id already taken")
	ErrUnavailable   = errkind.New(errkind.Unavailable, "registry", "webhook registry unavailable; retry later")
	// ErrInactive is a delivery to a registration that is switched off.
	ErrInactive = errkind.New(errkind.FailedPrecondition, "registry", "webhook is inactive")
	// ErrFiltered is a delivery whose event type the registration's
	// event_types filter excludes.
	ErrFiltered = errors.New("registry: event type excluded by the webhook's filter")
)

// DefaultID is the registration that KLINGAI_WEBHOOK_SECRET configures and
// POST /webhooks/klingai delivers to.
const DefaultID = "default"

// DefaultTolerance is the signature timestamp tolerance of a new
// registration: the Standard Webhooks default, verify.DefaultTolerance (a
// test keeps the two equal without the registry importing verify).
const DefaultTolerance = 5 * time.Minute

// Registry mirrors the KV bucket in memory and writes through to it.
type Registry struct {
	kv      jetstream.KeyValue
	log     *slog.Logger
	sealer  *Sealer // nil: secrets are stored in plain text
	schemes Schemes

	// watcher is the watch Open started; Run follows it, then its
	// successors.
	watcher jetstream.KeyWatcher

	mu   sync.RWMutex
	byID map[string]*Webhook // guarded by mu; values are immutable snapshots
	// unreadable holds the ids of stored registrations that could not be
	// decoded; guarded by mu.
	unreadable map[string]struct{}
}

// Config is what a Registry needs.
type Config struct {
	// KV is the registrations bucket.
	KV     jetstream.KeyValue
	Logger *slog.Logger
	// Schemes decodes keys and mints secrets (verify.SchemeTable).
	Schemes Schemes
	// Sealer encrypts secrets at rest; nil stores them in plain text.
	Sealer *Sealer
}

// Open loads every registration and starts watching the bucket; Run
// follows the watch. Until Run is called, the cache holds what Open loaded
// and this process's own writes.
func Open(ctx context.Context, cfg Config) (*Registry, error) {
	r := &Registry{kv: cfg.KV, log: cfg.Logger, schemes: cfg.Schemes, sealer: cfg.Sealer,
		byID: make(map[string]*Webhook), unreadable: make(map[string]struct{})}
	w, err := r.watch(ctx)
	if err != nil {
		return nil, err
	}
	r.watcher = w
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

// Run applies the bucket's changes to the cache until ctx ends, then
// returns nil; it is called once, by the owner of the process's
// goroutines. When the watch ends on its own (the connection to the log
// was lost long enough for the client to give it up), Run starts it again
// with backoff; a restart replays every current value, and apply ignores
// those the cache already holds and removes deleted ones. Run fails only
// when the store's connection is closed while ctx is still live.
func (r *Registry) Run(ctx context.Context) error {
	w := r.watcher
	for {
		r.consume(ctx, w)
		_ = w.Stop()
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("registration watch ended; restarting")
		next, err := retry.Forever(ctx, func() (jetstream.KeyWatcher, error) {
			w, err := r.watch(ctx)
			if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed) {
				return nil, retry.Permanent(err) // the store was closed
			}
			return w, err
		}, func(err error, wait time.Duration) {
			r.log.Warn("restarting registration watch failed", "error", err, "backoff", wait)
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("registry: watch: %w", err)
		}
		r.log.Info("registration watch restarted")
		w = next
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
	delete(r.unreadable, e.Key())
	if e.Operation() != jetstream.KeyValuePut {
		delete(r.byID, e.Key())
		return
	}
	w, err := r.decode(e)
	if err != nil {
		// Never log the value: it holds secrets.
		r.log.Error("ignoring unreadable registration", "id", e.Key(), "revision", e.Revision(), "error", err)
		r.unreadable[e.Key()] = struct{}{}
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
	if err := w.decodeKeys(r.schemes); err != nil {
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
