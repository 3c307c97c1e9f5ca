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
	// Setting is the JetStream setting, followed by the klingfan flag that
	// controls it when there is one, e.g. "replicas (--replicas)".
	Setting string
	// Have is the value on the server, Want the configured one.
	Have, Want string
	// Fixed marks a setting JetStream cannot change on an existing stream.
	Fixed bool
	// Derived marks a value klingfan works out itself rather than one an
	// operator configured (the size cap without --retention-bytes follows
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

// DriftError lists the differences Open found and did not apply: without
// Config.UpdateAssets on an external deployment, where another replica may
// run with other settings, or because a setting cannot be changed in place.
type DriftError struct {
	Differences []Difference
}

func (e *DriftError) Error() string {
	var b strings.Builder
	b.WriteString("store: the JetStream stream or bucket on the NATS server differs from this configuration:")
	fixed := false
	for _, d := range e.Differences {
		b.WriteString("\n  - ")
		b.WriteString(d.String())
		fixed = fixed || d.Fixed
	}
	if fixed {
		fmt.Fprintf(&b, "\nA setting that cannot be changed in place needs a new stream: copy the data elsewhere (nats stream backup %s), delete the stream (nats stream rm %s), then start klingfan, or configure klingfan to match the server.", StreamName, StreamName)
	} else {
		b.WriteString("\nTo apply the configured settings, start one replica with --nats-update-config (KLINGFAN_NATS_UPDATE_CONFIG=true) and give every replica the same flags; to keep the server's settings, change the flags to match them.")
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrConfigDrift) hold.
func (e *DriftError) Unwrap() error { return ErrConfigDrift }

// ensureAssets creates the events stream and the registrations bucket when
// they are missing. Existing ones are checked against cfg: the embedded
// server is this process's own, so differences are applied (and logged);
// on an external deployment they fail Open with a *DriftError unless
// cfg.UpdateAssets asks for them to be applied. Against an external
// deployment that is not ready yet, it retries for up to assetsTimeout.
func (s *Store) ensureAssets(ctx context.Context, cfg Config) error {
	if s.ns != nil {
		return s.ensureAssetsOnce(ctx, cfg)
	}
	ctx, cancel := context.WithTimeout(ctx, assetsTimeout)
	defer cancel()
	var last error
	_, err := retry.Forever(ctx, func() (struct{}, error) {
		last = s.ensureAssetsOnce(ctx, cfg)
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

func (s *Store) ensureAssetsOnce(ctx context.Context, cfg Config) error {
	apply := s.ns != nil || cfg.UpdateAssets
	stream, streamDiffs, err := s.ensureStream(ctx, cfg, apply)
	if err != nil {
		return err
	}
	kv, kvDiffs, err := s.ensureBucket(ctx, cfg, apply)
	if err != nil {
		return err
	}
	if diffs := append(streamDiffs, kvDiffs...); len(diffs) > 0 {
		return &DriftError{Differences: diffs}
	}
	s.stream, s.kv = stream, kv
	return nil
}

// wantStream is the events stream as cfg asks for it.
func wantStream(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "klingfan accepted webhook events",
		Subjects:    []string{subjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     discardPolicy(cfg.RefuseWhenFull),
		MaxBytes:    cfg.streamMaxBytes,
		MaxAge:      cfg.Retention,
		Duplicates:  cfg.DuplicateWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		// AllowDirect stays off on purpose: direct gets may be served by a
		// lagging replica (breaking read-your-writes right after Append), and
		// the direct last-by-subject form cannot carry the wildcard subject
		// GetByID needs.
		AllowDirect: false,
	}
}

// setting is one stream setting klingfan owns: how to read it for
// comparison and how to overlay the wanted value onto an existing config.
type setting struct {
	name  string
	fixed bool
	show  func(jetstream.StreamConfig) string
	set   func(dst *jetstream.StreamConfig, src jetstream.StreamConfig)
}

// streamSettings are the settings of the events stream that klingfan
// checks. Settings it does not own (limits, placement, sources an operator
// added) are left as they are on the server.
var streamSettings = []setting{
	{name: "subjects", show: func(c jetstream.StreamConfig) string {
		subj := slices.Clone(c.Subjects)
		slices.Sort(subj)
		return "[" + strings.Join(subj, " ") + "]"
	}, set: func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Subjects = s.Subjects }},
	{name: "retention policy", fixed: true, show: func(c jetstream.StreamConfig) string { return c.Retention.String() },
		set: func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Retention = s.Retention }},
	{name: "storage", fixed: true, show: func(c jetstream.StreamConfig) string { return c.Storage.String() },
		set: func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Storage = s.Storage }},
	{name: "replicas (--replicas)", show: func(c jetstream.StreamConfig) string { return fmt.Sprint(max(c.Replicas, 1)) },
		set: func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Replicas = s.Replicas }},
	{name: "max age (--retention)", show: func(c jetstream.StreamConfig) string { return showAge(c.MaxAge) },
		set: func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.MaxAge = s.MaxAge }},
	{name: maxBytesSetting, show: func(c jetstream.StreamConfig) string { return capString(c.MaxBytes) },
		set: func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.MaxBytes = s.MaxBytes }},
	{name: "duplicate window (--dedup-window)", show: func(c jetstream.StreamConfig) string { return c.Duplicates.String() },
		set: func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Duplicates = s.Duplicates }},
	{name: "discard policy (--retention-policy)", show: func(c jetstream.StreamConfig) string { return c.Discard.String() },
		set: func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Discard = s.Discard }},
	{name: "allow direct", show: func(c jetstream.StreamConfig) string { return fmt.Sprint(c.AllowDirect) },
		set: func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.AllowDirect = s.AllowDirect }},
}

