package api

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/klingfan/klingfan/internal/errkind"
)

// errStreamQuota reports that a token already holds its maximum number of
// streams.
var errStreamQuota = errkind.New(errkind.ResourceExhausted, "api", "this token has too many open subscriptions; close one or use another token")

// invalid returns an INVALID_ARGUMENT error naming the request field.
func invalid(field, reason string) error { return errkind.Invalid(field, reason) }

// failedPrecondition returns a FAILED_PRECONDITION error for a well-formed
// request that the resource's current state does not allow (an inactive
// webhook, a filtered event type); reason is shown to the client.
func failedPrecondition(reason string) error {
	return errkind.New(errkind.FailedPrecondition, "api", reason)
}

// UnaryErrors returns the interceptor that turns the error of every unary
// handler into a status (see toStatus). It must run innermost, so that the
// metrics and logging interceptors around it see the final code.
func UnaryErrors(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			return nil, toStatus(log, info.FullMethod, err)
		}
		return resp, nil
	}
}

// StreamErrors is UnaryErrors for streaming handlers.
func StreamErrors(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return toStatus(log, info.FullMethod, handler(srv, ss))
	}
}

// kindCodes maps each error kind to its status code.
var kindCodes = map[errkind.Kind]codes.Code{
	errkind.InvalidArgument:    codes.InvalidArgument,
	errkind.NotFound:           codes.NotFound,
	errkind.AlreadyExists:      codes.AlreadyExists,
	errkind.FailedPrecondition: codes.FailedPrecondition,
	errkind.OutOfRange:         codes.OutOfRange,
	errkind.ResourceExhausted:  codes.ResourceExhausted,
	errkind.Unavailable:        codes.Unavailable,
	errkind.PermissionDenied:   codes.PermissionDenied,
}

// toStatus is the one place errors become gRPC statuses: the kind picks the
// code and the kind's message is all a client sees. An error that is
// already a status passes through. An error with no kind is INTERNAL with a
// generic message, logged here, so no internal detail reaches a client.
func toStatus(log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	// A status passes through as it was made: status.FromError would also
	// accept one wrapped with context and then show the whole wrapped text.
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Err()
	}
	if st := createStatus(err); st != nil {
		return st
	}
	kind, msg := errkind.Of(err)
	// The caller's own cancellation or deadline explains an unavailability
	// it caused better than the unavailability does.
	if kind == errkind.Internal || kind == errkind.Unavailable {
		switch {
		case errors.Is(err, context.Canceled):
			return status.Error(codes.Canceled, "request cancelled")
		case errors.Is(err, context.DeadlineExceeded):
			return status.Error(codes.DeadlineExceeded, "deadline exceeded")
		}
	}
	switch kind {
	case errkind.Internal:
		log.Error("internal error", "method", method, "error", err)
		return status.Error(codes.Internal, "internal error")
	case errkind.Unavailable:
		log.Warn("unavailable", "method", method, "error", err)
	case errkind.InvalidArgument:
		var fe *errkind.FieldError
		if errors.As(err, &fe) {
			return withDetails(codes.InvalidArgument, msg, &errdetails.BadRequest{
				FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: fe.Field, Description: fe.Reason}},
			})
		}
	case errkind.OutOfRange:
		var re *errkind.RangeError
		if errors.As(err, &re) {
			return withDetails(codes.OutOfRange, msg, &errdetails.ErrorInfo{
				Reason:   "SEQUENCE_OUT_OF_RANGE",
				Domain:   "klingfan",
				Metadata: map[string]string{"earliest_sequence": strconv.FormatUint(re.First, 10), "latest_sequence": strconv.FormatUint(re.Last, 10)},
			})
		}
	}
	return status.Error(kindCodes[kind], msg)
}

// withDetails is a status with one detail message, or without it should
// the detail fail to marshal.
func withDetails(code codes.Code, msg string, detail protoadapt.MessageV1) error {
	st, err := status.New(code, msg).WithDetails(detail)
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}
