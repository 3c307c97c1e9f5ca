package klingapi

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/klingfan/klingfan/internal/errkind"
)

// CodeOK is Kling's success code.
const CodeOK = 0

// Codes the simulator and tests name; the full table is in codes.go.
const (
	CodeAuthFailed      = 1000
	CodeTokenNotYet     = 1003
	CodeTokenExpired    = 1004
	CodePackExhausted   = 1102 // the prepaid resource pack is used up or expired
	CodeInvalidParam    = 1201
	CodeNotFound        = 1203 // the requested resource does not exist
	CodeRateLimited     = 1302
	CodeConcurrencyFull = 1303
	CodeIPAllowList     = 1304
	CodeServerError     = 5000
)

// Sentinel errors the client's errors match with errors.Is, one per class
// of Kling's code table (see Classify for the whole classification).
var (
	// ErrAuth reports credentials Kling refused (codes 1000-1004, HTTP
	// 401), or that a token could not be made from them: retrying with
	// the same credentials will not help.
	ErrAuth = errkind.New(errkind.FailedPrecondition, "klingapi", "authentication failed")
	// ErrTokenExpired is the JWT-specific auth failure 1004; it also
	// matches ErrAuth.
	ErrTokenExpired = fmt.Errorf("%w: token expired", ErrAuth)
	// ErrTokenNotYetValid is the JWT-specific auth failure 1003; it also
	// matches ErrAuth.
	ErrTokenNotYetValid = fmt.Errorf("%w: token not yet valid", ErrAuth)
	// ErrAccount reports an account problem (1100-1102, HTTP 429): an
	// abnormal account, arrears or a depleted resource pack. Not retried,
	// although Kling answers it with HTTP 429.
	ErrAccount = errors.New("klingapi: account exception")
	// ErrPermission reports a resource the account may not use (1103) or a
	// request from outside the account's IP allow-list (1304, HTTP 429):
	// not a rate limit, and not retried.
	ErrPermission = errors.New("klingapi: permission denied")
	// ErrInvalid reports request parameters Kling refused (1200-1202).
	ErrInvalid = errors.New("klingapi: invalid request")
	// ErrNotFound reports a resource that does not exist (1203, HTTP 404).
	ErrNotFound = errors.New("klingapi: not found")
	// ErrPolicy reports a request blocked by Kling's platform or content
	// policy (1300, 1301).
	ErrPolicy = errors.New("klingapi: blocked by policy")
	// ErrRateLimited reports a rate or concurrency limit (1302, 1303, or
	// HTTP 429 without a code): back off and retry later.
	ErrRateLimited = errors.New("klingapi: rate limited")
	// ErrUnavailable reports that the API could not be reached or answered
	// with a server error (5000-5002, HTTP 5xx): worth a retry.
	ErrUnavailable = errkind.New(errkind.Unavailable, "klingapi", "API unavailable")
	// ErrShape reports an answer whose JSON is not what Kling's pages
	// document; *ShapeError says where.
	// It is of kind Unavailable: Kling may answer as documented later.
	ErrShape = errkind.New(errkind.Unavailable, "klingapi", "unexpected answer shape")
)

// APIError is a non-zero code in Kling's envelope, or an HTTP error status.
type APIError struct {
	HTTPStatus int
	Code       int
	Message    string
	RequestID  string
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("klingapi: HTTP %d code %d: %s (request %s)", e.HTTPStatus, e.Code, e.Message, e.RequestID)
}

// Label is a bounded metric label for the error: the code, or the HTTP
// status when the body carried none.
func (e *APIError) Label() string {
	// Bounded, since an answer (or a proxy in between) may carry any
	// number: a code in Kling's table, a valid HTTP status, or "other".
	if _, ok := LookupCode(e.Code); ok {
		return strconv.Itoa(e.Code)
	}
	if e.Code == 0 && e.HTTPStatus >= 100 && e.HTTPStatus <= 599 {
		return "http_" + strconv.Itoa(e.HTTPStatus)
	}
	return "other"
}

