package api

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/auth"
	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/groups"
	"github.com/klingfan/klingfan/internal/hub"
	"github.com/klingfan/klingfan/internal/ids"
)

// ConsumerLiveHeader is the Consume response header sent once the member
// is attached; its value is the group id. The REST gateway flushes the
// NDJSON response headers on it, as it does for Subscribe.
const ConsumerLiveHeader = "klingfan-consumer-group"

// Consumer group request bounds.
const (
	defaultMaxInFlight   = 64
	maxMaxInFlight       = 1000
	maxAcksPerRequest    = 1000
	defaultGroupPage     = 100
	maxGroupPage         = 1000
	maxNackDelay         = 12 * time.Hour
	groupPageFingerprint = 0x67726f757073 // "groups": list requests have no filters
)

// ConsumerGroupService serves kling.gateway.v1.ConsumerGroupService.
type ConsumerGroupService struct {
	gatewayv1.UnimplementedConsumerGroupServiceServer
	groups *groups.Groups
	log    *slog.Logger
	now    func() time.Time
	tokens pageTokens
	// sendDeadline ends a Consume stream whose Send has not completed in
	// this long (0: never), as for Subscribe.
	sendDeadline time.Duration
	// quota counts Consume streams with Subscribe's.
	quota *StreamQuota
}

// ConsumerGroupConfig is what ConsumerGroupService needs.
type ConsumerGroupConfig struct {
	Groups *groups.Groups
	Logger *slog.Logger
	Now    func() time.Time
	// PageKey authenticates page tokens and must be the same on every
	// replica.
	PageKey []byte
	// SendDeadline ends a Consume stream whose client has not accepted a
	// message in this long, so a member that stopped reading gives up its
	// place and its deliveries; 0 turns it off.
	SendDeadline time.Duration
	// Quota counts Consume streams with the Subscribe streams of the same
	// token (see StreamQuota); nil leaves them uncounted.
	Quota *StreamQuota
}

// NewConsumerGroupService returns the service.
func NewConsumerGroupService(cfg ConsumerGroupConfig) *ConsumerGroupService {
	if cfg.Quota == nil {
		cfg.Quota = NewStreamQuota(0, 0)
	}
	return &ConsumerGroupService{groups: cfg.Groups, log: cfg.Logger, now: cfg.Now, tokens: pageTokens{key: cfg.PageKey},
		sendDeadline: cfg.SendDeadline, quota: cfg.Quota}
}

// checkGroup validates a group's settings (field names under prefix) and
// returns them with defaults applied, without output-only fields.
func checkGroup(prefix string, in *gatewayv1.ConsumerGroup) (*gatewayv1.ConsumerGroup, error) {
	cg := &gatewayv1.ConsumerGroup{
		Id:            in.GetId(),
		DisplayName:   in.GetDisplayName(),
		EventTypes:    in.GetEventTypes(),
		JobIds:        in.GetJobIds(),
		WebhookIds:    in.GetWebhookIds(),
		JobKinds:      in.GetJobKinds(),
		Filter:        in.GetFilter(),
		Start:         in.Start,
		AckWait:       in.GetAckWait(),
		MaxDeliveries: in.GetMaxDeliveries(),
		CreateTime:    in.GetCreateTime(),
	}
	if err := checkDisplayName(prefix+"display_name", cg.DisplayName); err != nil {
		return nil, err
	}
	if _, err := hub.FilterOf(cg); err != nil {
		// The same check and reasons as Subscribe's, with the field named
		// where it sits in this request.
		var fe *errkind.FieldError
		if errors.As(err, &fe) {
			return nil, invalid(prefix+fe.Field, fe.Reason)
		}
		return nil, err
	}
	if st, ok := cg.Start.(*gatewayv1.ConsumerGroup_Since); ok && st.Since.CheckValid() != nil {
		return nil, invalid(prefix+"since", "not a valid timestamp")
	}
	if cg.AckWait == nil {
		cg.AckWait = durationpb.New(groups.DefaultAckWait)
	} else if err := cg.AckWait.CheckValid(); err != nil {
		return nil, invalid(prefix+"ack_wait", "not a valid duration")
	} else if d := cg.AckWait.AsDuration(); d < groups.MinAckWait || d > groups.MaxAckWait {
		return nil, invalid(prefix+"ack_wait", "must be between 1s and 12h")
	}
	switch n := cg.MaxDeliveries; {
	case n == 0:
		cg.MaxDeliveries = groups.DefaultMaxDeliveries
	case n < 0 || n > groups.MaxMaxDeliveries:
		return nil, invalid(prefix+"max_deliveries", "must be between 1 and 1000")
	}
	return cg, nil
}

