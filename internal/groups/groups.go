// Package groups runs consumer groups on JetStream: a durable pull consumer
// per group on the events stream holds the group's position and its
// unacknowledged deliveries, so a group survives restarts and its members
// may be attached to different klingfan replicas.
//
// Assets, besides the events stream (read only):
//
//   - durable consumer "group-<id>" on KLINGFAN_EVENTS: the group. Its
//     metadata holds the group's definition, so there is no second record
//     to keep in step with it;
//   - stream KLINGFAN_GROUPS: "klingfan.groups.<id>.dead" holds dead
//     letters, "klingfan.groups.<id>.redrive" the dead letters given back;
//   - durable consumer "group-<id>" on KLINGFAN_GROUPS, filtered on the
//     redrive subject: redriven events, delivered like the others;
//   - KV bucket "klingfan-group-members": one key per attached member,
//     refreshed by a heartbeat and expiring when the member vanishes.
//
// Dead letters are decided here rather than by JetStream's MaxDeliver:
// the JetStream consumers redeliver without limit, and the member that
// pulls an event for the (max_deliveries+1)th time records a dead letter
// (deduplicated by message id) before terminating the delivery. That keeps
// the record durable and exactly once without relying on advisories, which
// are lost when no replica listens at the moment they are sent.
package groups

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/store"
)

// Names of the JetStream assets this package owns.
const (
	// StreamName holds dead letters and redrive requests.
	StreamName = store.GroupsStreamName
	// MembersBucket holds one heartbeat key per attached member.
	MembersBucket = store.GroupMembersBucket

	subjectPrefix  = store.GroupsSubjectPrefix
	consumerPrefix = "group-"
	metadataKey    = "klingfan.group"
)

// Defaults and bounds of a group's settings.
const (
	DefaultAckWait       = 30 * time.Second
	MinAckWait           = time.Second
	MaxAckWait           = 12 * time.Hour
	DefaultMaxDeliveries = 5
	MaxMaxDeliveries     = 1000
	// memberTTL is how long a member is counted after its last heartbeat.
	memberTTL         = store.GroupMemberTTL
	heartbeatInterval = 10 * time.Second
)

// Errors of the consumer groups. A start position older than retention is
// an errkind.RangeError that names the sequences available.
var (
	ErrNotFound      = errkind.New(errkind.NotFound, "groups", "consumer group not found")
	ErrAlreadyExists = errkind.New(errkind.AlreadyExists, "groups", "consumer group id already taken")
	ErrInvalidAckID  = errkind.Invalid("ack_ids", "not an ack id of this consumer group (ack ids come from ConsumeResponse.ack_id)")
)

// Config configures Open.
type Config struct {
	// Logger receives diagnostics; nil means slog.Default().
	Logger *slog.Logger
	// Now reads the clock; nil means time.Now.
	Now func() time.Time
}

// Groups manages consumer groups. Its methods are safe for concurrent use.
type Groups struct {
	log     *slog.Logger
	now     func() time.Time
	st      *store.Store
	js      jetstream.JetStream
	nc      *nats.Conn
	events  jetstream.Stream
	stream  jetstream.Stream
	members jetstream.KeyValue
}

// Open ensures the assets groups need next to the event log, as
// store.Assets configures them.
func Open(ctx context.Context, st *store.Store, cfg Config) (*Groups, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Groups{log: cfg.Logger, now: cfg.Now, st: st, js: st.JetStream(), nc: st.Conn(), events: st.Stream()}
	var err error
	if g.stream, err = st.EnsureStream(ctx, StreamName); err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	if g.members, err = st.EnsureBucket(ctx, MembersBucket); err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	return g, nil
}

// consumerName is the name of both of a group's durable consumers.
func consumerName(id string) string { return consumerPrefix + id }

func deadSubject(id string) string    { return subjectPrefix + id + ".dead" }
func redriveSubject(id string) string { return subjectPrefix + id + ".redrive" }

// definition is what the consumer metadata keeps: the group without its
// output-only fields.
func definition(cg *gatewayv1.ConsumerGroup) *gatewayv1.ConsumerGroup {
	d := proto.CloneOf(cg)
	d.Pending, d.AckPending, d.Redelivered, d.DeadLettered, d.Members = 0, 0, 0, 0, 0
	return d
}

func encodeDefinition(cg *gatewayv1.ConsumerGroup) (map[string]string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(definition(cg))
	if err != nil {
		return nil, fmt.Errorf("groups: encode %q: %w", cg.GetId(), err)
	}
	return map[string]string{metadataKey: base64.StdEncoding.EncodeToString(b)}, nil
}