// Is matches the error against the sentinel of its class, and against its
// error kind (see Public).
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrTokenExpired:
		return e.Code == CodeTokenExpired
	case ErrTokenNotYetValid:
		return e.Code == CodeTokenNotYet
	}
	if k, ok := target.(errkind.Kind); ok {
		return k == e.kind()
	}
	s := sentinelOf(e.class())
	return s != nil && s == target
}

// domain is the ErrorInfo domain of Kling's own codes.
const domain = "klingai.com"

// minRetryAfter is the least wait Kling's concurrency rules ask for after
// a rate or concurrency refusal, when it sends no Retry-After.
const minRetryAfter = time.Second

// Public is what a client is told of Kling's answer: the kind its class
// has (see kind), Kling's code and message, the code and request id for a
// program and for Kling's support, and, for what may succeed later, when
// to try again.
func (e *APIError) Public() errkind.Public {
	md := map[string]string{"code": strconv.Itoa(e.Code), "http_status": strconv.Itoa(e.HTTPStatus)}
	if e.RequestID != "" {
		md["request_id"] = e.RequestID
	}
	p := errkind.Public{
		Kind:    e.kind(),
		Message: "Kling refused the task (code " + strconv.Itoa(e.Code) + "): " + e.Message,
		Info:    &errkind.Info{Reason: "KLING_" + strconv.Itoa(e.Code), Domain: domain, Metadata: md},
	}
	switch p.Kind {
	case errkind.Unavailable:
		p.Message = "Kling failed (HTTP " + strconv.Itoa(e.HTTPStatus) + ", code " + strconv.Itoa(e.Code) + "): " + e.Message
		p.RetryAfter = e.retryAfter()
	case errkind.ResourceExhausted:
		p.RetryAfter = e.retryAfter()
	case errkind.FailedPrecondition:
		if e.class() == ClassAuth {
			p.Message = "Kling refused the credentials (code " + strconv.Itoa(e.Code) + "): " + e.Message
		}
	}
	return p
}

// retryAfter is Kling's Retry-After, or the least wait its concurrency
// rules ask for.
func (e *APIError) retryAfter() time.Duration {
	if e.RetryAfter > 0 {
		return e.RetryAfter
	}
	return minRetryAfter
}

// kind is the error kind of the error's class: what a client of klingfan
// can do about it.
func (e *APIError) kind() errkind.Kind {
	switch c := e.class(); {
	case c == ClassServer:
		return errkind.Unavailable
	case c == ClassRateLimited, e.Code == CodePackExhausted:
		// The rate limit, the account's concurrency, or a depleted
		// resource pack: nothing was created, and may be later.
		return errkind.ResourceExhausted
	case c == ClassInvalid, c == ClassNotFound, c == ClassPolicy:
		// Invalid parameters, a model that does not exist, or content the
		// platform's policy refused: Kling's message says what to change.
		return errkind.InvalidArgument
	}
	// The credentials, the account's state (arrears), its permissions or
	// the IP allow-list, or a code the table does not hold: nothing a
	// retry of the same request changes.
	return errkind.FailedPrecondition
}

// ShapeError is an answer that does not have the shape Kling's pages
// document: a list where an object belongs, a missing or mistyped field.
// It names the family (or query endpoint) and the field, so a reconcile
// error says what to look at instead of skipping the task.
type ShapeError struct {
	// Family is the family or shared endpoint asked ("videos/text2video",
	// "tasks").
	Family string
	// Call is the request, without its query ("GET /tasks").
	Call string
	// Field is the JSON path of the odd member ("data", "data[2].task_id").
	Field string
	// Problem says what was wrong with it.
	Problem string
}

func (e *ShapeError) Error() string {
	return fmt.Sprintf("klingapi: %s: %s answered an unexpected shape: %s: %s", e.Family, e.Call, e.Field, e.Problem)
}

// Unwrap makes a ShapeError match ErrShape.
func (e *ShapeError) Unwrap() error { return ErrShape }

// ErrorLabel returns the metric label for any error the client returns.
func ErrorLabel(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Label()
	}
	if errors.Is(err, ErrShape) {
		return "shape"
	}
	if errors.Is(err, ErrUnavailable) {
		return "unreachable"
	}
	return "other"
}