// maxBytesSetting names the stream's size cap in streamSettings.
const maxBytesSetting = "max bytes (--retention-bytes)"

// ownedStreamSettings are the streamSettings this replica's flags decide.
// A replica on an external server without --retention-bytes does not own
// the size cap: the embedded server that made the stream derived it from
// its disk, or an operator set it, and neither is drift to refuse.
func ownedStreamSettings(cfg Config) []setting {
	if cfg.URL == "" || cfg.RetentionBytes != 0 {
		return streamSettings
	}
	return slices.DeleteFunc(slices.Clone(streamSettings), func(st setting) bool { return st.name == maxBytesSetting })
}

func showAge(d time.Duration) string {
	if d == 0 {
		return "unlimited"
	}
	return d.String()
}

// compare returns the differences between have and want over settings, and
// have with want's values overlaid (what an update would send).
func compare(asset string, settings []setting, have, want jetstream.StreamConfig) ([]Difference, jetstream.StreamConfig) {
	var diffs []Difference
	merged := have
	for _, st := range settings {
		h, w := st.show(have), st.show(want)
		if h == w {
			continue
		}
		diffs = append(diffs, Difference{Asset: asset, Setting: st.name, Have: h, Want: w, Fixed: st.fixed})
		st.set(&merged, want)
	}
	return diffs, merged
}

// asset is how ensure handles one JetStream asset, the stream (A is
// jetstream.Stream, C its config) or the bucket.
type asset[A, C any] struct {
	name             string // "stream klingfan-events", for errors
	notFound, exists error  // what get and create answer when it is missing or was made meanwhile
	get              func(context.Context) (A, error)
	create           func(context.Context) (A, error)
	created          func() // logs the creation
	compare          func(context.Context, A) ([]Difference, C, error)
	update           func(context.Context, C) (A, error)
}

// ensure looks an asset up and creates it when missing. When it differs
// from what cfg asks for, it applies the differences if apply is set and
// none is fixed; otherwise it returns them.
func ensure[A, C any](ctx context.Context, applied func(context.Context, []Difference), a asset[A, C], apply bool) (A, []Difference, error) {
	var zero A
	for {
		x, err := a.get(ctx)
		if errors.Is(err, a.notFound) {
			x, err = a.create(ctx)
			if errors.Is(err, a.exists) {
				continue // another replica created it first: check theirs
			}
			if err != nil {
				return zero, nil, classify("create "+a.name, err)
			}
			a.created()
			return x, nil, nil
		}
		if err != nil {
			return zero, nil, classify("look up "+a.name, err)
		}
		diffs, merged, err := a.compare(ctx, x)
		if err != nil {
			return zero, nil, err
		}
		if len(diffs) == 0 {
			return x, nil, nil
		}
		if !apply || slices.ContainsFunc(diffs, func(d Difference) bool { return d.Fixed }) {
			return zero, diffs, nil
		}
		x, err = a.update(ctx, merged)
		if err != nil {
			return zero, nil, classify("update "+a.name, err)
		}
		applied(ctx, diffs)
		return x, nil, nil
	}
}

