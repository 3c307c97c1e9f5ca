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

// Of returns the kind of err and the message a client may see, or Internal
// and "" when err has no kind. A FieldError's or RangeError's message is
// its whole text.
func Of(err error) (Kind, string) {
	var (
		fe *FieldError
		re *RangeError
		ke *Error
	)
	switch {
	case errors.As(err, &fe):
		return InvalidArgument, fe.Error()
	case errors.As(err, &re):
		return OutOfRange, re.Error()
	case errors.As(err, &ke):
		return ke.Kind, ke.Message
	}
	return Internal, ""
}
