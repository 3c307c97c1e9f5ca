package jobs

// Reads of the job state bucket, through its stream leader, and the
// compare-and-set writes of the projection's checkpoint.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Get returns the state of jobID on webhookID, or, when webhookID is empty,
// on whichever registration updated it last. One lookup, no scan.
func (p *Projection) Get(ctx context.Context, webhookID, jobID string) (*gatewayv1.JobState, error) {
	subject := kvSubjectPrefix + "*." + jobToken(jobID)
	if webhookID != "" {
		if !validKeyToken(webhookID) {
			return nil, ErrNotFound
		}
		subject = kvSubjectPrefix + stateKey(webhookID, jobID)
	}
	st, _, err := p.load(ctx, subject)
	if err != nil {
		return nil, err
	}
	if st.GetJobId() != jobID { // a hashed token matched another long id
		return nil, ErrNotFound
	}
	return st, nil
}

// msgGetResponse is the JetStream STREAM.MSG.GET reply.
type msgGetResponse struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *struct {
		Sequence uint64    `json:"seq"`
		Data     []byte    `json:"data"`
		Time     time.Time `json:"time"`
	} `json:"message,omitempty"`
}

// lastMsg asks the bucket stream's leader for the last message on subject,
// which may be a wildcard. It bypasses direct gets: those can be answered by
// a lagging replica, which would break read-your-writes, and cannot take a
// wildcard.
func (p *Projection) lastMsg(ctx context.Context, subject string) (data []byte, seq uint64, err error) {
	req, err := json.Marshal(map[string]string{"last_by_subj": subject})
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	reply, err := p.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+kvStream, req)
	if err != nil {
		return nil, 0, classify("read state", err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, 0, fmt.Errorf("jobs: decode state reply: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, 0, ErrNotFound
	case resp.Error != nil:
		return nil, 0, classify("read state", resp.Error)
	case resp.Message == nil || len(resp.Message.Data) == 0:
		return nil, 0, ErrNotFound // a delete marker
	}
	return resp.Message.Data, resp.Message.Sequence, nil
}

// load reads and decodes the state on subject and its revision.
func (p *Projection) load(ctx context.Context, subject string) (*gatewayv1.JobState, uint64, error) {
	data, seq, err := p.lastMsg(ctx, subject)
	if err != nil {
		return nil, 0, err
	}
	st := new(gatewayv1.JobState)
	if err := proto.Unmarshal(data, st); err != nil {
		return nil, 0, fmt.Errorf("jobs: decode state at %s: %w", subject, err)
	}
	return st, seq, nil
}

// loadCheckpoint returns the recorded checkpoint (0 when there is none) and
// its revision.
func (p *Projection) loadCheckpoint(ctx context.Context) (uint64, uint64, error) {
	data, rev, err := p.lastMsg(ctx, kvSubjectPrefix+checkpointKey)
	if errors.Is(err, ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	cp, err := strconv.ParseUint(string(data), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("jobs: checkpoint %q: %w", data, err)
	}
	return cp, rev, nil
}

// saveCheckpoint raises the checkpoint to seq; a higher one recorded by
// another replica stays.
func (p *Projection) saveCheckpoint(ctx context.Context, seq uint64) error {
	for attempt := 1; ; attempt++ {
		cur, rev, err := p.loadCheckpoint(ctx)
		if err != nil {
			return err
		}
		if cur >= seq {
			return nil
		}
		val := []byte(strconv.FormatUint(seq, 10))
		if rev == 0 {
			_, err = p.kv.Create(ctx, checkpointKey, val)
		} else {
			_, err = p.kv.Update(ctx, checkpointKey, val, rev)
		}
		if err == nil || !lostRace(err) || attempt >= maxCASAttempts {
			return err
		}
	}
}

// lostRace reports whether a compare-and-set write failed because another
// writer changed the key first.
func lostRace(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
