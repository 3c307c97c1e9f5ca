package api

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

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
// handler into a status (see toStatus). It runs right inside the metrics
// interceptor, so that the metrics see the final code and the interceptors
// inside it (authentication, stream caps) return plain errors of a kind,
// as handlers do.
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

// TapErrors is UnaryErrors for a tap handle, which refuses a call before
// its stream, and so any interceptor, exists.
func TapErrors(log *slog.Logger, h tap.ServerInHandle) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		ctx, err := h(ctx, info)
		return ctx, toStatus(log, info.FullMethodName, err)
	}
}

// Status is the status err maps to, for a refusal made before gRPC sees
// the request (the REST gateway's token check), so that it answers as the
// gRPC call would.
func Status(log *slog.Logger, method string, err error) error {
	return toStatus(log, method, err)
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
	errkind.Unauthenticated:    codes.Unauthenticated,
}

// toStatus is the one place errors become gRPC statuses: the kind picks the
// code, the kind's message is all a client sees, and the details the error
// carries (errkind.Public) go with it. An error that is already a status
// passes through. An error with no kind is INTERNAL with a generic message,
// logged here, so no internal detail reaches a client.
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
	p := errkind.Of(err)
	// The caller's own cancellation or deadline explains an unavailability
	// it caused better than the unavailability does.
	if p.Kind == errkind.Internal || p.Kind == errkind.Unavailable {
		switch {
		case errors.Is(err, context.Canceled):
			return status.Error(codes.Canceled, "request cancelled")
		case errors.Is(err, context.DeadlineExceeded):
			return status.Error(codes.DeadlineExceeded, "deadline exceeded")
		}
	}
	switch p.Kind {
	case errkind.Internal:
		log.Error("internal error", "method", method, "error", err)
		return status.Error(codes.Internal, "internal error")
	case errkind.Unavailable:
		log.Warn("unavailable", "method", method, "error", err)
	}
	return withDetails(status.New(kindCodes[p.Kind], p.Message), details(p)...)
}

// details are the google.rpc messages for what p carries beside its kind
// and message.
func details(p errkind.Public) []protoadapt.MessageV1 {
	var ds []protoadapt.MessageV1
	if p.Field != "" {
		ds = append(ds, &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: p.Field, Description: p.FieldReason}},
		})
	}
	if q := p.Quota; q != nil {
		ds = append(ds, &errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: q.Subject, Description: q.Description}}})
	}
	if i := p.Info; i != nil {
		ds = append(ds, &errdetails.ErrorInfo{Reason: i.Reason, Domain: i.Domain, Metadata: i.Metadata})
	}
	if p.RetryAfter > 0 {
		ds = append(ds, &errdetails.RetryInfo{RetryDelay: durationpb.New(p.RetryAfter)})
	}
	return ds
}

// withDetails is st with details, or st alone should they fail to marshal.
func withDetails(st *status.Status, details ...protoadapt.MessageV1) error {
	if len(details) == 0 {
		return st.Err()
	}
	if s, err := st.WithDetails(details...); err == nil {
		return s.Err()
	}
	return st.Err()
}
