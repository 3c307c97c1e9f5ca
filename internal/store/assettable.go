package store

// Names of the JetStream assets klingfan keeps beside the event log and the
// registrations. Their owners create and use them; the names live here, in
// Assets, so that backup, restore and the operator docs cover every one.
const (
	// GroupsStreamName holds consumer groups' dead letters and redrive
	// requests (package groups); the groups themselves are durable
	// consumers on the events stream and on this one.
	GroupsStreamName = "KLINGFAN_GROUPS"
	// GroupMembersBucket holds one heartbeat key per attached group member
	// (package groups), in memory.
	GroupMembersBucket = "klingfan-group-members"
	// JobsBucketName holds each job's state folded from the log and the
	// projection's checkpoint (package jobs).
	JobsBucketName = "klingfan-jobs"
	// LateOutcomesStreamName records terminal statuses that arrived after
	// the job's outcome was logged (package outcome).
	LateOutcomesStreamName = "KLINGFAN_LATE_OUTCOMES"
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

// Asset is one JetStream stream or key-value bucket klingfan keeps.
type Asset struct {
	// Stream is the stream's name (for a bucket, "KV_" + the bucket's).
	Stream string
	// Owner is the package that creates the asset and reads and writes it.
	Owner string
	// Holds says what is in it.
	Holds string
	// Config is the configuration its owner asks for.
	Config string
	// Drift says what a difference between an existing asset (on a
	// cluster, made by another replica or an operator) and that
	// configuration means, and what start-up does about it.
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
		Holds:  "webhook registrations with their (sealed) secrets, the key that signs page tokens",
		Config: "KV bucket " + BucketName + ", file, history 1, replicas --replicas",
		Drift:  "replicas or history differ: start-up fails listing them, or applies them with --nats-update-config; the embedded store applies them",
		Backup: BackupData,
	},
	{
		Stream: StreamName, Owner: "store",
		Holds:  "every accepted event (the log), and the consumer groups' positions as durable consumers",
		Config: "stream, file, subjects klingfan.events.>, max age --retention, max bytes from the budget or --retention-bytes, discard per --retention-policy, duplicate window --dedup-window, replicas --replicas",
		Drift:  "as the registrations; retention policy and storage cannot change in place (start-up fails naming the steps)",
		Backup: BackupWithConsumers,
	},
	{
		Stream: GroupsStreamName, Owner: "groups",
		Holds:  "dead letters and redrive requests of every consumer group, and each group's redrive consumer",
		Config: "stream, file, subjects klingfan.groups.>, max age --retention, duplicate window 2m, replicas --replicas",
		Drift:  "brought to the configuration at every start (create or update)",
		Backup: BackupWithConsumers,
	},
	{
		Stream: "KV_" + JobsBucketName, Owner: "jobs",
		Holds:  "each job's state folded from the log, and the projection's checkpoint",
		Config: "KV bucket " + JobsBucketName + ", file, history 1, TTL --retention, max bytes a quarter of the budget (discard old), replicas --replicas",
		Drift:  "brought to the configuration at every start; a lost or stale bucket is refolded from the log",
		Backup: BackupData,
	},
	{
		Stream: IDIndexStreamName, Owner: "store",
		Holds:  "event id → sequence, so GetEvent by id costs the same however many jobs the log holds",
		Config: "stream, file, subjects klingfan.ids.>, max age --retention, discard old, replicas --replicas",
		Drift:  "brought to the configuration on the embedded store; on a cluster created when missing, never changed; without it GetEvent falls back to a slower lookup",
		Backup: BackupData,
	},
	{
		Stream: LateOutcomesStreamName, Owner: "outcome",
		Holds:  "terminal statuses that arrived after the job's outcome was logged (audit)",
		Config: "stream, file, subjects klingfan.late.>, max age --retention, replicas --replicas",
		Drift:  "brought to the configuration at every start",
		Backup: BackupData,
	},
	{
		Stream: "KV_" + ReconcileBucketName, Owner: "reconcile",
		Holds:  "the reconciler's lease and how far it has reconciled",
		Config: "KV bucket " + ReconcileBucketName + ", file, history 1, replicas --replicas; only with reconcile on",
		Drift:  "brought to the configuration at every start",
		Backup: BackupData,
	},
	{
		Stream: "KV_" + CreatesBucketName, Owner: "submit",
		Holds:  "CreateJob's record per request id (claimed, then the task it created), so a request id makes one Kling task, and each token's budget ledger",
		Config: "KV bucket " + CreatesBucketName + ", file, history 1, TTL --retention, replicas --replicas",
		Drift:  "brought to the configuration at every start",
		Backup: BackupData,
	},
	{
		Stream: "KV_" + GroupMembersBucket, Owner: "groups",
		Holds:  "one heartbeat per attached group member, kept 30 s",
		Config: "KV bucket " + GroupMembersBucket + ", memory, TTL 30s, history 1, replicas --replicas",
		Drift:  "brought to the configuration at every start",
		Backup: BackupSkip,
		Skip:   "in memory and expires in 30 s: members re-register with their next heartbeat",
	},
}
