package client

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/jobstate"
)

// A WaitOption configures [Client.WaitJob].
type WaitOption func(*waitOptions)

type waitOptions struct {
	webhook string
	backoff Backoff
}

// WithJobWebhook waits for the job that arrives on registration webhookID.
// Kling's job ids are unique per account, so this matters only when two
// registrations (accounts) may carry the same id; without it WaitJob
// follows the registration that updated the job last, or, for a job not
// seen yet, the first one it arrives on.
func WithJobWebhook(webhookID string) WaitOption {
	return func(o *waitOptions) { o.webhook = webhookID }
}

// WithWaitBackoff sets the reconnect backoff of the subscription WaitJob
// follows the job with; [DefaultBackoff] by default.
func WithWaitBackoff(b Backoff) WaitOption {
	return func(o *waitOptions) { o.backoff = b }
}

// errJobDone ends WaitJob's subscription once the job is final.
var errJobDone = errors.New("client: job finished")

// WaitJob waits until job jobID reaches a final status (succeeded, failed
// or cancelled) and returns that state; check its Job.Status for the
// outcome. Bound the wait with ctx.
//
// It asks the server for the job's state (GetJob) and, unless the job has
// finished already, subscribes to the job's events right after the
// sequence that state was folded from, folding each into it the way the
// server does, so no event can slip between the two. A job the server has
// not seen yet is followed from the beginning of retention. The
// subscription reconnects like [Client.Subscribe]. On error WaitJob also
// returns the last state it knew (nil when none), so a caller that gives
// up can say where the job was.
func (c *Client) WaitJob(ctx context.Context, jobID string, opts ...WaitOption) (*gatewayv1.JobState, error) {
	o := waitOptions{backoff: DefaultBackoff}
	for _, opt := range opts {
		opt(&o)
	}
	var st *gatewayv1.JobState
	resp, err := c.jobs.GetJob(ctx, &gatewayv1.GetJobRequest{JobId: jobID, WebhookId: o.webhook})
	switch {
	case status.Code(err) == codes.NotFound:
	case err != nil:
		return nil, err
	default:
		st = resp.GetJobState()
		if jobstate.Terminal(st.GetJob().GetStatus()) {
			return st, nil
		}
	}
	req := &gatewayv1.SubscribeRequest{JobIds: []string{jobID}}
	webhook := o.webhook
	if st != nil {
		webhook = st.GetWebhookId()
	}
	if webhook != "" {
		req.WebhookIds = []string{webhook}
	}
	if st != nil {
		req.Start = &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: st.GetLastSequence()}
	} else {
		req.Start = &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true}
	}
	err = c.Subscribe(ctx, req, func(_ context.Context, ev *gatewayv1.Event) error {
		if st != nil && ev.GetWebhookId() != st.GetWebhookId() {
			return nil // the same job id on another registration is another job
		}
		st, _ = jobstate.Fold(st, ev)
		if jobstate.Terminal(st.GetJob().GetStatus()) {
			return errJobDone
		}
		return nil
	}, WithSubscribeBackoff(o.backoff))
	if errors.Is(err, errJobDone) {
		return st, nil
	}
	return st, err
}
