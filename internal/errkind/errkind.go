// Package errkind owns the kinds of failure that callers act on: not found,
// already exists, unavailable (retry later), out of range and the rest. A
// package declares its sentinel errors with a kind and wraps them with %w;
// the gRPC layer maps a kind to a status code in one place
// (api.UnaryErrors, api.StreamErrors), so no handler chooses a code and no
// package below the API imports gRPC.
//
// An error of a kind carries a message written for clients. Whatever the
// error wraps around it (ids, paths, the store's own error text) is for the
// logs and never reaches a client.
package errkind

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Kind classifies an error by what the caller can do about it. A Kind is
// itself an error so that errors.Is(err, errkind.Unavailable) asks whether
// err is of that kind, whichever package's sentinel it wraps.
type Kind uint8

// The kinds, named after the gRPC codes they map to. Internal is the zero
// value: an error with no kind is a bug or an unexpected failure, and
// clients see only that something went wrong.
const (
	Internal Kind = iota
	InvalidArgument
	NotFound
	AlreadyExists
	FailedPrecondition
	OutOfRange
	ResourceExhausted
	Unavailable
	PermissionDenied
	Unauthenticated
)

var kindNames = [...]string{
	Internal:           "internal",
	InvalidArgument:    "invalid argument",
	NotFound:           "not found",
	AlreadyExists:      "already exists",
	FailedPrecondition: "failed precondition",
	OutOfRange:         "out of range",
	ResourceExhausted:  "resource exhausted",
	Unavailable:        "unavailable",
	PermissionDenied:   "permission denied",
	Unauthenticated:    "unauthenticated",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Error makes a Kind usable as an errors.Is target.
func (k Kind) Error() string { return "errkind: " + k.String() }

// Error is an error of a kind. Package-level sentinels are *Error values
// made with New and compared with errors.Is, so each keeps its identity
// while sharing its kind.
type Error struct {
	// Kind says what the caller can do about it.
	Kind Kind
	// Pkg names the package that declared the error; it prefixes the text
	// the logs see but is not shown to clients.
	Pkg string
	// Message says what went wrong in the client's terms.
	Message string
}

// New returns an error of kind k declared by package pkg, with a message
// for clients.
func New(k Kind, pkg, message string) *Error {
	return &Error{Kind: k, Pkg: pkg, Message: message}
}

func (e *Error) Error() string {
	if e.Pkg == "" {
		return e.Message
	}
	return e.Pkg + ": " + e.Message
}

// Is reports whether target is e's kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

// Public returns e's kind and message.
func (e *Error) Public() Public { return Public{Kind: e.Kind, Message: e.Message} }

// FieldError is an InvalidArgument that names the request field at fault,
// so that clients get a field violation they can show beside the field.
type FieldError struct {
	// Field is the request field's path, as the API spells it ("webhook.id").
	Field string
	// Reason says what is wrong with it.
	Reason string
}

// Invalid returns an InvalidArgument error for field.
func Invalid(field, reason string) *FieldError {
	return &FieldError{Field: field, Reason: reason}
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Is reports whether target is InvalidArgument.
func (e *FieldError) Is(target error) bool { return target == InvalidArgument }

// Public returns the error with its field.
func (e *FieldError) Public() Public {
	return Public{Kind: InvalidArgument, Message: e.Error(), Field: e.Field, FieldReason: e.Reason}
}

// RangeError is an OutOfRange that names the sequences a client may start
// from instead, so that it can resume without guessing.
type RangeError struct {
	// Reason says which position was refused and why.
	Reason string
	// First and Last are the earliest and latest sequences available.
	First, Last uint64
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("%s (earliest available sequence %d, latest %d)", e.Reason, e.First, e.Last)
}

// Is reports whether target is OutOfRange.
func (e *RangeError) Is(target error) bool { return target == OutOfRange }

// Public returns the error with the sequences available, under a reason
// a program can match.
func (e *RangeError) Public() Public {
	return Public{Kind: OutOfRange, Message: e.Error(), Info: &Info{
		Reason: "SEQUENCE_OUT_OF_RANGE",
		Domain: "klingfan",
		Metadata: map[string]string{
			"earliest_sequence": strconv.FormatUint(e.First, 10),
			"latest_sequence":   strconv.FormatUint(e.Last, 10),
		},
	}}
}

// Public is what a client may be told of an error: its kind, a message in
// the client's terms, and the details a program acts on. The gRPC layer
// sends each detail that is set as the google.rpc message of that name
// (BadRequest, QuotaFailure, ErrorInfo, RetryInfo), so that a package
// below the API can describe them without importing gRPC.
//
// An error is of a kind when it has a method Public() Public, as *Error,
// *FieldError and *RangeError do. A package whose errors carry fields
// their callers read (Kling's code, a budget's size) gives its own type
// that method rather than wrapping an *Error, and also matches its kind
// with errors.Is.
type Public struct {
	Kind Kind
	// Message says what went wrong in the client's terms.
	Message string
	// Field names the request field at fault, and FieldReason what is
	// wrong with it (BadRequest).
	Field, FieldReason string
	// Quota names the quota that refused the request (QuotaFailure).
	Quota *Quota
	// Info names the cause for programs (ErrorInfo).
	Info *Info
	// RetryAfter, when positive, is how long to wait before sending the
	// same request again (RetryInfo).
	RetryAfter time.Duration
}

// Quota is a quota that refused a request.
type Quota struct {
	// Subject is whose quota it is ("token:ci").
	Subject string
	// Description says which quota it is ("max-jobs-in-flight").
	Description string
}

// Info is a cause a program can act on: a stable reason, the domain that
// defines it, and facts about this occurrence.
type Info struct {
	Reason   string
	Domain   string
	Metadata map[string]string
}

// Of returns what a client may be told of err: the Public of the first
// error in its chain that is of a kind, so a wrapper of a kind speaks for
// the errors it wraps. An error with no kind is Internal with no message.
func Of(err error) Public {
	var k interface{ Public() Public }
	if errors.As(err, &k) {
		return k.Public()
	}
	return Public{}
}