// CreateConsumerGroup creates a group.
func (s *ConsumerGroupService) CreateConsumerGroup(ctx context.Context, req *gatewayv1.CreateConsumerGroupRequest) (*gatewayv1.CreateConsumerGroupResponse, error) {
	cg, err := s.create(ctx, req)
	return &gatewayv1.CreateConsumerGroupResponse{ConsumerGroup: cg}, err
}

func (s *ConsumerGroupService) create(ctx context.Context, req *gatewayv1.CreateConsumerGroupRequest) (*gatewayv1.ConsumerGroup, error) {
	if req.GetConsumerGroup() == nil {
		return nil, invalid("consumer_group", "required")
	}
	id := req.GetConsumerGroupId()
	if id == "" {
		id = "cg-" + ids.Random(10)
	} else if err := checkWebhookID("consumer_group_id", id); err != nil {
		return nil, err
	}
	cg, err := checkGroup("consumer_group.", req.GetConsumerGroup())
	if err != nil {
		return nil, err
	}
	cg.Id = id
	cg.CreateTime = timestamppb.New(s.now())
	return s.groups.Create(ctx, cg)
}

// GetConsumerGroup returns a group with its counters.
func (s *ConsumerGroupService) GetConsumerGroup(ctx context.Context, req *gatewayv1.GetConsumerGroupRequest) (*gatewayv1.GetConsumerGroupResponse, error) {
	cg, err := s.get(ctx, req.GetId())
	return &gatewayv1.GetConsumerGroupResponse{ConsumerGroup: cg}, err
}

func (s *ConsumerGroupService) get(ctx context.Context, id string) (*gatewayv1.ConsumerGroup, error) {
	if err := checkWebhookID("id", id); err != nil {
		return nil, err
	}
	return s.groups.Get(ctx, id)
}

// ListConsumerGroups pages through the groups by id.
func (s *ConsumerGroupService) ListConsumerGroups(ctx context.Context, req *gatewayv1.ListConsumerGroupsRequest) (*gatewayv1.ListConsumerGroupsResponse, error) {
	return s.list(ctx, req)
}

func (s *ConsumerGroupService) list(ctx context.Context, req *gatewayv1.ListConsumerGroupsRequest) (*gatewayv1.ListConsumerGroupsResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var after string
	if tok := req.GetPageToken(); tok != "" {
		if after, err = s.tokens.decodeString(tok, groupPageFingerprint); err != nil {
			return nil, invalid("page_token", err.Error())
		}
	}
	cgs, more, err := s.groups.List(ctx, after, size)
	if err != nil {
		return nil, err
	}
	resp := &gatewayv1.ListConsumerGroupsResponse{ConsumerGroups: cgs}
	if more && len(cgs) > 0 {
		resp.NextPageToken = s.tokens.encodeString(cgs[len(cgs)-1].GetId(), groupPageFingerprint)
	}
	return resp, nil
}

func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalid("page_size", "must not be negative")
	case n == 0:
		return defaultGroupPage, nil
	case n > maxGroupPage:
		return maxGroupPage, nil
	}
	return int(n), nil
}

// UpdateConsumerGroup changes the masked fields of a group.
func (s *ConsumerGroupService) UpdateConsumerGroup(ctx context.Context, req *gatewayv1.UpdateConsumerGroupRequest) (*gatewayv1.UpdateConsumerGroupResponse, error) {
	cg, err := s.update(ctx, req)
	return &gatewayv1.UpdateConsumerGroupResponse{ConsumerGroup: cg}, err
}

