package store

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// setting is one setting of a stream that klingfan configures: how to read
// it for comparison and how to overlay the wanted value onto an existing
// configuration. Settings klingfan does not configure (placement, limits
// an operator added, sources) are left as they are on the server.
type setting struct {
	name  string
	fixed bool // JetStream cannot change it on an existing stream
	show  func(jetstream.StreamConfig) string
	set   func(dst *jetstream.StreamConfig, src jetstream.StreamConfig)
	// quiet reports a value Configuration leaves out: what JetStream
	// would choose anyway.
	quiet func(jetstream.StreamConfig) bool
}

// Names of the settings compare treats specially. A cap of 0 in a row's
// configuration is not klingfan's to set, and is left as it is; so is a
// bucket's discard policy then, which only acts at a cap.
const (
	maxBytes = "max bytes"
	discard  = "discard policy"
)

var (
	subjectsSetting = setting{name: "subjects", show: func(c jetstream.StreamConfig) string {
		subj := slices.Clone(c.Subjects)
		slices.Sort(subj)
		return "[" + strings.Join(subj, " ") + "]"
	}, set: func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Subjects = s.Subjects }}
	retentionSetting = setting{name: "retention policy", fixed: true,
		show:  func(c jetstream.StreamConfig) string { return c.Retention.String() },
		set:   func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Retention = s.Retention },
		quiet: func(c jetstream.StreamConfig) bool { return c.Retention == jetstream.LimitsPolicy }}
	storageSetting = setting{name: "storage", fixed: true,
		show: func(c jetstream.StreamConfig) string { return c.Storage.String() },
		set:  func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Storage = s.Storage }}
	replicasSetting = setting{name: "replicas",
		show: func(c jetstream.StreamConfig) string { return fmt.Sprint(max(c.Replicas, 1)) },
		set:  func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Replicas = s.Replicas }}
	maxBytesSetting = setting{name: maxBytes,
		show:  func(c jetstream.StreamConfig) string { return capString(c.MaxBytes) },
		set:   func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.MaxBytes = s.MaxBytes },
		quiet: func(c jetstream.StreamConfig) bool { return c.MaxBytes <= 0 }}
	duplicatesSetting = setting{name: "duplicate window",
		show:  func(c jetstream.StreamConfig) string { return c.Duplicates.String() },
		set:   func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Duplicates = s.Duplicates },
		quiet: func(c jetstream.StreamConfig) bool { return c.Duplicates == defaultDuplicates(c.MaxAge) }}
	allowDirectSetting = setting{name: "allow direct",
		show:  func(c jetstream.StreamConfig) string { return fmt.Sprint(c.AllowDirect) },
		set:   func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.AllowDirect = s.AllowDirect },
		quiet: func(c jetstream.StreamConfig) bool { return !c.AllowDirect }}
	historySetting = setting{name: "history",
		show: func(c jetstream.StreamConfig) string { return fmt.Sprint(c.MaxMsgsPerSubject) },
		set:  func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.MaxMsgsPerSubject = s.MaxMsgsPerSubject }}
)

// ageSetting is a stream's max age, named as the row speaks of it (a
// bucket's TTL). JetStream refuses a duplicate window longer than the max
// age, so a shorter age shortens the window with it.
func ageSetting(name string) setting {
	return setting{name: name,
		show: func(c jetstream.StreamConfig) string { return showAge(c.MaxAge) },
		set: func(d *jetstream.StreamConfig, s jetstream.StreamConfig) {
			d.MaxAge = s.MaxAge
			if d.MaxAge > 0 && d.Duplicates > d.MaxAge {
				d.Duplicates = d.MaxAge
			}
		},
		quiet: func(c jetstream.StreamConfig) bool { return c.MaxAge == 0 }}
}

// discardSetting is the discard policy; quietDefault is the one JetStream
// (or its key-value layer) picks by itself.
func discardSetting(quietDefault jetstream.DiscardPolicy) setting {
	return setting{name: discard,
		show:  func(c jetstream.StreamConfig) string { return c.Discard.String() },
		set:   func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Discard = s.Discard },
		quiet: func(c jetstream.StreamConfig) bool { return c.Discard == quietDefault }}
}

// streamSettings and bucketSettings are the settings checked on a stream
// and on a key-value bucket's stream, whose subjects, roll-ups and direct
// gets belong to JetStream's key-value layer.
var (
	streamSettings = []setting{subjectsSetting, retentionSetting, storageSetting, replicasSetting,
		ageSetting("max age"), maxBytesSetting, duplicatesSetting, discardSetting(jetstream.DiscardOld), allowDirectSetting}
	bucketSettings = []setting{storageSetting, replicasSetting, historySetting,
		ageSetting("TTL"), maxBytesSetting, discardSetting(jetstream.DiscardNew)}
)

// assetOption is one option a setting may follow: the flag a Difference
// names, and how Configuration says it.
type assetOption struct {
	flag string
	says string
	vary func(*AssetOptions)
}

