package errkind_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/klingfan/klingfan/internal/errkind"
)

func TestOf(t *testing.T) {
	errGone := errkind.New(errkind.NotFound, "things", "thing not found")
	cases := []struct {
		name string
		err  error
		kind errkind.Kind
		msg  string
	}{
		{name: "sentinel", err: errGone, kind: errkind.NotFound, msg: "thing not found"},
		{name: "wrapped sentinel", err: fmt.Errorf("get %q: %w", "x", errGone), kind: errkind.NotFound, msg: "thing not found"},
		{name: "field", err: fmt.Errorf("check: %w", errkind.Invalid("a.b", "required")), kind: errkind.InvalidArgument, msg: "a.b: required"},
		{name: "range", err: &errkind.RangeError{Reason: "too old", First: 2, Last: 5}, kind: errkind.OutOfRange, msg: "too old (earliest available sequence 2, latest 5)"},
		{name: "no kind", err: errors.New("boom"), kind: errkind.Internal, msg: ""},
		{name: "own type", err: fmt.Errorf("call: %w", &quotaError{who: "ci"}), kind: errkind.ResourceExhausted, msg: "ci is over its quota"},
		{name: "the outer kind speaks", err: fmt.Errorf("%w: %w", errGone, errkind.Invalid("a", "bad")), kind: errkind.NotFound, msg: "thing not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := errkind.Of(tc.err)
			kind, msg := p.Kind, p.Message
			if kind != tc.kind || msg != tc.msg {
				t.Fatalf("Of = %v, %q; want %v, %q", kind, msg, tc.kind, tc.msg)
			}
			if tc.kind != errkind.Internal && !errors.Is(tc.err, tc.kind) {
				t.Errorf("errors.Is(err, %v) = false", tc.kind)
			}
			for _, other := range []errkind.Kind{errkind.Unavailable, errkind.AlreadyExists} {
				if errors.Is(tc.err, other) {
					t.Errorf("errors.Is(err, %v) = true", other)
				}
			}
		})
	}
	if got := errGone.Error(); got != "things: thing not found" {
		t.Errorf("Error() = %q, want the package prefix for the logs", got)
	}
}

// quotaError is an error type of its own with a kind, as a package whose
// callers read its fields declares one.
type quotaError struct{ who string }

func (e *quotaError) Error() string        { return e.who + " is over its quota" }
func (e *quotaError) Is(target error) bool { return target == errkind.ResourceExhausted }
func (e *quotaError) Public() errkind.Public {
	return errkind.Public{Kind: errkind.ResourceExhausted, Message: e.Error(), Quota: &errkind.Quota{Subject: e.who}}
}

// The details a client acts on travel with the kind.
func TestOfDetails(t *testing.T) {
	field := errkind.Of(fmt.Errorf("check: %w", errkind.Invalid("a.b", "required")))
	if field.Field != "a.b" || field.FieldReason != "required" {
		t.Errorf("field error: %+v", field)
	}
	rng := errkind.Of(&errkind.RangeError{Reason: "too old", First: 2, Last: 5})
	if rng.Info == nil || rng.Info.Reason != "SEQUENCE_OUT_OF_RANGE" || rng.Info.Metadata["earliest_sequence"] != "2" || rng.Info.Metadata["latest_sequence"] != "5" {
		t.Errorf("range error info: %+v", rng.Info)
	}
	if q := errkind.Of(&quotaError{who: "ci"}).Quota; q == nil || q.Subject != "ci" {
		t.Errorf("own type's quota: %+v", q)
	}
}