func (s *ConsumerGroupService) update(ctx context.Context, req *gatewayv1.UpdateConsumerGroupRequest) (*gatewayv1.ConsumerGroup, error) {
	in := req.GetConsumerGroup()
	if in == nil {
		return nil, invalid("consumer_group", "required")
	}
	if err := checkWebhookID("consumer_group.id", in.GetId()); err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, invalid("update_mask", "required: name the fields to change")
	}
	cur, err := s.groups.Get(ctx, in.GetId())
	if err != nil {
		return nil, err
	}
	next := proto.CloneOf(cur)
	for _, p := range paths {
		switch p {
		case "display_name", "displayName":
			next.DisplayName = in.GetDisplayName()
		case "event_types", "eventTypes":
			next.EventTypes = in.GetEventTypes()
		case "job_ids", "jobIds":
			next.JobIds = in.GetJobIds()
		case "webhook_ids", "webhookIds":
			next.WebhookIds = in.GetWebhookIds()
		case "job_kinds", "jobKinds":
			next.JobKinds = in.GetJobKinds()
		case "filter":
			next.Filter = in.GetFilter()
		case "ack_wait", "ackWait":
			next.AckWait = in.GetAckWait()
		case "max_deliveries", "maxDeliveries":
			next.MaxDeliveries = in.GetMaxDeliveries()
		default:
			return nil, invalid("update_mask", "cannot update "+p+": use display_name, event_types, job_ids, webhook_ids, job_kinds, filter, ack_wait or max_deliveries (SeekConsumerGroup moves the start)")
		}
	}
	next, err = checkGroup("consumer_group.", next)
	if err != nil {
		return nil, err
	}
	return s.groups.Update(ctx, next)
}

// DeleteConsumerGroup deletes a group.
func (s *ConsumerGroupService) DeleteConsumerGroup(ctx context.Context, req *gatewayv1.DeleteConsumerGroupRequest) (*gatewayv1.DeleteConsumerGroupResponse, error) {
	err := checkWebhookID("id", req.GetId())
	if err == nil {
		err = s.groups.Delete(ctx, req.GetId())
	}
	return &gatewayv1.DeleteConsumerGroupResponse{}, err
}

// SeekConsumerGroup moves a group's position.
func (s *ConsumerGroupService) SeekConsumerGroup(ctx context.Context, req *gatewayv1.SeekConsumerGroupRequest) (*gatewayv1.SeekConsumerGroupResponse, error) {
	cg, err := s.seek(ctx, req)
	return &gatewayv1.SeekConsumerGroupResponse{ConsumerGroup: cg}, err
}

func (s *ConsumerGroupService) seek(ctx context.Context, req *gatewayv1.SeekConsumerGroupRequest) (*gatewayv1.ConsumerGroup, error) {
	if err := checkWebhookID("id", req.GetId()); err != nil {
		return nil, err
	}
	start := &gatewayv1.ConsumerGroup{}
	switch st := req.GetStart().(type) {
	case *gatewayv1.SeekConsumerGroupRequest_FromBeginning:
		start.Start = &gatewayv1.ConsumerGroup_FromBeginning{FromBeginning: st.FromBeginning}
	case *gatewayv1.SeekConsumerGroupRequest_AfterSequence:
		start.Start = &gatewayv1.ConsumerGroup_AfterSequence{AfterSequence: st.AfterSequence}
	case *gatewayv1.SeekConsumerGroupRequest_Since:
		if st.Since.CheckValid() != nil {
			return nil, invalid("since", "not a valid timestamp")
		}
		start.Start = &gatewayv1.ConsumerGroup_Since{Since: st.Since}
	}
	return s.groups.Seek(ctx, req.GetId(), start)
}

// Consume attaches a member and streams its deliveries. One goroutine
// sends on the stream: the member's Run loop.
func (s *ConsumerGroupService) Consume(req *gatewayv1.ConsumeRequest, stream grpc.ServerStreamingServer[gatewayv1.ConsumeResponse]) error {
	return s.consume(req, stream)
}

