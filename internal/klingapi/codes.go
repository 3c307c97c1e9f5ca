package klingapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"
)

// Class is what a caller can do about a failed request: the grouping of
// Kling's error-code table that CreateJob maps to gRPC codes and the
// reconciler to retry-or-stop.
type Class string

// Classes of Kling's error codes, and of failures that carry no code.
const (
	ClassAuth        Class = "auth"         // 1000-1004: fix the credentials
	ClassAccount     Class = "account"      // 1100-1102: fix the account (pay, buy a pack)
	ClassPermission  Class = "permission"   // 1103, 1304: not allowed (resource, IP allow-list)
	ClassInvalid     Class = "invalid"      // 1200-1202: fix the request
	ClassNotFound    Class = "not_found"    // 1203: no such resource
	ClassPolicy      Class = "policy"       // 1300, 1301: blocked by platform or content policy
	ClassRateLimited Class = "rate_limited" // 1302, 1303: back off and retry
	ClassServer      Class = "server"       // 5000-5002: Kling's fault, retry later
	ClassUnreachable Class = "unreachable"  // no answer at all: retry later
	ClassShape       Class = "shape"        // an answer the pages do not document
	ClassCanceled    Class = "canceled"     // the caller's context ended
	ClassUnknown     Class = "unknown"      // a code missing from the table
)

// Code is one row of Kling's error-code table.
type Code struct {
	Code       int
	HTTPStatus int
	Class      Class
	// Retryable: the same request may succeed later without any change.
	Retryable bool
	// Meaning is the table's definition and explanation, in English.
	Meaning string
}

// codeTable is Kling's error-code table (api/get-started/error-codes),
// code for code, in the page's order.
var codeTable = []Code{
	{1000, 401, ClassAuth, false, "authentication failed"},
	{1001, 401, ClassAuth, false, "authentication failed: Authorization is empty"},
	{1002, 401, ClassAuth, false, "authentication failed: Authorization is invalid"},
	{1003, 401, ClassAuth, false, "authentication failed: Authorization is not yet valid"},
	{1004, 401, ClassAuth, false, "authentication failed: Authorization has expired"},
	{1100, 429, ClassAccount, false, "account exception: abnormal account status"},
	{1101, 429, ClassAccount, false, "account exception: account in arrears (postpaid)"},
	{1102, 429, ClassAccount, false, "account exception: resource pack exhausted or expired (prepaid)"},
	{1103, 403, ClassPermission, false, "account exception: no access to the requested resource, such as the API or model"},
	{1200, 400, ClassInvalid, false, "invalid request parameters"},
	{1201, 400, ClassInvalid, false, "invalid parameters, such as an incorrect key or invalid value"},
	{1202, 404, ClassInvalid, false, "the requested method is invalid"},
	{1203, 404, ClassNotFound, false, "the requested resource does not exist, such as the model"},
	{1300, 400, ClassPolicy, false, "request blocked by platform policy"},
	{1301, 400, ClassPolicy, false, "the platform's content security policy was triggered"},
	{1302, 429, ClassRateLimited, true, "too many requests: rate limit exceeded"},
	{1303, 429, ClassRateLimited, true, "concurrency or QPS exceeds the resource pack limit"},
	{1304, 429, ClassPermission, false, "the platform's IP allow-list policy was triggered"},
	{5000, 500, ClassServer, true, "server internal error"},
	{5001, 503, ClassServer, true, "server temporarily unavailable, usually for maintenance"},
	{5002, 504, ClassServer, true, "server internal timeout, usually from a backlog"},
}

// Codes returns Kling's error-code table.
func Codes() []Code { return slices.Clone(codeTable) }

// LookupCode returns the table's row for code.
func LookupCode(code int) (Code, bool) {
	i := slices.IndexFunc(codeTable, func(c Code) bool { return c.Code == code })
	if i < 0 {
		return Code{}, false
	}
	return codeTable[i], true
}

// Classification is what Classify makes of an error: its class, whether to
// retry, and Kling's own code and message to pass on.
type Classification struct {
	Class     Class
	Retryable bool
	// Code, HTTPStatus, Message and RequestID are Kling's, when it answered.
	Code       int
	HTTPStatus int
	Message    string
	RequestID  string
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
}

// Classify reads any error the client returns. A code in the table is
// classified by its row whatever the HTTP status; a code missing from the
// table, or no code, by the HTTP status.
func Classify(err error) Classification {
	var ae *APIError
	switch {
	case err == nil:
		return Classification{}
	case errors.As(err, &ae):
		c := ae.class()
		return Classification{
			Class: c, Retryable: c == ClassRateLimited || c == ClassServer,
			Code: ae.Code, HTTPStatus: ae.HTTPStatus, Message: ae.Message, RequestID: ae.RequestID, RetryAfter: ae.RetryAfter,
		}
	case errors.Is(err, ErrShape):
		return Classification{Class: ClassShape, Message: err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return Classification{Class: ClassCanceled, Message: err.Error()}
	case errors.Is(err, ErrUnavailable):
		return Classification{Class: ClassUnreachable, Retryable: true, Message: err.Error()}
	}
	return Classification{Class: ClassUnknown, Message: err.Error()}
}

// Retryable reports whether the same request may succeed later: rate
// limits, Kling's server errors and no answer at all.
func Retryable(err error) bool { return Classify(err).Retryable }

// class is the error's class: its code's row, else its HTTP status.
func (e *APIError) class() Class {
	if row, ok := LookupCode(e.Code); ok {
		return row.Class
	}
	switch s := e.HTTPStatus; {
	case s == http.StatusUnauthorized:
		return ClassAuth
	case s == http.StatusForbidden:
		return ClassPermission
	case s == http.StatusNotFound:
		return ClassNotFound
	case s == http.StatusTooManyRequests:
		return ClassRateLimited
	case s >= 500:
		return ClassServer
	case s >= 400:
		return ClassInvalid
	}
	return ClassUnknown
}

// sentinelOf is the sentinel error a class matches.
func sentinelOf(c Class) error {
	switch c {
	case ClassAuth:
		return ErrAuth
	case ClassAccount:
		return ErrAccount
	case ClassPermission:
		return ErrPermission
	case ClassInvalid:
		return ErrInvalid
	case ClassNotFound:
		return ErrNotFound
	case ClassPolicy:
		return ErrPolicy
	case ClassRateLimited:
		return ErrRateLimited
	case ClassServer, ClassUnreachable:
		return ErrUnavailable
	}
	return nil
}
