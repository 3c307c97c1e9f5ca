package api

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/auth"
	"github.com/klingfan/klingfan/internal/hub"
)

// EventLog is the part of the durable log that EventService reads.
type EventLog interface {
	Get(ctx context.Context, seq uint64) (*gatewayv1.Event, error)
	GetByID(ctx context.Context, id string) (*gatewayv1.Event, error)
	Read(ctx context.Context, from uint64, limit int, webhookIDs, jobIDs []string) ([]*gatewayv1.Event, uint64, error)
	ReadBackward(ctx context.Context, from uint64, limit int, webhookIDs, jobIDs []string) ([]*gatewayv1.Event, uint64, error)
	Bounds(ctx context.Context) (first, last uint64, err error)
}

// HeadSequenceHeader is the Subscribe response header that marks the
// stream live; its value is the sequence the stream resumes after, so a
// client that saves it as its cursor before any event arrives misses
// nothing.
const HeadSequenceHeader = "klingfan-head-sequence"

// List sizes.
const (
	defaultEventPageSize = 100
	maxEventPageSize     = 1000
	// maxScanPerPage bounds the events one ListEvents call reads when a
	// sparse filter matches little: the page then comes back short, with a
	// token to continue.
	maxScanPerPage = 20000
	// maxPageBytes bounds a page's approximate encoded size, so a full
	// view of large events comes back in several pages instead of one
	// response over the gRPC send limit.
	maxPageBytes = 8 << 20
	// defaultPageBudget bounds the time one page spends scanning: a CEL
	// filter may cost up to eventexpr.MaxCost per event, which over
	// maxScanPerPage events would be many seconds of CPU for one call.
	defaultPageBudget = time.Second
)

// EventService serves kling.gateway.v1.EventService.
type EventService struct {
	gatewayv1.UnimplementedEventServiceServer
	events EventLog
	hub    *hub.Hub
	log    *slog.Logger
	now    func() time.Time
	tokens pageTokens
	// quota bounds concurrent streams per token, so one client cannot take
	// every stream the server allows.
	quota *StreamQuota
	// sendDeadline ends a Subscribe stream whose Send has not completed in
	// this long (its client stopped reading), so it stops holding memory
	// and catch-up budget; the client resumes after its last sequence.
	// 0 turns it off.
	sendDeadline time.Duration
	// pageBudget bounds the time one ListEvents page spends scanning.
	pageBudget time.Duration
}

// EventConfig is what EventService needs.
type EventConfig struct {
	Log    EventLog
	Hub    *hub.Hub
	Logger *slog.Logger
	Now    func() time.Time
	// PageKey authenticates page tokens and must be the same on every
	// replica.
	PageKey []byte
	// MaxStreamsPerToken bounds the Subscribe streams one token holds at
	// once when Quota is nil; 0 leaves them unbounded.
	MaxStreamsPerToken int
	// Quota, when set, counts Subscribe streams together with the
	// ConsumerGroupService's Consume streams (the server shares one).
	Quota *StreamQuota
	// SendDeadline ends a Subscribe stream whose client has not accepted a
	// message in this long; 0 turns it off (the server passes
	// --send-deadline, 30s by default).
	SendDeadline time.Duration
	// PageBudget is how long one ListEvents page may scan (and evaluate
	// its filter) before it comes back with what it found and a token to
	// continue; 0 means defaultPageBudget.
	PageBudget time.Duration
}

// NewEventService returns the service.
func NewEventService(cfg EventConfig) *EventService {
	if cfg.PageBudget <= 0 {
		cfg.PageBudget = defaultPageBudget
	}
	if cfg.Quota == nil {
		cfg.Quota = NewStreamQuota(cfg.MaxStreamsPerToken, 0)
	}
	return &EventService{pageBudget: cfg.PageBudget,
		events: cfg.Log, hub: cfg.Hub, log: cfg.Logger, now: cfg.Now, tokens: pageTokens{key: cfg.PageKey},
		sendDeadline: cfg.SendDeadline,
		quota:        cfg.Quota}
}