func decodeDefinition(cfg jetstream.ConsumerConfig) (*gatewayv1.ConsumerGroup, error) {
	raw, ok := cfg.Metadata[metadataKey]
	if !ok {
		return nil, fmt.Errorf("groups: consumer %q has no group definition", cfg.Durable)
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("groups: consumer %q: %w", cfg.Durable, err)
	}
	cg := new(gatewayv1.ConsumerGroup)
	if err := proto.Unmarshal(b, cg); err != nil {
		return nil, fmt.Errorf("groups: consumer %q: %w", cfg.Durable, err)
	}
	return cg, nil
}

// ackWait and maxDeliveries read a group's settings with defaults applied.
func ackWait(cg *gatewayv1.ConsumerGroup) time.Duration {
	if d := cg.GetAckWait().AsDuration(); cg.GetAckWait() != nil && d > 0 {
		return d
	}
	return DefaultAckWait
}

func maxDeliveries(cg *gatewayv1.ConsumerGroup) int {
	if n := cg.GetMaxDeliveries(); n > 0 {
		return int(n)
	}
	return DefaultMaxDeliveries
}

// eventsConsumerConfig is the durable consumer on the events stream for cg,
// starting at start.
func (g *Groups) eventsConsumerConfig(ctx context.Context, cg *gatewayv1.ConsumerGroup) (jetstream.ConsumerConfig, error) {
	md, err := encodeDefinition(cg)
	if err != nil {
		return jetstream.ConsumerConfig{}, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        consumerName(cg.GetId()),
		Description:    "klingfan consumer group " + cg.GetId(),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait(cg),
		MaxDeliver:     -1, // dead letters are decided by the members; see the package comment
		MaxAckPending:  -1,
		FilterSubjects: store.FilterSubjects(cg.GetWebhookIds(), cg.GetJobIds()),
		Metadata:       md,
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
	}
	switch st := cg.GetStart().(type) {
	case *gatewayv1.ConsumerGroup_FromBeginning:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
		if !st.FromBeginning {
			cfg.DeliverPolicy = jetstream.DeliverNewPolicy
		}
	case *gatewayv1.ConsumerGroup_AfterSequence:
		first, last, err := g.st.Bounds(ctx)
		if err != nil {
			return cfg, err
		}
		if st.AfterSequence+1 < first {
			return cfg, &errkind.RangeError{First: first, Last: last, Reason: fmt.Sprintf("after_sequence %d is older than retention", st.AfterSequence)}
		}
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = st.AfterSequence + 1
	case *gatewayv1.ConsumerGroup_Since:
		t := st.Since.AsTime()
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &t
	default:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	return cfg, nil
}

func (g *Groups) redriveConsumerConfig(cg *gatewayv1.ConsumerGroup) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       consumerName(cg.GetId()),
		Description:   "klingfan consumer group " + cg.GetId() + ": redriven dead letters",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait(cg),
		MaxDeliver:    -1,
		MaxAckPending: -1,
		FilterSubject: redriveSubject(cg.GetId()),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// Create creates the group cg (its id set, its settings validated by the
// caller) and returns it with its counters.
func (g *Groups) Create(ctx context.Context, cg *gatewayv1.ConsumerGroup) (*gatewayv1.ConsumerGroup, error) {
	name := consumerName(cg.GetId())
	if _, err := g.events.Consumer(ctx, name); err == nil {
		return nil, ErrAlreadyExists
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, store.Classify("look up consumer group", err)
	}
	cfg, err := g.eventsConsumerConfig(ctx, cg)
	if err != nil {
		return nil, err
	}
	// The redrive consumer first: the events consumer is what makes the
	// group exist, so a failure in between leaves no half-made group.
	if _, err := g.stream.CreateOrUpdateConsumer(ctx, g.redriveConsumerConfig(cg)); err != nil {
		return nil, store.Classify("create redrive consumer", err)
	}
	if _, err := g.events.CreateConsumer(ctx, cfg); err != nil {
		if errors.Is(err, jetstream.ErrConsumerExists) {
			return nil, ErrAlreadyExists
		}
		return nil, store.Classify("create consumer group", err)
	}
	return g.Get(ctx, cg.GetId())
}

// lookup returns the group's events consumer and definition.
func (g *Groups) lookup(ctx context.Context, id string) (jetstream.Consumer, *gatewayv1.ConsumerGroup, *jetstream.ConsumerInfo, error) {
	cons, err := g.events.Consumer(ctx, consumerName(id))
	if err != nil {
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, nil, nil, ErrNotFound
		}
		return nil, nil, nil, store.Classify("look up consumer group", err)
	}
	info := cons.CachedInfo()
	cg, err := decodeDefinition(info.Config)
	if err != nil {
		return nil, nil, nil, err
	}
	return cons, cg, info, nil
}

// Get returns the group with its current counters.
func (g *Groups) Get(ctx context.Context, id string) (*gatewayv1.ConsumerGroup, error) {
	_, cg, info, err := g.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	return g.withCounters(ctx, cg, info)
}

