package client

import (
	"context"
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/ids"
)

// A CreateOption configures [Client.CreateJob].
type CreateOption func(*createOptions)

type createOptions struct {
	webhook string
	backoff Backoff
}

// WithCreateWebhook creates the job on registration webhookID, whose
// ingest URL Kling calls back; "default" when not given.
func WithCreateWebhook(webhookID string) CreateOption {
	return func(o *createOptions) { o.webhook = webhookID }
}

// WithCreateBackoff sets the wait between retries of a create that failed
// with UNAVAILABLE; [DefaultBackoff] by default.
func WithCreateBackoff(b Backoff) CreateOption {
	return func(o *createOptions) { o.backoff = b }
}

// NewRequestID returns a fresh request id for [Client.CreateJob]. Keep it
// with the work it belongs to: sending the same id again is what makes a
// retry safe.
func NewRequestID() string { return "req_" + ids.Random(26) }

// CreateJob creates a Kling task through the gateway and returns the job's
// state, submitted. endpoint is Kling's create path (for example
// "/v1/videos/text2video"); body is Kling's request body for it, as
// []byte or json.RawMessage holding a JSON object, or any value
// encoding/json turns into one. The gateway fills in the callback URL and
// the external task id.
//
// requestID makes the create idempotent: the same id again returns the
// same job and never creates a second Kling task, so a create that fails
// with UNAVAILABLE (Kling or the gateway briefly unreachable, the outcome
// unknown) is retried here with the same id until it succeeds, fails
// otherwise, or ctx ends. Follow the job with [Client.WaitJob].
func (c *Client) CreateJob(ctx context.Context, endpoint string, body any, requestID string, opts ...CreateOption) (*gatewayv1.JobState, error) {
	o := createOptions{backoff: DefaultBackoff}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := toStruct(body)
	if err != nil {
		return nil, err
	}
	req := &gatewayv1.CreateJobRequest{Endpoint: endpoint, Body: s, RequestId: requestID, WebhookId: o.webhook}
	for attempt := 1; ; attempt++ {
		resp, err := c.jobs.CreateJob(ctx, req)
		if err == nil {
			return resp.GetJobState(), nil
		}
		if status.Code(err) != codes.Unavailable {
			return nil, err
		}
		if serr := sleep(ctx, o.backoff.Delay(attempt)); serr != nil {
			return nil, fmt.Errorf("client: create %s: %w (last attempt: %w)", requestID, serr, err)
		}
	}
}

// toStruct turns a JSON object, given as bytes or as a value, into the
// request's body.
func toStruct(body any) (*structpb.Struct, error) {
	var data []byte
	switch b := body.(type) {
	case *structpb.Struct:
		return b, nil
	case []byte:
		data = b
	case json.RawMessage:
		data = b
	default:
		var err error
		if data, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("client: encode the body: %w", err)
		}
	}
	s := &structpb.Struct{}
	if err := s.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("client: the body must be a JSON object: %w", err)
	}
	return s, nil
}