// StreamQuota counts the open Subscribe and Consume streams, per token
// name and in all, so that one token cannot take every stream the server
// allows and no kind of stream escapes the count. EventService and
// ConsumerGroupService share one. It is safe for concurrent use.
//
// A stream whose context has ended no longer counts, even before its
// handler has returned and released its slot: the transport cancels the
// context as soon as it reads the client's RST_STREAM, so a client that
// cancels a stream and then opens another on the same connection is never
// refused for the stream it has just given up.
type StreamQuota struct {
	perToken, total int
	mu              sync.Mutex
	open            map[string]map[*quotaSlot]struct{} // guarded by mu
	n               int                                // guarded by mu: slots in open
}

// NewStreamQuota returns a quota of perToken streams per token and total
// streams in all; 0 leaves either unbounded.
func NewStreamQuota(perToken, total int) *StreamQuota {
	return &StreamQuota{perToken: perToken, total: total, open: make(map[string]map[*quotaSlot]struct{})}
}

// quotaSlot is one stream's claim on its token's quota.
type quotaSlot struct{ ctx context.Context }

// acquire takes a stream slot for token, or returns errStreamQuota (the
// token's quota) or hub.ErrTooManyStreams (the server's). The slot stops
// counting when ctx ends; release frees it.
func (q *StreamQuota) acquire(ctx context.Context, token string) (release func(), err error) {
	if q.perToken <= 0 && q.total <= 0 {
		return func() {}, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	slots := q.open[token]
	if q.perToken > 0 && len(slots) >= q.perToken && live(slots) >= q.perToken {
		return nil, errStreamQuota
	}
	if q.total > 0 && q.n >= q.total {
		all := 0
		for _, s := range q.open {
			all += live(s)
		}
		if all >= q.total {
			return nil, hub.ErrTooManyStreams
		}
	}
	if slots == nil {
		slots = make(map[*quotaSlot]struct{})
		q.open[token] = slots
	}
	sl := &quotaSlot{ctx: ctx}
	slots[sl] = struct{}{}
	q.n++
	return func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		delete(slots, sl)
		q.n--
		if len(slots) == 0 {
			delete(q.open, token)
		}
	}, nil
}

// live counts the slots whose stream has not ended.
func live(slots map[*quotaSlot]struct{}) int {
	n := 0
	for sl := range slots {
		if sl.ctx.Err() == nil {
			n++
		}
	}
	return n
}

// Subscribe streams matching events. One goroutine at a time sends on the
// stream: the handler's, or, once events flow under a send deadline, the
// delivery goroutine it hands the loop to (see sendWatch).
func (s *EventService) Subscribe(req *gatewayv1.SubscribeRequest, stream grpc.ServerStreamingServer[gatewayv1.SubscribeResponse]) error {
	return s.subscribe(stream.Context(), req, stream)
}

func (s *EventService) subscribe(ctx context.Context, req *gatewayv1.SubscribeRequest, stream grpc.ServerStreamingServer[gatewayv1.SubscribeResponse]) error {
	f, err := newFilter(req)
	if err != nil {
		return err
	}
	full, err := viewFull(req.GetView())
	if err != nil {
		return err
	}
	var start hub.Start
	switch st := req.GetStart().(type) {
	case *gatewayv1.SubscribeRequest_FromBeginning:
		if st.FromBeginning {
			start.Kind = hub.StartBeginning
		}
	case *gatewayv1.SubscribeRequest_AfterSequence:
		start = hub.Start{Kind: hub.StartAfter, After: st.AfterSequence}
	case *gatewayv1.SubscribeRequest_Since:
		if err := st.Since.CheckValid(); err != nil {
			return invalid("since", "not a valid timestamp")
		}
		start = hub.Start{Kind: hub.StartSince, Since: st.Since.AsTime()}
	}
	release, err := s.quota.acquire(ctx, auth.TokenName(ctx))
	if err != nil {
		return err
	}
	defer release()
	sub, err := s.hub.Subscribe(ctx, f, start, full)
	if err != nil {
		return err
	}
	owned := true // false once the delivery goroutine owns sub
	defer func() {
		if owned {
			sub.Close()
		}
	}()
	// The subscription is live: tell the client, so one that waits for
	// headers before triggering events cannot miss them.
	if err := stream.SendHeader(metadata.Pairs(HeadSequenceHeader, strconv.FormatUint(sub.Position(), 10))); err != nil {
		return err
	}
	if s.sendDeadline <= 0 {
		return s.deliver(ctx, stream, sub, nil, nil)
	}
	// Wait for the first event here, so that an idle stream holds one
	// goroutine, then hand the loop and sub to a goroutine of their own
	// and watch its Sends (see sendWatch). It closes sub when it ends.
	first, err := sub.Next(ctx)
	if err != nil {
		return err
	}
	owned = false
	return runWatched(s.sendDeadline, s.log, "Subscribe", func(w *sendWatch) error {
		defer sub.Close()
		return s.deliver(ctx, stream, sub, first, w)
	}, "token", auth.TokenName(ctx))
}