func (s *ConsumerGroupService) consume(req *gatewayv1.ConsumeRequest, stream grpc.ServerStreamingServer[gatewayv1.ConsumeResponse]) error {
	ctx := stream.Context()
	if err := checkWebhookID("consumer_group_id", req.GetConsumerGroupId()); err != nil {
		return err
	}
	full, err := viewFull(req.GetView())
	if err != nil {
		return err
	}
	n := int(req.GetMaxInFlight())
	switch {
	case n < 0 || n > maxMaxInFlight:
		return invalid("max_in_flight", "must be between 1 and 1000 (0 means 64)")
	case n == 0:
		n = defaultMaxInFlight
	}
	release, err := s.quota.acquire(ctx, auth.TokenName(ctx))
	if err != nil {
		return err
	}
	defer release()
	m, err := s.groups.Attach(ctx, req.GetConsumerGroupId(), n)
	if err != nil {
		return err
	}
	if err := stream.SendHeader(metadata.Pairs(ConsumerLiveHeader, req.GetConsumerGroupId())); err != nil {
		m.Close()
		return err
	}
	// run is the member's loop; its goroutine is the stream's only sender.
	// w, when not nil, watches its Sends (see sendWatch): a member that
	// stops reading is detached, and its unacknowledged deliveries go to
	// the others after ack_wait.
	run := func(w *sendWatch) error {
		defer m.Close()
		return m.Run(ctx, func(d *groups.Delivery) error {
			ev := d.Event
			if !full {
				ev = hub.WithoutBody(ev)
			}
			w.begin()
			defer w.end()
			return stream.Send(&gatewayv1.ConsumeResponse{Event: ev, AckId: d.AckID, DeliveryAttempt: int32(d.Attempt)})
		})
	}
	if s.sendDeadline <= 0 {
		return run(nil)
	}
	return runWatched(s.sendDeadline, s.log, "Consume", run,
		"token", auth.TokenName(ctx), "consumer_group_id", req.GetConsumerGroupId())
}

// AckEvents settles deliveries.
func (s *ConsumerGroupService) AckEvents(ctx context.Context, req *gatewayv1.AckEventsRequest) (*gatewayv1.AckEventsResponse, error) {
	err := s.ack(ctx, req)
	return &gatewayv1.AckEventsResponse{}, err
}

func (s *ConsumerGroupService) ack(ctx context.Context, req *gatewayv1.AckEventsRequest) error {
	if err := checkWebhookID("consumer_group_id", req.GetConsumerGroupId()); err != nil {
		return err
	}
	if len(req.GetAckIds()) > maxAcksPerRequest {
		return invalid("ack_ids", "at most 1000 per request")
	}
	if len(req.GetNackIds()) > maxAcksPerRequest {
		return invalid("nack_ids", "at most 1000 per request")
	}
	var delay time.Duration
	if d := req.GetNackDelay(); d != nil {
		if d.CheckValid() != nil || d.AsDuration() < 0 || d.AsDuration() > maxNackDelay {
			return invalid("nack_delay", "must be between 0s and 12h")
		}
		delay = d.AsDuration()
	}
	return s.groups.Settle(ctx, req.GetConsumerGroupId(), req.GetAckIds(), req.GetNackIds(), delay)
}

// ListDeadLetters pages through a group's dead letters.
func (s *ConsumerGroupService) ListDeadLetters(ctx context.Context, req *gatewayv1.ListDeadLettersRequest) (*gatewayv1.ListDeadLettersResponse, error) {
	return s.listDead(ctx, req)
}

func (s *ConsumerGroupService) listDead(ctx context.Context, req *gatewayv1.ListDeadLettersRequest) (*gatewayv1.ListDeadLettersResponse, error) {
	id := req.GetConsumerGroupId()
	if err := checkWebhookID("consumer_group_id", id); err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	fp := fingerprint([]string{"dead-letters", id})
	var from uint64
	if tok := req.GetPageToken(); tok != "" {
		pg, err := s.tokens.decode(tok, fp)
		if err != nil {
			return nil, invalid("page_token", err.Error())
		}
		from = pg.next
	}
	dls, next, err := s.groups.DeadLetters(ctx, id, from, size)
	if err != nil {
		return nil, err
	}
	resp := &gatewayv1.ListDeadLettersResponse{DeadLetters: dls}
	if next != 0 {
		resp.NextPageToken = s.tokens.encode(page{next: next, fingerprint: fp})
	}
	return resp, nil
}

// RedriveDeadLetters gives dead letters back to a group.
func (s *ConsumerGroupService) RedriveDeadLetters(ctx context.Context, req *gatewayv1.RedriveDeadLettersRequest) (*gatewayv1.RedriveDeadLettersResponse, error) {
	var n int
	err := checkWebhookID("consumer_group_id", req.GetConsumerGroupId())
	if err == nil && len(req.GetSequences()) > maxAcksPerRequest {
		err = invalid("sequences", "at most 1000 per request")
	}
	if err == nil {
		n, err = s.groups.Redrive(ctx, req.GetConsumerGroupId(), req.GetSequences())
	}
	return &gatewayv1.RedriveDeadLettersResponse{Redriven: int32(n)}, err
}
