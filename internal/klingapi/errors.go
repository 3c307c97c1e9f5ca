package klingapi

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Kling's answer codes that callers act on. 0 is success.
const (
	CodeOK = 0
	// CodeAuthFailed and its neighbours (1000-1004) are authentication
	// failures; 1003 and 1004 are a token not yet valid and an expired one.
	CodeAuthFailed      = 1000
	CodeTokenNotYet     = 1003
	CodeTokenExpired    = 1004
	CodeNotFound        = 1201 // an unknown task (a 1200-range parameter error)
	CodeRateLimited     = 1302 // requests too frequent
	CodeConcurrencyFull = 1303 // too many concurrent tasks or requests
)

var (
	// ErrAuth reports credentials Kling refused (codes 1000-1004, HTTP 401):
	// retrying with the same credentials will not help.
	ErrAuth = errors.New("klingapi: authentication failed")
	// ErrTokenExpired is the JWT-specific auth failure 1004; it also
	// matches ErrAuth.
	ErrTokenExpired = fmt.Errorf("%w: token expired", ErrAuth)
	// ErrTokenNotYetValid is the JWT-specific auth failure 1003; it also
	// matches ErrAuth.
	ErrTokenNotYetValid = fmt.Errorf("%w: token not yet valid", ErrAuth)
	// ErrRateLimited reports a rate or concurrency limit (1302, 1303 or
	// HTTP 429): back off and retry later.
	ErrRateLimited = errors.New("klingapi: rate limited")
	// ErrAccount reports an account problem (codes 1100-1102, HTTP 429):
	// arrears or a depleted resource pack. Not retried.
	ErrAccount = errors.New("klingapi: account exception")
	// ErrNotFound reports an unknown task.
	ErrNotFound = errors.New("klingapi: task not found")
	// ErrUnavailable reports that the API could not be reached or answered
	// with a server error.
	ErrUnavailable = errors.New("klingapi: API unavailable")
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
	if e.Code != 0 {
		return strconv.Itoa(e.Code)
	}
	return "http_" + strconv.Itoa(e.HTTPStatus)
}

// Is maps codes onto the sentinel errors.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrAuth:
		return (e.Code >= 1000 && e.Code <= 1004) || e.HTTPStatus == 401
	case ErrTokenExpired:
		return e.Code == CodeTokenExpired
	case ErrTokenNotYetValid:
		return e.Code == CodeTokenNotYet
	case ErrRateLimited:
		// Kling also answers HTTP 429 for account problems (1100-1102:
		// arrears, depleted resource pack); retrying those cannot help.
		return e.Code == CodeRateLimited || e.Code == CodeConcurrencyFull || (e.HTTPStatus == 429 && (e.Code == 0 || e.Code >= 1300))
	case ErrAccount:
		return e.Code >= 1100 && e.Code < 1200
	case ErrNotFound:
		return e.Code == CodeNotFound || (e.HTTPStatus == 404 && e.Code == 0)
	case ErrUnavailable:
		return e.HTTPStatus >= 500
	}
	return false
}

// ErrorLabel returns the metric label for any error the client returns.
func ErrorLabel(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Label()
	}
	if errors.Is(err, ErrUnavailable) {
		return "unreachable"
	}
	return "other"
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