// deliver sends sub's events on stream, starting with it when it is not
// nil, until a Send or sub fails. Its goroutine is the stream's only
// sender. w, when not nil, is told when each Send starts and ends.
func (s *EventService) deliver(ctx context.Context, stream grpc.ServerStreamingServer[gatewayv1.SubscribeResponse], sub *hub.Subscription, it *hub.Item, w *sendWatch) error {
	for {
		if it == nil {
			var err error
			if it, err = sub.Next(ctx); err != nil {
				return err
			}
		}
		w.begin()
		err := send(stream, it)
		w.end()
		if err != nil {
			return err
		}
		s.hub.Delivered(it, s.now())
		it = nil
	}
}

// send writes one item, as the bytes the hub encoded once for every stream
// when it could encode them.
func send(stream grpc.ServerStreamingServer[gatewayv1.SubscribeResponse], it *hub.Item) error {
	if _, err := it.Encoded(); err != nil {
		return stream.Send(&gatewayv1.SubscribeResponse{Event: it.Event})
	}
	// The server codec sends the item's shared wire form (ServerCodec); a
	// pointer in an interface costs no allocation per stream.
	return stream.SendMsg(it)
}

// ListEvents pages through stored events.
func (s *EventService) ListEvents(ctx context.Context, req *gatewayv1.ListEventsRequest) (*gatewayv1.ListEventsResponse, error) {
	return s.listEvents(ctx, req)
}

