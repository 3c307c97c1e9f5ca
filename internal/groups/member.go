package groups

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/hub"
	"github.com/klingfan/klingfan/internal/store"
)

// Member loop timing.
const (
	// pullWait bounds one pull request, so a member notices a changed
	// group (seek, new settings) within about this long.
	pullWait = 5 * time.Second
	// redriveEvery is how often a member asks for redriven dead letters.
	redriveEvery = time.Second
	// sweepEvery is how often a full member looks for deliveries whose
	// ack_wait passed (JetStream redelivers those elsewhere).
	sweepEvery = 200 * time.Millisecond
	// reattachFor is how long a member retries a vanished consumer before
	// it concludes the group is gone (a seek recreates the consumer).
	reattachFor = 3 * time.Second
)

// Delivery is one event given to a member.
type Delivery struct {
	Event   *gatewayv1.Event
	AckID   string
	Attempt int
}

// Member is one attached Consume stream. Run must be called once.
type Member struct {
	g           *Groups
	id          string // the group
	key         string // the heartbeat key
	maxInFlight int

	cons    jetstream.Consumer // the events consumer; replaced on reattach
	redrive jetstream.Consumer // nil until found
	def     *gatewayv1.ConsumerGroup
	filter  *hub.Filter
	created time.Time // the events consumer's creation, part of dead-letter ids

	subs []*nats.Subscription

	mu       sync.Mutex
	inflight map[string]time.Time // ack subject → when ack_wait passes; guarded by mu
	freed    chan struct{}        // signalled (non-blocking) when an entry leaves inflight
}

// Attach makes a member of group id holding at most maxInFlight
// unacknowledged deliveries. The caller must Close it.
func (g *Groups) Attach(ctx context.Context, id string, maxInFlight int) (*Member, error) {
	m := &Member{g: g, id: id, maxInFlight: maxInFlight, inflight: make(map[string]time.Time), freed: make(chan struct{}, 1)}
	if err := m.refresh(ctx); err != nil {
		return nil, err
	}
	// Acks reach JetStream on the reply subjects of the deliveries, from
	// whichever replica took the AckEvents call; listening on them frees
	// this member's slots at once, wherever the ack was made.
	for _, stream := range []string{store.StreamName, StreamName} {
		sub, err := g.nc.Subscribe("$JS.ACK."+stream+"."+consumerName(id)+".>", m.observeAck)
		if err != nil {
			m.Close()
			return nil, store.Classify("observe acknowledgements", err)
		}
		m.subs = append(m.subs, sub)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	m.key = id + "." + hex.EncodeToString(b[:])
	if _, err := g.members.Put(ctx, m.key, nil); err != nil {
		m.Close()
		return nil, store.Classify("register member", err)
	}
	return m, nil
}

// Close detaches the member. Its unacknowledged deliveries go to other
// members once their ack_wait passes.
//
//nolint:contextcheck // called when the member's stream has ended; removing its key gets its own deadline
func (m *Member) Close() {
	for _, s := range m.subs {
		_ = s.Unsubscribe()
	}
	if m.key != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = m.g.members.Delete(ctx, m.key)
	}
}

// observeAck runs on the NATS connection's goroutine for every ack of the
// group, this member's or not.
func (m *Member) observeAck(msg *nats.Msg) {
	if strings.HasPrefix(string(msg.Data), "+WPI") {
		return // still in progress: the slot stays taken
	}
	m.mu.Lock()
	_, mine := m.inflight[msg.Subject]
	delete(m.inflight, msg.Subject)
	m.mu.Unlock()
	if mine {
		m.signal()
	}
}

func (m *Member) signal() {
	select {
	case m.freed <- struct{}{}:
	default:
	}
}

// free returns the number of deliveries the member may still take,
// forgetting those whose ack_wait passed.
func (m *Member) free(now time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, deadline := range m.inflight {
		if now.After(deadline) {
			delete(m.inflight, k)
		}
	}
	return m.maxInFlight - len(m.inflight)
}

// refresh (re)reads the group: its consumers and settings.
func (m *Member) refresh(ctx context.Context) error {
	cons, def, info, err := m.g.lookup(ctx, m.id)
	if err != nil {
		return err
	}
	f, err := hub.FilterOf(def)
	if err != nil {
		return fmt.Errorf("groups: %q has an unusable filter: %w", m.id, err)
	}
	m.cons, m.def, m.filter, m.created = cons, def, f, info.Created
	if m.redrive == nil {
		if rc, err := m.g.stream.Consumer(ctx, consumerName(m.id)); err == nil {
			m.redrive = rc
		}
	}
	return nil
}

