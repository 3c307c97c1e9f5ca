package api

import (
	"errors"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/submit"
)

// klingDomain is the ErrorInfo domain of Kling's own refusals.
const klingDomain = "klingai.com"

// minKlingRetry is the least wait Kling's concurrency rules ask for after
// a rate or concurrency refusal.
const minKlingRetry = time.Second

// createStatus maps what CreateJob's submitter returns beyond the error
// kinds: a token's budget, and Kling's answers by Kling's error-code table,
// with the details a client acts on (retry delay, Kling's code and request
// id, the budget). It returns nil for every other error, which the kinds
// map.
func createStatus(err error) error {
	var (
		be *submit.BudgetError
		ce *submit.CredentialError
		ae *klingapi.APIError
	)
	switch {
	case errors.As(err, &be):
		return statusWith(status.New(codes.ResourceExhausted, be.Error()),
			&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: "token:" + be.Token, Description: be.Limit}}},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(be.RetryAfter)})
	case errors.As(err, &ce):
		msg := "Kling refused the credentials " + ce.Credential
		if errors.As(err, &ae) {
			msg += " (code " + strconv.Itoa(ae.Code) + ": " + ae.Message + ")"
			return statusWith(status.New(codes.FailedPrecondition, msg+"; check them, or the clock for an expired token"), klingInfo(ae))
		}
		return status.Error(codes.FailedPrecondition, msg)
	case errors.As(err, &ae):
		return klingStatus(ae)
	case errors.Is(err, klingapi.ErrShape):
		return status.Error(codes.Unavailable, "Kling answered in a shape its pages do not document, and may have created the task; retrying with the same request_id looks it up first")
	case errors.Is(err, klingapi.ErrUnavailable):
		return status.Error(codes.Unavailable, "Kling could not be reached, and may or may not have created the task; retrying with the same request_id is safe")
	}
	return nil
}

// klingStatus maps one of Kling's refusals by the class of its code in
// Kling's error-code table (klingapi.Classify).
func klingStatus(ae *klingapi.APIError) error {
	c := klingapi.Classify(ae)
	refused := "Kling refused the task (code " + strconv.Itoa(ae.Code) + "): " + ae.Message
	info := klingInfo(ae)
	retry := &errdetails.RetryInfo{RetryDelay: durationpb.New(retryDelay(ae))}
	switch {
	case c.Class == klingapi.ClassServer:
		return statusWith(status.New(codes.Unavailable, "Kling failed (HTTP "+strconv.Itoa(ae.HTTPStatus)+", code "+strconv.Itoa(ae.Code)+"): "+ae.Message+"; retrying with the same request_id is safe"), info, retry)
	case c.Class == klingapi.ClassRateLimited, ae.Code == 1102:
		// The rate limit, the account's concurrency, or a depleted
		// resource pack: the task was not created, and may be later.
		return statusWith(status.New(codes.ResourceExhausted, refused), info, retry)
	case c.Class == klingapi.ClassAuth:
		return statusWith(status.New(codes.FailedPrecondition, "Kling refused the credentials (code "+strconv.Itoa(ae.Code)+"): "+ae.Message), info)
	case c.Class == klingapi.ClassInvalid, c.Class == klingapi.ClassNotFound, c.Class == klingapi.ClassPolicy:
		// Invalid parameters, a model that does not exist, or content the
		// platform's policy refused: Kling's message says what to change.
		return statusWith(status.New(codes.InvalidArgument, refused), info)
	}
	// The account's state (arrears), its permissions or the IP allow-list,
	// or a code the table does not hold: nothing a retry of this request
	// changes.
	return statusWith(status.New(codes.FailedPrecondition, refused), info)
}

// retryDelay is Kling's Retry-After, or the least wait its concurrency
// rules ask for.
func retryDelay(ae *klingapi.APIError) time.Duration {
	if ae.RetryAfter > 0 {
		return ae.RetryAfter
	}
	return minKlingRetry
}

// klingInfo carries Kling's code and request id, so a caller can act on the
// code and Kling's support can find the request.
func klingInfo(ae *klingapi.APIError) *errdetails.ErrorInfo {
	md := map[string]string{"code": strconv.Itoa(ae.Code), "http_status": strconv.Itoa(ae.HTTPStatus)}
	if ae.RequestID != "" {
		md["request_id"] = ae.RequestID
	}
	return &errdetails.ErrorInfo{Reason: "KLING_" + strconv.Itoa(ae.Code), Domain: klingDomain, Metadata: md}
}

// statusWith attaches details to st, or returns st alone if they cannot
// be attached.
func statusWith(st *status.Status, details ...protoadapt.MessageV1) error {
	if s, err := st.WithDetails(details...); err == nil {
		return s.Err()
	}
	return st.Err()
}