// ensureStream looks the events stream up and creates it when missing.
// It returns the differences it did not apply.
func (s *Store) ensureStream(ctx context.Context, cfg Config, apply bool) (jetstream.Stream, []Difference, error) {
	want := wantStream(cfg)
	name := "stream " + StreamName
	var oldCap int64 // the cap the existing stream had
	applied := func(ctx context.Context, diffs []Difference) {
		for _, d := range diffs {
			lowered := want.MaxBytes > 0 && oldCap > 0 && want.MaxBytes < oldCap
			if d.Setting == maxBytesSetting && s.ns != nil && lowered && want.MaxBytes != cfg.RetentionBytes {
				// The budget shrank: Open warns once, for every cap.
				s.capLowered(oldCap, want.MaxBytes, cfg.MaxStoreBytes != 0)
				continue
			}
			logApplied(ctx, s.log, []Difference{d})
		}
	}
	return ensure(ctx, applied, asset[jetstream.Stream, jetstream.StreamConfig]{
		name:     name,
		notFound: jetstream.ErrStreamNotFound,
		exists:   jetstream.ErrStreamNameAlreadyInUse,
		get:      func(ctx context.Context) (jetstream.Stream, error) { return s.js.Stream(ctx, StreamName) },
		create:   func(ctx context.Context) (jetstream.Stream, error) { return s.js.CreateStream(ctx, want) },
		created: func() {
			s.log.Info("created stream", slog.String("stream", StreamName), slog.Int("replicas", cfg.Replicas))
		},
		compare: func(_ context.Context, stream jetstream.Stream) ([]Difference, jetstream.StreamConfig, error) {
			info := stream.CachedInfo()
			oldCap = info.Config.MaxBytes
			// A cap below what is stored would drop (or, refusing,
			// block on) events the moment it applied.
			if stored := int64(info.State.Bytes); want.MaxBytes > 0 && stored > want.MaxBytes { //nolint:gosec // a stream's size
				want.MaxBytes = stored
			}
			diffs, merged := compare(name, ownedStreamSettings(cfg), info.Config, want)
			if cfg.RetentionBytes == 0 {
				for i := range diffs {
					diffs[i].Derived = diffs[i].Setting == maxBytesSetting
				}
			}
			return diffs, merged, nil
		},
		update: func(ctx context.Context, merged jetstream.StreamConfig) (jetstream.Stream, error) {
			return s.js.UpdateStream(ctx, merged)
		},
	}, apply)
}

// wantBucket is the registrations bucket as cfg asks for it.
func wantBucket(cfg Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      BucketName,
		Description: "klingfan webhook registrations",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}
}

// ensureBucket looks the registrations bucket up and creates it when
// missing. It returns the differences it did not apply.
func (s *Store) ensureBucket(ctx context.Context, cfg Config, apply bool) (jetstream.KeyValue, []Difference, error) {
	want := wantBucket(cfg)
	name := "key-value bucket " + BucketName
	return ensure(ctx, func(ctx context.Context, d []Difference) { logApplied(ctx, s.log, d) }, asset[jetstream.KeyValue, jetstream.KeyValueConfig]{
		name:     name,
		notFound: jetstream.ErrBucketNotFound,
		exists:   jetstream.ErrBucketExists,
		get:      func(ctx context.Context) (jetstream.KeyValue, error) { return s.js.KeyValue(ctx, BucketName) },
		create:   func(ctx context.Context) (jetstream.KeyValue, error) { return s.js.CreateKeyValue(ctx, want) },
		created: func() {
			s.log.Info("created key-value bucket", slog.String("bucket", BucketName), slog.Int("replicas", cfg.Replicas))
		},
		compare: func(ctx context.Context, kv jetstream.KeyValue) ([]Difference, jetstream.KeyValueConfig, error) {
			return compareBucket(ctx, name, kv, want)
		},
		update: func(ctx context.Context, merged jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
			return s.js.UpdateKeyValue(ctx, merged)
		},
	}, apply)
}

// compareBucket lists how the bucket differs from want and the
// configuration that would fix what can be fixed.
func compareBucket(ctx context.Context, name string, kv jetstream.KeyValue, want jetstream.KeyValueConfig) ([]Difference, jetstream.KeyValueConfig, error) {
	status, err := kv.Status(ctx)
	if err != nil {
		return nil, want, classify("key-value bucket status "+BucketName, err)
	}
	bs, ok := status.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil, want, fmt.Errorf("store: key-value bucket %s: unexpected status type %T", BucketName, status)
	}
	have := bs.Config()
	var diffs []Difference
	if have.Storage != want.Storage {
		diffs = append(diffs, Difference{Asset: name, Setting: "storage", Have: have.Storage.String(), Want: want.Storage.String(), Fixed: true})
	}
	if hr := max(have.Replicas, 1); hr != want.Replicas {
		diffs = append(diffs, Difference{Asset: name, Setting: "replicas (--replicas)", Have: fmt.Sprint(hr), Want: fmt.Sprint(want.Replicas)})
	}
	if have.History != want.History {
		diffs = append(diffs, Difference{Asset: name, Setting: "history", Have: fmt.Sprint(have.History), Want: fmt.Sprint(want.History)})
	}
	merged := have
	merged.Replicas, merged.History = want.Replicas, want.History
	return diffs, merged, nil
}

// logApplied records each setting Open changed, so a change of retention
// or replicas is never silent. A derived value that moved with the disk is
// logged at debug: it changes at almost every start.
func logApplied(ctx context.Context, log *slog.Logger, diffs []Difference) {
	for _, d := range diffs {
		level := slog.LevelWarn
		if d.Derived {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "changed JetStream setting to match the configuration",
			slog.String("asset", d.Asset), slog.String("setting", d.Setting),
			slog.String("was", d.Have), slog.String("now", d.Want))
	}
}
