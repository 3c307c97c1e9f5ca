package store

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names of the JetStream assets klingfan keeps beside the event log and the
// registrations. Their owners use them; the names and configurations live
// here, in Assets, so that creation, drift checks, backup, restore and the
// operator docs cover every one the same way.
const (
	// GroupsStreamName holds consumer groups' dead letters and redrive
	// requests (package groups); the groups themselves are durable
	// consumers on the events stream and on this one.
	GroupsStreamName = "KLINGFAN_GROUPS"
	// GroupsSubjectPrefix starts the groups stream's subjects:
	// "<prefix><group>.dead" and "<prefix><group>.redrive".
	GroupsSubjectPrefix = "klingfan.groups."
	// GroupMembersBucket holds one heartbeat key per attached group member
	// (package groups), in memory.
	GroupMembersBucket = "klingfan-group-members"
	// GroupMemberTTL is how long a member is counted after its last
	// heartbeat: the members bucket's TTL.
	GroupMemberTTL = 30 * time.Second
	// JobsBucketName holds each job's state folded from the log and the
	// projection's checkpoint (package jobs).
	JobsBucketName = "klingfan-jobs"
	// LateOutcomesStreamName records terminal statuses that arrived after
	// the job's outcome was logged (package outcome).
	LateOutcomesStreamName = "KLINGFAN_LATE_OUTCOMES"
	// LateOutcomesSubjectPrefix starts the late outcomes' subjects.
	LateOutcomesSubjectPrefix = "klingfan.late."
	// ReconcileBucketName holds the reconciler's lease and position
	// (package reconcile).
	ReconcileBucketName = "klingfan-reconcile"
	// CreatesBucketName holds CreateJob's record per request id and each
	// token's budget ledger (package submit).
	CreatesBucketName = "klingfan-creates"
)

// BackupPolicy says what a backup does with an asset.
type BackupPolicy int

const (
	// BackupSkip leaves the asset out; Asset.Skip says why.
	BackupSkip BackupPolicy = iota
	// BackupData snapshots the stream's messages.
	BackupData
	// BackupWithConsumers snapshots the messages and every durable
	// consumer with its position and pending acknowledgements.
	BackupWithConsumers
)

// AssetOptions are the settings the assets' configurations follow: the
// store's configuration as Open resolved it.
type AssetOptions struct {
	// Replicas is every asset's replication factor (--replicas).
	Replicas int
	// Retention is how long events are kept (--retention); what is
	// derived from events expires with them.
	Retention time.Duration
	// DuplicateWindow is the events stream's (--dedup-window).
	DuplicateWindow time.Duration
	// EventsMaxBytes caps the events stream: from the store budget or
	// --retention-bytes, -1 for no cap, 0 when the cap is not klingfan's
	// to set (an external deployment without --retention-bytes).
	EventsMaxBytes int64
	// RetentionBytes is --retention-bytes: a cap equal to it is the
	// operator's choice, any other cap klingfan derived from the budget.
	RetentionBytes int64
	// RefuseWhenFull selects --retention-policy refuse (discard new).
	RefuseWhenFull bool
	// ProjectionMaxBytes caps the job states: their share of the
	// embedded store's budget, 0 (not klingfan's to set) on an external
	// deployment, whose operator sizes the cluster.
	ProjectionMaxBytes int64
}

// Asset is one JetStream stream or key-value bucket klingfan keeps. Its
// configuration is data: Store.EnsureStream and Store.EnsureBucket create
// it from StreamConfig or BucketConfig and check an existing one against
// it, and Configuration describes it for the operator docs.
type Asset struct {
	// Stream is the stream's name (for a bucket, "KV_" + the bucket's).
	Stream string
	// Owner is the package that ensures the asset and reads and writes it.
	Owner string
	// Holds says what is in it.
	Holds string
	// StreamConfig is a stream's configuration for the given options;
	// nil for a bucket.
	StreamConfig func(AssetOptions) jetstream.StreamConfig
	// BucketConfig is a key-value bucket's configuration for the given
	// options; nil for a stream.
	BucketConfig func(AssetOptions) jetstream.KeyValueConfig
	// DropOldest makes a bucket with a size cap drop its oldest writes at
	// the cap, as the event log does, where a key-value bucket refuses
	// new ones.
	DropOldest bool
	// Drift says what a difference between an existing asset and its
	// configuration means for this asset; what start-up does about it is
	// the same for every asset (see Store.EnsureStream).
	Drift string
	// Backup is what `klingfan backup` does with it; Skip says why when
	// it is left out.
	Backup BackupPolicy
	Skip   string
}

