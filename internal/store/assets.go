package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klingfan/klingfan/internal/retry"
)

// assetsTimeout bounds how long Open keeps retrying while an external
// JetStream is not ready yet (a cluster still electing its meta leader, a
// stream without quorum), so replicas started together with their cluster
// come up instead of failing, and a cluster that never becomes ready fails
// start-up with the last error instead of hanging it.
const assetsTimeout = 30 * time.Second

// ErrConfigDrift reports that an existing stream or bucket has settings
// that differ from the configuration. The *DriftError that wraps it lists
// them.
var ErrConfigDrift = errors.New("store: existing JetStream settings differ from the configuration")

// Difference is one setting of an existing stream or bucket that differs
// from what the configuration asks for.
type Difference struct {
	// Asset names the stream or bucket, e.g. "stream KLINGFAN_EVENTS".
	Asset string
	// Stream is the JetStream stream behind it, e.g. "KV_klingfan-jobs".
	Stream string
	// Setting is the JetStream setting, followed by the klingfan flag that
	// controls it when there is one, e.g. "replicas (--replicas)".
	Setting string
	// Have is the value on the server, Want the configured one.
	Have, Want string
	// Fixed marks a setting JetStream cannot change on an existing stream.
	Fixed bool
	// Derived marks a value klingfan works out itself rather than one an
	// operator configured (a size cap without --retention-bytes follows
	// the disk): following it is routine, not a change worth a warning.
	Derived bool
}

func (d Difference) String() string {
	s := fmt.Sprintf("%s: %s is %s on the server, configured %s", d.Asset, d.Setting, d.Have, d.Want)
	if d.Fixed {
		s += " (cannot be changed in place)"
	}
	return s
}

// DriftError lists the differences start-up found and did not apply:
// without Config.UpdateAssets on an external deployment, where another
// replica may run with other settings, or because a setting cannot be
// changed in place.
type DriftError struct {
	Differences []Difference
}

func (e *DriftError) Error() string {
	var b strings.Builder
	b.WriteString("store: the JetStream stream or bucket on the NATS server differs from this configuration:")
	var fixed []string
	for _, d := range e.Differences {
		b.WriteString("\n  - ")
		b.WriteString(d.String())
		if d.Fixed && !slices.Contains(fixed, d.Stream) {
			fixed = append(fixed, d.Stream)
		}
	}
	if len(fixed) > 0 {
		b.WriteString("\nA setting that cannot be changed in place needs a new stream: ")
		for i, name := range fixed {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "copy the data elsewhere (nats stream backup %s), delete the stream (nats stream rm %s)", name, name)
		}
		b.WriteString(", then start klingfan, or configure klingfan to match the server.")
	} else {
		b.WriteString("\nTo apply the configured settings, start one replica with --nats-update-config (KLINGFAN_NATS_UPDATE_CONFIG=true) and give every replica the same flags; to keep the server's settings, change the flags to match them.")
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrConfigDrift) hold.
func (e *DriftError) Unwrap() error { return ErrConfigDrift }

// EnsureStream makes the stream of Assets' row for name exist as the row
// configures it, and returns it. It is the one policy for every asset:
// a missing asset is created; an existing one is compared with its
// configuration, and differences are applied (each logged) on the embedded
// server, which belongs to this process, or with Config.UpdateAssets.
// Otherwise, or when a setting cannot change in place, it fails with a
// *DriftError naming the asset and each differing setting: on an external
// deployment another replica may run with other flags, and overwriting
// them silently would make the replicas fight.
func (s *Store) EnsureStream(ctx context.Context, name string) (jetstream.Stream, error) {
	a, ok := assetNamed(name)
	if !ok || a.StreamConfig == nil {
		return nil, fmt.Errorf("store: no stream %q in store.Assets", name)
	}
	return s.ensureOrFail(ctx, a)
}

// EnsureBucket is EnsureStream for the key-value bucket of that name.
func (s *Store) EnsureBucket(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	a, ok := assetNamed("KV_" + bucket)
	if !ok || a.BucketConfig == nil {
		return nil, fmt.Errorf("store: no key-value bucket %q in store.Assets", bucket)
	}
	if _, err := s.ensureOrFail(ctx, a); err != nil {
		return nil, err
	}
	kv, err := s.js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, classify("open key-value bucket "+bucket, err)
	}
	return kv, nil
}

func (s *Store) ensureOrFail(ctx context.Context, a Asset) (jetstream.Stream, error) {
	st, diffs, err := s.ensure(ctx, a)
	if err != nil {
		return nil, err
	}
	if len(diffs) > 0 {
		return nil, &DriftError{Differences: diffs}
	}
	return st, nil
}

// assetOptions are the options the assets' configurations follow now.
func (s *Store) assetOptions() AssetOptions {
	o := s.assetOpts
	if s.ns != nil {
		o.ProjectionMaxBytes = s.projectionMaxBytes()
	}
	return o
}

// maxEnsureAttempts bounds how often ensure looks an asset up again after
// another replica created or deleted it in between.
const maxEnsureAttempts = 5

