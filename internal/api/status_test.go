package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/klingfan/klingfan/internal/api"
	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/store"
	"github.com/klingfan/klingfan/internal/submit"
)

// TestErrorsToStatus holds the one error → status mapping: the kind picks
// the code, the kind's message is all a client sees, and an error with no
// kind is INTERNAL with a generic message and a log line.
func TestErrorsToStatus(t *testing.T) {
	secret := "nats://10.0.0.7:4222"
	cases := []struct {
		name     string
		err      error
		code     codes.Code
		msg      string
		field    string // the BadRequest field violation, if any
		earliest string // the ErrorInfo's earliest_sequence, if any
		reason   string // the ErrorInfo's reason, if any
		quota    string // the QuotaFailure's subject, if any
		retry    time.Duration
		logged   string
	}{
		{name: "field", err: fmt.Errorf("check: %w", errkind.Invalid("webhook.id", "required")), code: codes.InvalidArgument, msg: "webhook.id: required", field: "webhook.id"},
		{name: "range", err: fmt.Errorf("hub: %w", &errkind.RangeError{Reason: "after_sequence 3 is older than retention", First: 7, Last: 9}),
			code: codes.OutOfRange, msg: "after_sequence 3 is older than retention (earliest available sequence 7, latest 9)", earliest: "7", reason: "SEQUENCE_OUT_OF_RANGE"},
		{name: "Kling's refusal carries its code and retry delay", err: fmt.Errorf("create: %w", &klingapi.APIError{HTTPStatus: 429, Code: 1303, Message: "busy", RetryAfter: 7 * time.Second}),
			code: codes.ResourceExhausted, msg: "Kling refused the task (code 1303): busy", reason: "KLING_1303", retry: 7 * time.Second},
		{name: "a budget names its quota", err: &submit.BudgetError{Token: "ci", Limit: "max-jobs-in-flight", Used: 1, Max: 1, RetryAfter: 30 * time.Second},
			code: codes.ResourceExhausted, msg: `token "ci" is over its --max-jobs-in-flight budget (1 of 1); Kling was not called`, quota: "token:ci", retry: 30 * time.Second},
		{name: "unauthenticated", err: errkind.New(errkind.Unauthenticated, "auth", "invalid bearer token"), code: codes.Unauthenticated, msg: "invalid bearer token"},
		{name: "not found hides the wrapped id", err: fmt.Errorf("%w: %q", registry.ErrNotFound, secret), code: codes.NotFound, msg: "webhook not found"},
		{name: "already exists", err: registry.ErrAlreadyExists, code: codes.AlreadyExists, msg: "webhook id already taken"},
		{name: "precondition", err: registry.ErrInactive, code: codes.FailedPrecondition, msg: "webhook is inactive"},
		{name: "unavailable hides the cause", err: fmt.Errorf("store: read: %w: dial %s: refused", store.ErrUnavailable, secret),
			code: codes.Unavailable, msg: "event log unavailable; retry later", logged: "level=WARN"},
		{name: "store full is unavailable", err: &store.FullError{Reason: "store full: 24 MiB of 24 MiB"}, code: codes.Unavailable, msg: "event log unavailable; retry later"},
		{name: "caller's deadline wins over unavailable", err: fmt.Errorf("%w: %w", store.ErrUnavailable, context.DeadlineExceeded), code: codes.DeadlineExceeded, msg: "deadline exceeded"},
		{name: "cancelled", err: fmt.Errorf("read: %w", context.Canceled), code: codes.Canceled, msg: "request cancelled"},
		{name: "unknown is internal", err: fmt.Errorf("decode %s: %w", secret, errors.New("unexpected EOF")), code: codes.Internal, msg: "internal error", logged: "level=ERROR"},
		{name: "a status passes through", err: status.Error(codes.PermissionDenied, "no"), code: codes.PermissionDenied, msg: "no"},
		{name: "a wrapped status keeps its own message", err: fmt.Errorf("dial %s: %w", secret, status.Error(codes.PermissionDenied, "no")), code: codes.PermissionDenied, msg: "no"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			unary := api.UnaryErrors(log)
			_, uerr := unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/test/Unary"}, func(context.Context, any) (any, error) { return nil, tc.err })
			stream := api.StreamErrors(log)
			serr := stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/test/Stream"}, func(any, grpc.ServerStream) error { return tc.err })
			for _, err := range []error{uerr, serr} {
				st, ok := status.FromError(err)
				if !ok || st.Code() != tc.code || st.Message() != tc.msg {
					t.Fatalf("status = %v, want %s %q", err, tc.code, tc.msg)
				}
				if strings.Contains(st.Message(), secret) {
					t.Errorf("message %q leaks the wrapped cause", st.Message())
				}
				var field, earliest, reason, quota string
				var retry time.Duration
				for _, d := range st.Details() {
					switch d := d.(type) {
					case *errdetails.BadRequest:
						field = d.GetFieldViolations()[0].GetField()
					case *errdetails.ErrorInfo:
						earliest, reason = d.GetMetadata()["earliest_sequence"], d.GetReason()
					case *errdetails.QuotaFailure:
						quota = d.GetViolations()[0].GetSubject()
					case *errdetails.RetryInfo:
						retry = d.GetRetryDelay().AsDuration()
					}
				}
				if field != tc.field || earliest != tc.earliest || reason != tc.reason || quota != tc.quota || retry != tc.retry {
					t.Errorf("details: field %q, earliest %q, reason %q, quota %q, retry %v; want %q, %q, %q, %q, %v",
						field, earliest, reason, quota, retry, tc.field, tc.earliest, tc.reason, tc.quota, tc.retry)
				}
			}
			if tc.logged != "" && (!strings.Contains(logs.String(), tc.logged) || !strings.Contains(logs.String(), secret)) {
				t.Errorf("log = %q, want a %s line with the cause", logs.String(), tc.logged)
			}
		})
	}
}
