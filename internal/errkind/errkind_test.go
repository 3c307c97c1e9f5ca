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
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kind, msg := errkind.Of(tc.err)
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