func (s *EventService) listEvents(ctx context.Context, req *gatewayv1.ListEventsRequest) (*gatewayv1.ListEventsResponse, error) {
	f, err := newFilter(req)
	if err != nil {
		return nil, err
	}
	full, err := viewFull(req.GetView())
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, invalid("page_size", "must not be negative")
	case size == 0:
		size = defaultEventPageSize
	case size > maxEventPageSize:
		size = maxEventPageSize
	}
	var desc bool
	switch req.GetOrderBy() {
	case "", "sequence", "sequence asc":
	case "sequence desc":
		desc = true
	default:
		return nil, invalid("order_by", `want "sequence" or "sequence desc"`)
	}
	types := make([]string, len(req.GetEventTypes()))
	for i, t := range req.GetEventTypes() {
		types[i] = t.String()
	}
	parts := [][]string{types, req.GetJobIds(), req.GetWebhookIds(), {strconv.FormatBool(desc)}}
	if len(req.GetJobKinds()) > 0 || req.GetFilter() != "" {
		// Only then, so tokens issued before these filters existed stay
		// valid across an upgrade.
		kinds := make([]string, len(req.GetJobKinds()))
		for i, k := range req.GetJobKinds() {
			kinds[i] = k.String()
		}
		parts = append(parts, kinds, []string{req.GetFilter()})
	}
	fp := fingerprint(parts...)

	first, last, err := s.events.Bounds(ctx)
	if err != nil {
		return nil, err
	}
	pos := first
	if desc {
		pos = last
	}
	if tok := req.GetPageToken(); tok != "" {
		pg, err := s.tokens.decode(tok, fp)
		if err != nil {
			return nil, invalid("page_token", err.Error())
		}
		pos = pg.next
		if !desc && pos < first {
			pos = first // the rest expired meanwhile
		}
	}

	exhausted := func(pos uint64) bool {
		if desc {
			return pos == 0 || pos < first
		}
		return pos > last
	}
	resp := &gatewayv1.ListEventsResponse{}
	scanned, bytes := 0, 0
	// A page stops scanning when its time is up, as when it has scanned
	// maxScanPerPage events, and when the client gives up: a costly filter
	// over a long log would otherwise run for seconds after anyone waits.
	deadline := time.Now().Add(s.pageBudget)
	spent := func() bool { return time.Now().After(deadline) }
	for len(resp.Events) < size && scanned < maxScanPerPage && bytes < maxPageBytes && !exhausted(pos) && (scanned == 0 || !spent()) {
		var (
			batch []*gatewayv1.Event
			next  uint64
		)
		// Read more than the page still needs: a filter may drop most.
		want := max(size-len(resp.Events), 256)
		if desc {
			batch, next, err = s.events.ReadBackward(ctx, pos, want, f.WebhookIDs(), f.JobIDs())
		} else {
			batch, next, err = s.events.Read(ctx, pos, want, f.WebhookIDs(), f.JobIDs())
		}
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			pos = next
			break
		}
		pos = next
		for i, ev := range batch {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			scanned++
			if f.Match(ev) {
				if !full {
					ev = hub.WithoutBody(ev)
				}
				resp.Events = append(resp.Events, ev)
				bytes += len(ev.GetRawBody()) + 1024
			}
			if (len(resp.Events) == size || bytes >= maxPageBytes || spent()) && i < len(batch)-1 {
				// The page is full or its time is up mid-batch: continue
				// after this event.
				if desc {
					pos = ev.GetSequence() - 1
				} else {
					pos = ev.GetSequence() + 1
				}
				break
			}
		}
	}
	if !exhausted(pos) {
		resp.NextPageToken = s.tokens.encode(page{next: pos, fingerprint: fp})
	}
	return resp, nil
}

// GetEvent returns one event by sequence or id.
func (s *EventService) GetEvent(ctx context.Context, req *gatewayv1.GetEventRequest) (*gatewayv1.GetEventResponse, error) {
	return s.getEvent(ctx, req)
}

func (s *EventService) getEvent(ctx context.Context, req *gatewayv1.GetEventRequest) (*gatewayv1.GetEventResponse, error) {
	full, err := viewFull(req.GetView())
	if err != nil {
		return nil, err
	}
	var ev *gatewayv1.Event
	switch {
	case req.GetSequence() != 0 && req.GetId() != "":
		return nil, invalid("id", "give either sequence or id, not both")
	case req.GetSequence() != 0:
		ev, err = s.events.Get(ctx, req.GetSequence())
	case req.GetId() != "":
		if len(req.GetId()) > 64 {
			return nil, invalid("id", "too long")
		}
		ev, err = s.events.GetByID(ctx, req.GetId())
	default:
		return nil, invalid("sequence", "give a sequence (at least 1) or an id")
	}
	if err != nil {
		return nil, err
	}
	if !full {
		ev = hub.WithoutBody(ev)
	}
	return &gatewayv1.GetEventResponse{Event: ev}, nil
}

// newFilter validates and builds the hub filter of a Subscribe or
// ListEvents request, compiling its CEL expression once.
func newFilter(req hub.Selection) (*hub.Filter, error) { return hub.FilterOf(req) }

func viewFull(v gatewayv1.EventView) (bool, error) {
	switch v {
	case gatewayv1.EventView_EVENT_VIEW_UNSPECIFIED, gatewayv1.EventView_EVENT_VIEW_BASIC:
		return false, nil
	case gatewayv1.EventView_EVENT_VIEW_FULL:
		return true, nil
	}
	return false, invalid("view", "unknown view")
}
