package api

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/klingfan/klingfan/internal/groups"
	"github.com/klingfan/klingfan/internal/hub"
	"github.com/klingfan/klingfan/internal/jobs"
	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/store"
)

// errStreamQuota reports that a token already holds its maximum number of
// streams.
var errStreamQuota = errors.New("api: stream quota exceeded")

// fieldError is a request field that failed validation.
type fieldError struct {
	field, reason string
}

func (e *fieldError) Error() string { return e.field + ": " + e.reason }

// invalid returns an INVALID_ARGUMENT error naming the field.
func invalid(field, reason string) error { return &fieldError{field: field, reason: reason} }

// preconditionError is a well-formed request that the resource's current
// state does not allow (an inactive webhook, a filtered event type).
type preconditionError struct {
	reason string
}

func (e *preconditionError) Error() string { return e.reason }

// failedPrecondition returns a FAILED_PRECONDITION error; reason is shown to
// the client.
func failedPrecondition(reason string) error { return &preconditionError{reason: reason} }

// toStatus is the one place internal errors become gRPC statuses. Anything
// it does not recognise is INTERNAL with a generic message, logged here, so
// no internal detail reaches a client.
func toStatus(log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if st := createStatus(err); st != nil {
		return st
	}
	var (
		fe *fieldError
		pe *preconditionError
		fl *hub.FilterError
		re *hub.RangeError
		ge *groups.RangeError
	)
	switch {
	case errors.As(err, &fe):
		return badRequest(fe.field, fe.reason)
	case errors.As(err, &pe):
		return status.Error(codes.FailedPrecondition, pe.reason)
	case errors.As(err, &fl):
		return badRequest(fl.Field, fl.Reason)
	case errors.As(err, &re):
		st, _ := status.New(codes.OutOfRange, re.Error()[len("hub: "):]).WithDetails(&errdetails.ErrorInfo{
			Reason:   "SEQUENCE_OUT_OF_RANGE",
			Domain:   "klingfan",
			Metadata: map[string]string{"earliest_sequence": strconv.FormatUint(re.First, 10), "latest_sequence": strconv.FormatUint(re.Last, 10)},
		})
		return st.Err()
	case errors.As(err, &ge):
		st, _ := status.New(codes.OutOfRange, ge.Error()).WithDetails(&errdetails.ErrorInfo{
			Reason:   "SEQUENCE_OUT_OF_RANGE",
			Domain:   "klingfan",
			Metadata: map[string]string{"earliest_sequence": strconv.FormatUint(ge.First, 10), "latest_sequence": strconv.FormatUint(ge.Last, 10)},
		})
		return st.Err()
	case errors.Is(err, groups.ErrNotFound):
		return status.Error(codes.NotFound, "consumer group not found")
	case errors.Is(err, groups.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, "consumer group id already taken")
	case errors.Is(err, groups.ErrInvalidAckID):
		return badRequest("ack_ids", "not an ack id of this consumer group (ack ids come from ConsumeResponse.ack_id)")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, errSendStalled):
		return status.Error(codes.Unavailable, "stream ended: no message was accepted within the send deadline (is the client reading?); reconnect and resume after the last sequence received")
	case errors.Is(err, hub.ErrClosed):
		return status.Error(codes.Unavailable, "server shutting down: reconnect and resume after the last sequence received")
	case errors.Is(err, errStreamQuota):
		return status.Error(codes.ResourceExhausted, "this token has too many open subscriptions; close one or use another token")
	case errors.Is(err, hub.ErrTooManyStreams):
		return status.Error(codes.ResourceExhausted, "too many concurrent subscriptions; try again later")
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, "event not found")
	case errors.Is(err, jobs.ErrNotFound):
		return status.Error(codes.NotFound, "job not found")
	case errors.Is(err, registry.ErrNotFound):
		return status.Error(codes.NotFound, "webhook not found")
	case errors.Is(err, registry.ErrInactive):
		return status.Error(codes.FailedPrecondition, "webhook is inactive")
	case errors.Is(err, registry.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, "webhook id already taken")
	case errors.Is(err, store.ErrLookupPaced):
		return status.Error(codes.Unavailable, "this event id is not in the id index, and lookups of such ids run one at a time; retry later")
	case errors.Is(err, hub.ErrLogUnavailable), errors.Is(err, store.ErrUnavailable), errors.Is(err, registry.ErrUnavailable),
		errors.Is(err, jobs.ErrUnavailable):
		log.Warn("storage unavailable", "method", method, "error", err)
		return status.Error(codes.Unavailable, "event log unavailable; retry later")
	}
	log.Error("internal error", "method", method, "error", err)
	return status.Error(codes.Internal, "internal error")
}

func badRequest(field, reason string) error {
	st, err := status.New(codes.InvalidArgument, field+": "+reason).WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: reason}},
	})
	if err != nil {
		return status.Error(codes.InvalidArgument, field+": "+reason)
	}
	return st.Err()
}
