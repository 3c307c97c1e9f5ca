package api

import (
	"context"
	"strconv"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/auth"
	"github.com/klingfan/klingfan/internal/jobs"
	"github.com/klingfan/klingfan/internal/submit"
)

// List sizes of ListJobs.
const (
	defaultJobPageSize = 100
	maxJobPageSize     = 1000
	maxJobFilterValues = 100
)

// JobStates is the part of the job projection JobService reads.
type JobStates interface {
	Get(ctx context.Context, webhookID, jobID string) (*gatewayv1.JobState, error)
	List(ctx context.Context, q jobs.Query) ([]*gatewayv1.JobState, uint64, error)
}

// JobService serves kling.gateway.v1.JobService from the job projection.
type JobService struct {
	gatewayv1.UnimplementedJobServiceServer
	states  JobStates
	creator Creator
	tokens  pageTokens
}

// Creator creates Kling tasks; *submit.Submitter implements it.
type Creator interface {
	Submit(ctx context.Context, req submit.Request) (*gatewayv1.JobState, error)
}

// JobConfig is what JobService needs.
type JobConfig struct {
	States JobStates
	// Creator serves CreateJob; UNIMPLEMENTED when nil.
	Creator Creator
	// PageKey authenticates page tokens and must be the same on every
	// replica.
	PageKey []byte
}

// NewJobService returns the service.
func NewJobService(cfg JobConfig) *JobService {
	return &JobService{states: cfg.States, creator: cfg.Creator, tokens: pageTokens{key: cfg.PageKey}}
}

// CreateJob implements JobService.CreateJob.
func (s *JobService) CreateJob(ctx context.Context, req *gatewayv1.CreateJobRequest) (*gatewayv1.CreateJobResponse, error) {
	if s.creator == nil {
		return s.UnimplementedJobServiceServer.CreateJob(ctx, req)
	}
	st, err := s.creator.Submit(ctx, submit.Request{
		Endpoint: req.GetEndpoint(), Body: req.GetBody(), RequestID: req.GetRequestId(),
		WebhookID: req.GetWebhookId(), Token: auth.TokenName(ctx),
	})
	if err != nil {
		return nil, err
	}
	return &gatewayv1.CreateJobResponse{JobState: st}, nil
}

// GetJob implements JobService.GetJob.
func (s *JobService) GetJob(ctx context.Context, req *gatewayv1.GetJobRequest) (*gatewayv1.GetJobResponse, error) {
	if req.GetJobId() == "" {
		return nil, invalid("job_id", "required")
	}
	st, err := s.states.Get(ctx, req.GetWebhookId(), req.GetJobId())
	if err != nil {
		return nil, err
	}
	return &gatewayv1.GetJobResponse{JobState: st}, nil
}

// ListJobs implements JobService.ListJobs.
func (s *JobService) ListJobs(ctx context.Context, req *gatewayv1.ListJobsRequest) (*gatewayv1.ListJobsResponse, error) {
	return s.listJobs(ctx, req)
}

func (s *JobService) listJobs(ctx context.Context, req *gatewayv1.ListJobsRequest) (*gatewayv1.ListJobsResponse, error) {
	q := jobs.Query{Statuses: req.GetStatuses(), Kinds: req.GetKinds(), WebhookIDs: req.GetWebhookIds()}
	if len(q.Statuses) > maxJobFilterValues {
		return nil, invalid("statuses", "at most 100 values")
	}
	if len(q.WebhookIDs) > maxJobFilterValues {
		return nil, invalid("webhook_ids", "at most 100 values")
	}
	for _, st := range q.Statuses {
		if _, ok := gatewayv1.JobStatus_name[int32(st)]; !ok {
			return nil, invalid("statuses", "unknown status "+strconv.Itoa(int(st)))
		}
	}
	if len(q.Kinds) > maxJobFilterValues {
		return nil, invalid("kinds", "at most 100 values")
	}
	for _, k := range q.Kinds {
		if _, ok := gatewayv1.JobKind_name[int32(k)]; !ok {
			return nil, invalid("kinds", "unknown kind "+strconv.Itoa(int(k)))
		}
	}
	for _, w := range q.WebhookIDs {
		if w == "" {
			return nil, invalid("webhook_ids", "must not contain an empty id")
		}
	}
	if t := req.GetUpdatedAfter(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, invalid("updated_after", "not a valid time")
		}
		q.UpdatedAfter = t.AsTime()
	}
	switch size := req.GetPageSize(); {
	case size < 0:
		return nil, invalid("page_size", "must not be negative")
	case size == 0:
		q.Limit = defaultJobPageSize
	default:
		q.Limit = min(int(size), maxJobPageSize)
	}
	switch req.GetOrderBy() {
	case "", "update_time desc":
	case "update_time", "update_time asc":
		q.OldestFirst = true
	default:
		return nil, invalid("order_by", `want "update_time desc" or "update_time"`)
	}
	statuses := make([]string, len(q.Statuses))
	for i, st := range q.Statuses {
		statuses[i] = st.String()
	}
	kinds := make([]string, len(q.Kinds))
	for i, k := range q.Kinds {
		kinds[i] = k.String()
	}
	after := ""
	if !q.UpdatedAfter.IsZero() {
		after = q.UpdatedAfter.Format(time.RFC3339Nano)
	}
	fp := fingerprint(statuses, kinds, q.WebhookIDs, []string{after, strconv.FormatBool(q.OldestFirst), "jobs"})
	if tok := req.GetPageToken(); tok != "" {
		pg, err := s.tokens.decode(tok, fp)
		if err != nil {
			return nil, invalid("page_token", err.Error())
		}
		q.Cursor = pg.next
	}
	states, next, err := s.states.List(ctx, q)
	if err != nil {
		return nil, err
	}
	resp := &gatewayv1.ListJobsResponse{JobStates: states}
	if next != 0 {
		resp.NextPageToken = s.tokens.encode(page{next: next, fingerprint: fp})
	}
	return resp, nil
}
