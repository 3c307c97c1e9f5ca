package submit

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/klingapi"
)

var (
	// ErrNoCredentials reports that klingfan has no Kling credentials to
	// sign a create with.
	ErrNoCredentials = errkind.New(errkind.FailedPrecondition, "submit", "no Kling credentials: set KLING_ACCESS_KEY and KLING_SECRET_KEY, or KLING_API_KEY")
	// ErrNoPublicURL reports that --public-url is not set, so klingfan
	// cannot tell Kling where to call back.
	ErrNoPublicURL = errkind.New(errkind.FailedPrecondition, "submit", "--public-url is not set: Kling needs the address it reaches this server at to call back; set --public-url (KLINGFAN_PUBLIC_URL)")
	// ErrRequestReused reports a request id already used for a different
	// request (another endpoint, body or webhook).
	ErrRequestReused = errkind.New(errkind.AlreadyExists, "submit", "request_id already used for a different request (another endpoint, body or webhook_id); use a new request_id")
	// ErrUnavailable reports that the create records could not be read or
	// written; a retry with the same request id is safe.
	ErrUnavailable = errkind.New(errkind.Unavailable, "submit", "create records unavailable; retrying with the same request_id is safe")

	// errKlingUnreachable wraps a Kling call that got no answer.
	errKlingUnreachable = errkind.New(errkind.Unavailable, "submit", "Kling could not be reached, and may or may not have created the task; retrying with the same request_id is safe")
	// errKlingShape wraps an answer in a shape Kling's pages do not
	// document: the task may exist, and the next attempt asks for it.
	errKlingShape = errkind.New(errkind.Unavailable, "submit", "Kling answered in a shape its pages do not document, and may have created the task; retrying with the same request_id looks it up first")
)

// precondition is a well-formed request the server's state does not allow
// (a registration Kling's callbacks cannot reach).
func precondition(reason string) error {
	return errkind.New(errkind.FailedPrecondition, "submit", reason)
}

// BudgetError is a create refused by the caller's token budget before
// Kling was called. It is of kind ResourceExhausted.
type BudgetError struct {
	Token string
	// Limit names the budget: "max-jobs-in-flight" or "max-units-per-day".
	Limit string
	// Used and Max are the budget's use and size.
	Used, Max float64
	// RetryAfter is a hint for when the budget may have room again.
	RetryAfter time.Duration
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("token %q is over its --%s budget (%g of %g); Kling was not called", e.Token, e.Limit, e.Used, e.Max)
}

// Is reports whether target is ResourceExhausted.
func (e *BudgetError) Is(target error) bool { return target == errkind.ResourceExhausted }

// Public names the token's budget and when it may have room again.
func (e *BudgetError) Public() errkind.Public {
	return errkind.Public{
		Kind:       errkind.ResourceExhausted,
		Message:    e.Error(),
		Quota:      &errkind.Quota{Subject: "token:" + e.Token, Description: e.Limit},
		RetryAfter: e.RetryAfter,
	}
}

// CredentialError is Kling refusing the credentials a create was signed
// with (codes 1000-1004). Credential names them without their secret.
type CredentialError struct {
	Credential string
	Err        error
}

func (e *CredentialError) Error() string {
	return fmt.Sprintf("submit: Kling refused the credentials %s: %v", e.Credential, e.Err)
}

func (e *CredentialError) Unwrap() error { return e.Err }

// Public names the credentials, with Kling's code and message when Kling
// answered.
func (e *CredentialError) Public() errkind.Public {
	p := errkind.Public{Kind: errkind.FailedPrecondition, Message: "Kling refused the credentials " + e.Credential}
	var ae *klingapi.APIError
	if errors.As(e.Err, &ae) {
		p.Message += " (code " + strconv.Itoa(ae.Code) + ": " + ae.Message + "); check them, or the clock for an expired token"
		p.Info = ae.Public().Info
	}
	return p
}

// klingFailed is Kling's server error on a create: Kling's kind, code and
// retry hint, with the advice that the same request id may be sent again,
// since the next attempt asks Kling for the task before creating it.
type klingFailed struct{ *klingapi.APIError }

func (e klingFailed) Unwrap() error { return e.APIError }

// Public adds the advice to Kling's own.
func (e klingFailed) Public() errkind.Public {
	p := e.APIError.Public()
	p.Message += "; retrying with the same request_id is safe"
	return p
}