// assetOptionList is every option of AssetOptions a configuration may
// follow. Which ones a setting follows is found by varying each from
// probeOptions, so a row's configuration function is the one place that
// says it.
var assetOptionList = []assetOption{
	{"--replicas", "--replicas", func(o *AssetOptions) { o.Replicas++ }},
	{"--retention", "--retention", func(o *AssetOptions) { o.Retention *= 2 }},
	{"--dedup-window", "--dedup-window", func(o *AssetOptions) { o.DuplicateWindow *= 2 }},
	{"--retention-bytes", "from the budget or --retention-bytes", func(o *AssetOptions) { o.EventsMaxBytes *= 2 }},
	{"--retention-policy", "--retention-policy", func(o *AssetOptions) { o.RefuseWhenFull = !o.RefuseWhenFull }},
	{"--max-store-bytes", "a quarter of the embedded store's budget", func(o *AssetOptions) { o.ProjectionMaxBytes *= 2 }},
}

// probeOptions has a distinct value for every option.
var probeOptions = AssetOptions{
	Replicas: 3, Retention: 168 * time.Hour, DuplicateWindow: 5 * time.Minute,
	EventsMaxBytes: 1 << 30, ProjectionMaxBytes: 1 << 28,
}

// follows returns the options st follows in a's configuration.
func (a Asset) follows(st setting) []assetOption {
	base := st.show(a.want(probeOptions))
	var opts []assetOption
	for _, opt := range assetOptionList {
		o := probeOptions
		opt.vary(&o)
		if st.show(a.want(o)) != base {
			opts = append(opts, opt)
		}
	}
	return opts
}

// settingName is st's name with the flags it follows in a: "replicas
// (--replicas)".
func (a Asset) settingName(st setting) string {
	opts := a.follows(st)
	if len(opts) == 0 {
		return st.name
	}
	flags := make([]string, len(opts))
	for i, opt := range opts {
		flags[i] = opt.flag
	}
	return st.name + " (" + strings.Join(flags, ", ") + ")"
}

// Configuration describes a's configuration, for the operator docs: each
// setting with the flag it follows, or its value.
func (a Asset) Configuration() string {
	want := a.want(probeOptions)
	parts := []string{a.kind()}
	for _, st := range a.settings() {
		if opts := a.follows(st); len(opts) > 0 {
			says := make([]string, len(opts))
			for i, opt := range opts {
				says[i] = opt.says
			}
			parts = append(parts, st.name+" "+strings.Join(says, " and "))
			continue
		}
		if st.quiet == nil || !st.quiet(want) {
			parts = append(parts, st.name+" "+st.show(want))
		}
	}
	return strings.Join(parts, ", ")
}

func (a Asset) isBucket() bool { return a.BucketConfig != nil }

func (a Asset) settings() []setting {
	if a.isBucket() {
		return bucketSettings
	}
	return streamSettings
}

// kind is "stream" or "key-value bucket".
func (a Asset) kind() string {
	if a.isBucket() {
		return "key-value bucket"
	}
	return "stream"
}

// name is the stream's or the bucket's name.
func (a Asset) name() string { return strings.TrimPrefix(a.Stream, "KV_") }

// label names the asset in errors: "key-value bucket klingfan-jobs".
func (a Asset) label() string { return a.kind() + " " + a.name() }

// want is the asset's configuration as a stream: for a bucket, the
// settings JetStream's key-value layer gives its stream.
func (a Asset) want(o AssetOptions) jetstream.StreamConfig {
	if !a.isBucket() {
		return a.StreamConfig(o)
	}
	kv := a.BucketConfig(o)
	c := jetstream.StreamConfig{
		Name:              a.Stream,
		MaxMsgsPerSubject: int64(max(kv.History, 1)),
		MaxAge:            kv.TTL,
		MaxBytes:          kv.MaxBytes,
		Storage:           kv.Storage,
		Replicas:          max(kv.Replicas, 1),
		Discard:           jetstream.DiscardNew,
	}
	if a.DropOldest && kv.MaxBytes > 0 {
		c.Discard = jetstream.DiscardOld
	}
	return c
}

// compare returns how the stream described by info differs from a's
// configuration for o, and info's configuration with the configured
// values overlaid (what an update sends). A cap below what is stored is
// raised to it: it would drop (or, refusing, block on) data the moment it
// applied.
func (a Asset) compare(info *jetstream.StreamInfo, o AssetOptions) ([]Difference, jetstream.StreamConfig) {
	want := a.want(o)
	if stored := int64(info.State.Bytes); want.MaxBytes > 0 && stored > want.MaxBytes { //nolint:gosec // a stream's size
		want.MaxBytes = stored
	}
	var diffs []Difference
	merged := info.Config
	for _, st := range a.settings() {
		if want.MaxBytes == 0 && (st.name == maxBytes || st.name == discard && a.isBucket()) {
			continue // not klingfan's to set: the operator's, or none
		}
		have, w := st.show(info.Config), st.show(want)
		if have == w {
			continue
		}
		diffs = append(diffs, Difference{
			Asset: a.label(), Stream: a.Stream, Setting: a.settingName(st), Have: have, Want: w, Fixed: st.fixed,
			Derived: st.name == maxBytes && want.MaxBytes != o.RetentionBytes,
		})
		st.set(&merged, want)
	}
	return diffs, merged
}

func showAge(d time.Duration) string {
	if d == 0 {
		return "unlimited"
	}
	return d.String()
}
