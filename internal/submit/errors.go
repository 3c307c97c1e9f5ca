package submit

import (
	"fmt"
	"time"

	"github.com/klingfan/klingfan/internal/errkind"
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