// Assets is every JetStream asset klingfan keeps, in the order a backup
// writes them: registrations first, so a partial restore is never a log
// without the secrets that verify it.
var Assets = []Asset{
	{
		Stream: kvStreamName, Owner: "registry (created by store)",
		Holds: "webhook registrations with their (sealed) secrets, the key that signs page tokens",
		BucketConfig: func(o AssetOptions) jetstream.KeyValueConfig {
			return jetstream.KeyValueConfig{
				Bucket:      BucketName,
				Description: "klingfan webhook registrations",
				History:     1,
				Storage:     jetstream.FileStorage,
				Replicas:    o.Replicas,
			}
		},
		Drift:  "registrations on fewer replicas survive fewer node losses; a longer history keeps replaced secrets readable in the bucket",
		Backup: BackupData,
	},
	{
		Stream: StreamName, Owner: "store",
		Holds:        "every accepted event (the log), and the consumer groups' positions as durable consumers",
		StreamConfig: eventsStream,
		Drift:        "replicas disagree on how long and how much of the log is kept, or how it deduplicates; retention policy and storage cannot change in place (start-up fails naming the steps)",
		Backup:       BackupWithConsumers,
	},
	{
		Stream: GroupsStreamName, Owner: "groups",
		Holds: "dead letters and redrive requests of every consumer group, and each group's redrive consumer",
		StreamConfig: func(o AssetOptions) jetstream.StreamConfig {
			return jetstream.StreamConfig{
				Name:        GroupsStreamName,
				Description: "klingfan consumer groups: dead letters and redrive requests",
				Subjects:    []string{GroupsSubjectPrefix + ">"},
				Storage:     jetstream.FileStorage,
				Replicas:    o.Replicas,
				// Dead letters point to events, which are gone after
				// the retention anyway.
				MaxAge:     o.Retention,
				Duplicates: defaultDuplicates(o.Retention),
			}
		},
		Drift:  "dead letters kept for another time than the events they point to",
		Backup: BackupWithConsumers,
	},
	{
		Stream: "KV_" + JobsBucketName, Owner: "jobs",
		Holds: "each job's state folded from the log, and the projection's checkpoint",
		BucketConfig: func(o AssetOptions) jetstream.KeyValueConfig {
			return jetstream.KeyValueConfig{
				Bucket:      JobsBucketName,
				Description: "klingfan job states folded from the event log",
				History:     1,
				// A state lives as long as the log keeps the events it
				// came from.
				TTL:      o.Retention,
				MaxBytes: o.ProjectionMaxBytes,
				Storage:  jetstream.FileStorage,
				Replicas: o.Replicas,
			}
		},
		// At its cap the projection would stop following the log if the
		// bucket refused writes; its checkpoint, rewritten every second,
		// is never among the oldest.
		DropOldest: true,
		Drift:      "job states kept for another time or size than the log's; a lost or stale bucket is refolded from the log",
		Backup:     BackupData,
	},
	{
		Stream: IDIndexStreamName, Owner: "store",
		Holds: "event id → sequence, so GetEvent by id costs the same however many jobs the log holds",
		StreamConfig: func(o AssetOptions) jetstream.StreamConfig {
			return jetstream.StreamConfig{
				Name:        IDIndexStreamName,
				Description: "klingfan event id -> event subject, for GetEvent",
				Subjects:    []string{idIndexPrefix + ">"},
				Retention:   jetstream.LimitsPolicy,
				Discard:     jetstream.DiscardOld,
				// Entries are kept as long as events are.
				MaxAge:     o.Retention,
				Duplicates: defaultDuplicates(o.Retention),
				Storage:    jetstream.FileStorage,
				Replicas:   o.Replicas,
			}
		},
		Drift:  "ids indexed for another time than the events; an index that cannot be made (an account that may not create streams) only makes GetEvent fall back to a slower lookup",
		Backup: BackupData,
	},
	{
		Stream: LateOutcomesStreamName, Owner: "outcome",
		Holds: "terminal statuses that arrived after the job's outcome was logged (audit)",
		StreamConfig: func(o AssetOptions) jetstream.StreamConfig {
			return jetstream.StreamConfig{
				Name:        LateOutcomesStreamName,
				Description: "klingfan terminal statuses that arrived after the job's outcome was logged (audit only)",
				Subjects:    []string{LateOutcomesSubjectPrefix + ">"},
				MaxAge:      o.Retention,
				Duplicates:  defaultDuplicates(o.Retention),
				Storage:     jetstream.FileStorage,
				Replicas:    o.Replicas,
			}
		},
		Drift:  "audit records kept for another time than the events",
		Backup: BackupData,
	},
	{
		Stream: "KV_" + ReconcileBucketName, Owner: "reconcile",
		Holds: "the reconciler's lease and how far it has reconciled (only with the reconciler on)",
		BucketConfig: func(o AssetOptions) jetstream.KeyValueConfig {
			return jetstream.KeyValueConfig{
				Bucket:      ReconcileBucketName,
				Description: "klingfan reconciler lease and position",
				History:     1,
				Storage:     jetstream.FileStorage,
				Replicas:    o.Replicas,
			}
		},
		Drift:  "the lease and position on fewer replicas survive fewer node losses",
		Backup: BackupData,
	},
	{
		Stream: "KV_" + CreatesBucketName, Owner: "submit",
		Holds: "CreateJob's record per request id (claimed, then the task it created), so a request id makes one Kling task, and each token's budget ledger",
		BucketConfig: func(o AssetOptions) jetstream.KeyValueConfig {
			return jetstream.KeyValueConfig{
				Bucket:      CreatesBucketName,
				Description: "klingfan CreateJob records by request id, and token budgets",
				History:     1,
				// A request id is recognised as long as its job is.
				TTL:      o.Retention,
				Storage:  jetstream.FileStorage,
				Replicas: o.Replicas,
			}
		},
		Drift:  "request ids remembered for another time than their jobs",
		Backup: BackupData,
	},
	{
		Stream: "KV_" + GroupMembersBucket, Owner: "groups",
		Holds: "one heartbeat per attached group member, kept 30 s",
		BucketConfig: func(o AssetOptions) jetstream.KeyValueConfig {
			return jetstream.KeyValueConfig{
				Bucket:      GroupMembersBucket,
				Description: "klingfan consumer group members, by heartbeat",
				TTL:         GroupMemberTTL,
				Storage:     jetstream.MemoryStorage,
				Replicas:    o.Replicas,
				History:     1,
			}
		},
		Drift:  "members counted for another time after their last heartbeat",
		Backup: BackupSkip,
		Skip:   "in memory and expires in 30 s: members re-register with their next heartbeat",
	},
}

// eventsStream is the events stream's configuration.
func eventsStream(o AssetOptions) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "klingfan accepted webhook events",
		Subjects:    []string{subjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     discardPolicy(o.RefuseWhenFull),
		MaxBytes:    o.EventsMaxBytes,
		MaxAge:      o.Retention,
		Duplicates:  o.DuplicateWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		// AllowDirect stays off on purpose: direct gets may be served by a
		// lagging replica (breaking read-your-writes right after Append), and
		// the direct last-by-subject form cannot carry the wildcard subject
		// GetByID needs.
		AllowDirect: false,
	}
}

// defaultDuplicates is the duplicate window JetStream gives a stream that
// asks for none, written out so that a comparison with the server's value
// holds: two minutes, or the max age when shorter.
func defaultDuplicates(maxAge time.Duration) time.Duration {
	const window = 2 * time.Minute
	if maxAge > 0 && maxAge < window {
		return maxAge
	}
	return window
}

// assetNamed is the row of Assets for a stream name.
func assetNamed(stream string) (Asset, bool) {
	for _, a := range Assets {
		if a.Stream == stream {
			return a, true
		}
	}
	return Asset{}, false
}