// reattach looks the group up again after its consumer failed, retrying
// for a while because a seek replaces the consumer.
func (m *Member) reattach(ctx context.Context) error {
	deadline := time.Now().Add(reattachFor)
	for {
		err := m.refresh(ctx)
		if err == nil || time.Now().After(deadline) || (!errors.Is(err, ErrNotFound) && !errors.Is(err, store.ErrUnavailable)) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Run pulls the group's events and hands each to send until ctx ends or
// the group is deleted. send is only ever called from Run's goroutine.
func (m *Member) Run(ctx context.Context, send func(*Delivery) error) error {
	heartbeat := time.NewTicker(heartbeatInterval)
	defer heartbeat.Stop()
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	var nextRedrive, nextRefresh time.Time
	for {
		now := m.g.now()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-heartbeat.C:
			if _, err := m.g.members.Put(ctx, m.key, nil); err != nil {
				m.g.log.Warn("consumer group member heartbeat failed", "group", m.id, "error", err)
			}
		default:
		}
		if now.After(nextRefresh) {
			nextRefresh = now.Add(pullWait)
			if err := m.reattach(ctx); err != nil {
				return err
			}
		}
		n := m.free(now)
		if n <= 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-m.freed:
			case <-sweep.C:
			}
			continue
		}
		if m.redrive != nil && now.After(nextRedrive) {
			nextRedrive = now.Add(redriveEvery)
			batch, err := m.redrive.FetchNoWait(n)
			if err == nil {
				err = m.drain(ctx, batch, true, send)
			}
			var sendErr *sendError
			if errors.As(err, &sendErr) {
				return sendErr.err
			}
			if n = m.free(m.g.now()); n <= 0 {
				continue
			}
		}
		fctx, cancel := context.WithTimeout(ctx, pullWait)
		batch, err := m.cons.Fetch(n, jetstream.FetchContext(fctx))
		if err == nil {
			err = m.drain(ctx, batch, false, send)
		}
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var sendErr *sendError
		if errors.As(err, &sendErr) {
			return sendErr.err
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			m.g.log.Debug("consumer group pull failed; reattaching", "group", m.id, "error", err)
			nextRefresh = time.Time{}
		}
	}
}

// sendError marks a failure to send to the client, which ends the stream,
// apart from pull failures, which are retried.
type sendError struct{ err error }

func (e *sendError) Error() string { return e.err.Error() }

// drain hands every message of batch to send (or to the dead letters).
func (m *Member) drain(ctx context.Context, batch jetstream.MessageBatch, redriven bool, send func(*Delivery) error) error {
	for msg := range batch.Messages() {
		if err := m.handle(ctx, msg, redriven, send); err != nil {
			return err
		}
	}
	return batch.Error()
}

func (m *Member) handle(ctx context.Context, msg jetstream.Msg, redriven bool, send func(*Delivery) error) error {
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("groups: delivery metadata: %w", err)
	}
	seq := md.Sequence.Stream
	if redriven {
		var dl gatewayv1.DeadLetter
		if err := proto.Unmarshal(msg.Data(), &dl); err != nil {
			_ = msg.Term()
			return nil
		}
		seq = dl.GetSequence()
	}
	if int(md.NumDelivered) > maxDeliveries(m.def) {
		return m.deadLetter(ctx, msg, md, seq)
	}
	var ev *gatewayv1.Event
	if redriven {
		ev, err = m.g.st.Get(ctx, seq)
		if errors.Is(err, store.ErrNotFound) {
			_ = msg.Term() // the event left retention: nothing to deliver
			return nil
		}
	} else {
		ev, err = store.DecodeEvent(msg.Data(), seq)
	}
	if err != nil {
		return err
	}
	if !m.filter.Match(ev) {
		return msg.Ack() // not for this group: done without a member
	}
	m.mu.Lock()
	m.inflight[msg.Reply()] = m.g.now().Add(ackWait(m.def))
	m.mu.Unlock()
	if err := send(&Delivery{Event: ev, AckID: msg.Reply(), Attempt: int(md.NumDelivered)}); err != nil {
		return &sendError{err: err}
	}
	return nil
}

// deadLetter records the event at seq as a dead letter of the group, then
// stops its redelivery. The record is deduplicated on the delivery, so a
// failure between the two steps does not record it twice.
func (m *Member) deadLetter(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, seq uint64) error {
	dl := &gatewayv1.DeadLetter{
		Sequence:         seq,
		DeliveryAttempts: int32(md.NumDelivered - 1),
		DeadLetterTime:   timestamppb.New(m.g.now()),
	}
	b, err := proto.Marshal(dl)
	if err != nil {
		return err
	}
	msgID := fmt.Sprintf("%s:%d:%d", md.Stream, m.created.UnixNano(), md.Sequence.Stream)
	if _, err := m.g.js.Publish(ctx, deadSubject(m.id), b, jetstream.WithMsgID(msgID)); err != nil {
		return store.Classify("record dead letter", err)
	}
	return msg.TermWithReason("max deliveries")
}
