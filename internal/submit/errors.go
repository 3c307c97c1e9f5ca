package submit

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNoCredentials reports that klingfan has no Kling credentials to
	// sign a create with.
	ErrNoCredentials = errors.New("submit: no Kling credentials: set KLING_ACCESS_KEY and KLING_SECRET_KEY, or KLING_API_KEY")
	// ErrNoPublicURL reports that --public-url is not set, so klingfan
	// cannot tell Kling where to call back.
	ErrNoPublicURL = errors.New("submit: --public-url is not set: Kling needs the address it reaches this server at to call back; set --public-url (KLINGFAN_PUBLIC_URL)")
	// ErrRequestReused reports a request id already used for a different
	// request (another endpoint, body or webhook).
	ErrRequestReused = errors.New("submit: request_id already used for a different request")
	// ErrUnavailable reports that the idempotency bucket could not be read
	// or written; a retry with the same request id is safe.
	ErrUnavailable = errors.New("submit: create records unavailable")
)

// InvalidError is a request field that cannot be sent to Kling.
type InvalidError struct {
	Field, Reason string
}

func (e *InvalidError) Error() string { return "submit: " + e.Field + ": " + e.Reason }

// PreconditionError is a well-formed request the server's state does not
// allow (an inactive registration, one Kling's callbacks cannot reach).
type PreconditionError struct {
	Reason string
}

func (e *PreconditionError) Error() string { return "submit: " + e.Reason }

// BudgetError is a create refused by the caller's token budget before
// Kling was called.
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
	return fmt.Sprintf("submit: token %q is over its --%s budget (%g of %g)", e.Token, e.Limit, e.Used, e.Max)
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