// ensure looks an asset up and creates it when missing. When it differs
// from its configuration, it applies the differences if the policy allows
// and none is fixed; otherwise it returns them.
func (s *Store) ensure(ctx context.Context, a Asset) (jetstream.Stream, []Difference, error) {
	o := s.assetOptions()
	apply := s.ns != nil || s.updateAssets
	for range maxEnsureAttempts {
		st, err := s.js.Stream(ctx, a.Stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			st, err = s.create(ctx, a, o)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // another replica created it first: check theirs
			}
			if err != nil {
				return nil, nil, classify("create "+a.label(), err)
			}
			s.log.Info("created "+a.kind(), slog.String("name", a.name()), slog.Int("replicas", o.Replicas))
			// A bucket is made by JetStream's key-value layer, which has no
			// word for every setting (dropping the oldest writes): bring
			// what it made to the row. It is this process's, so no policy.
			if diffs, merged := a.compare(st.CachedInfo(), o); len(diffs) > 0 {
				if st, err = s.js.UpdateStream(ctx, merged); err != nil {
					return nil, nil, classify("configure "+a.label(), err)
				}
			}
			return st, nil, nil
		}
		if err != nil {
			return nil, nil, classify("look up "+a.label(), err)
		}
		info := st.CachedInfo()
		diffs, merged := a.compare(info, o)
		if len(diffs) == 0 {
			return st, nil, nil
		}
		if !apply || slices.ContainsFunc(diffs, func(d Difference) bool { return d.Fixed }) {
			return nil, diffs, nil
		}
		if st, err = s.js.UpdateStream(ctx, merged); err != nil {
			return nil, nil, classify("update "+a.label(), err)
		}
		s.applied(ctx, a, info.Config.MaxBytes, merged.MaxBytes, diffs)
		return st, nil, nil
	}
	return nil, nil, fmt.Errorf("store: %s kept appearing and disappearing while it was ensured: %w", a.label(), ErrUnavailable)
}

// create makes the asset as its row configures it.
func (s *Store) create(ctx context.Context, a Asset, o AssetOptions) (jetstream.Stream, error) {
	if a.BucketConfig == nil {
		return s.js.CreateStream(ctx, a.StreamConfig(o))
	}
	if _, err := s.js.CreateKeyValue(ctx, a.BucketConfig(o)); err != nil {
		return nil, err // ErrBucketExists wraps ErrStreamNameAlreadyInUse
	}
	return s.js.Stream(ctx, a.Stream)
}

// applied logs each setting ensure changed, so a change of retention or
// replicas is never silent. A derived value that moved with the disk is
// logged at debug: it changes at almost every start. A lower cap on the
// events stream is the one warning of a start whose budget shrank.
func (s *Store) applied(ctx context.Context, a Asset, oldCap, newCap int64, diffs []Difference) {
	lowered := s.ns != nil && a.Stream == StreamName && newCap > 0 && oldCap > 0 && newCap < oldCap
	for _, d := range diffs {
		if lowered && d.Derived {
			s.space.mu.Lock()
			explicit := s.space.limits.MaxStoreBytes != 0
			s.space.mu.Unlock()
			s.capLowered(oldCap, newCap, explicit)
			continue
		}
		level := slog.LevelWarn
		if d.Derived {
			level = slog.LevelDebug
		}
		s.log.Log(ctx, level, "changed JetStream setting to match the configuration",
			slog.String("asset", d.Asset), slog.String("setting", d.Setting),
			slog.String("was", d.Have), slog.String("now", d.Want))
	}
}

// ensureAssets ensures the assets the store itself owns: the events
// stream, the registrations bucket and the id index. Their differences
// are reported together, so one start lists everything to resolve.
// Against an external deployment that is not ready yet, it retries for up
// to assetsTimeout.
func (s *Store) ensureAssets(ctx context.Context, cfg Config) error {
	if s.ns != nil {
		return s.ensureAssetsOnce(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, assetsTimeout)
	defer cancel()
	var last error
	_, err := retry.Forever(ctx, func() (struct{}, error) {
		last = s.ensureAssetsOnce(ctx)
		if last != nil && !errors.Is(last, ErrUnavailable) {
			return struct{}{}, retry.Permanent(last)
		}
		return struct{}{}, last
	}, func(err error, wait time.Duration) {
		s.log.Warn("NATS JetStream not ready; retrying", slog.Any("err", err), slog.Duration("backoff", wait))
	})
	if err != nil && ctx.Err() != nil && last != nil {
		return fmt.Errorf("%w (gave up after %s; with %d replicas the cluster needs at least %d JetStream servers)", last, assetsTimeout, cfg.Replicas, cfg.Replicas)
	}
	return err
}

func (s *Store) ensureAssetsOnce(ctx context.Context) error {
	events, _ := assetNamed(StreamName)
	stream, diffs, err := s.ensure(ctx, events)
	if err != nil {
		return err
	}
	registrations, _ := assetNamed(kvStreamName)
	_, kvDiffs, err := s.ensure(ctx, registrations)
	if err != nil {
		return err
	}
	diffs = append(diffs, kvDiffs...)
	index, _ := assetNamed(IDIndexStreamName)
	idIndex, indexDiffs, err := s.ensure(ctx, index)
	diffs = append(diffs, indexDiffs...)
	if len(diffs) > 0 {
		return &DriftError{Differences: diffs}
	}
	if err != nil {
		// The index only makes lookups fast, never decides them.
		s.log.Warn("no event id index: GetEvent falls back to a lookup whose cost grows with the number of jobs",
			slog.String("stream", IDIndexStreamName), slog.Any("err", err))
	}
	kv, err := s.js.KeyValue(ctx, BucketName)
	if err != nil {
		return classify("open key-value bucket "+BucketName, err)
	}
	s.stream, s.kv, s.idIndex = stream, kv, idIndex
	return nil
}