// withCounters fills in cg's output-only fields.
func (g *Groups) withCounters(ctx context.Context, cg *gatewayv1.ConsumerGroup, info *jetstream.ConsumerInfo) (*gatewayv1.ConsumerGroup, error) {
	cg.Pending = info.NumPending
	cg.AckPending = uint64(info.NumAckPending)
	cg.Redelivered = uint64(info.NumRedelivered)
	if rc, err := g.stream.Consumer(ctx, consumerName(cg.GetId())); err == nil {
		ri := rc.CachedInfo()
		cg.Pending += ri.NumPending
		cg.AckPending += uint64(ri.NumAckPending)
		cg.Redelivered += uint64(ri.NumRedelivered)
	}
	dead, err := g.deadCount(ctx, cg.GetId())
	if err != nil {
		return nil, err
	}
	cg.DeadLettered = dead
	members, err := g.memberCount(ctx, cg.GetId())
	if err != nil {
		return nil, err
	}
	cg.Members = int32(members)
	return cg, nil
}

func (g *Groups) deadCount(ctx context.Context, id string) (uint64, error) {
	subj := deadSubject(id)
	info, err := g.stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return 0, store.Classify("count dead letters", err)
	}
	return info.State.Subjects[subj], nil
}

// List returns up to limit groups with ids after `after`, ordered by id,
// and whether more follow.
func (g *Groups) List(ctx context.Context, after string, limit int) ([]*gatewayv1.ConsumerGroup, bool, error) {
	var ids []string
	names := g.events.ConsumerNames(ctx)
	for n := range names.Name() {
		if id, ok := strings.CutPrefix(n, consumerPrefix); ok && id > after {
			ids = append(ids, id)
		}
	}
	if err := names.Err(); err != nil {
		return nil, false, store.Classify("list consumer groups", err)
	}
	slices.Sort(ids)
	more := len(ids) > limit
	if more {
		ids = ids[:limit]
	}
	out := make([]*gatewayv1.ConsumerGroup, 0, len(ids))
	for _, id := range ids {
		cg, err := g.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, false, err
		}
		out = append(out, cg)
	}
	return out, more, nil
}

// Update replaces the group's definition with cg (the caller applied the
// field mask) and returns it with its counters. The start position is not
// changed: Seek does that.
func (g *Groups) Update(ctx context.Context, cg *gatewayv1.ConsumerGroup) (*gatewayv1.ConsumerGroup, error) {
	_, old, info, err := g.lookup(ctx, cg.GetId())
	if err != nil {
		return nil, err
	}
	cg = proto.CloneOf(cg)
	cg.Start = old.Start
	cg.CreateTime = old.GetCreateTime()
	md, err := encodeDefinition(cg)
	if err != nil {
		return nil, err
	}
	cfg := info.Config
	cfg.Metadata = md
	cfg.AckWait = ackWait(cg)
	cfg.FilterSubjects = store.FilterSubjects(cg.GetWebhookIds(), cg.GetJobIds())
	cfg.FilterSubject = ""
	if _, err := g.events.UpdateConsumer(ctx, cfg); err != nil {
		if errors.Is(err, jetstream.ErrConsumerDoesNotExist) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, ErrNotFound
		}
		return nil, store.Classify("update consumer group", err)
	}
	if _, err := g.stream.CreateOrUpdateConsumer(ctx, g.redriveConsumerConfig(cg)); err != nil {
		return nil, store.Classify("update redrive consumer", err)
	}
	return g.Get(ctx, cg.GetId())
}

// Seek moves the group to start by recreating its events consumer (a
// JetStream consumer's start cannot be changed): deliveries pending at that
// moment are forgotten and members reattach.
func (g *Groups) Seek(ctx context.Context, id string, start *gatewayv1.ConsumerGroup) (*gatewayv1.ConsumerGroup, error) {
	_, cg, _, err := g.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	cg.Start = start.Start
	cfg, err := g.eventsConsumerConfig(ctx, cg)
	if err != nil {
		return nil, err
	}
	if err := g.events.DeleteConsumer(ctx, consumerName(id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, store.Classify("seek consumer group", err)
	}
	if _, err := g.events.CreateConsumer(ctx, cfg); err != nil {
		return nil, store.Classify("seek consumer group", err)
	}
	return g.Get(ctx, id)
}

// Delete removes the group, its redriven events and its dead letters.
func (g *Groups) Delete(ctx context.Context, id string) error {
	if err := g.events.DeleteConsumer(ctx, consumerName(id)); err != nil {
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return ErrNotFound
		}
		return store.Classify("delete consumer group", err)
	}
	if err := g.stream.DeleteConsumer(ctx, consumerName(id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return store.Classify("delete redrive consumer", err)
	}
	if err := g.stream.Purge(ctx, jetstream.WithPurgeSubject(subjectPrefix+id+".>")); err != nil {
		return store.Classify("purge dead letters", err)
	}
	return nil
}
