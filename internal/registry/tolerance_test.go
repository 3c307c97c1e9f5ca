package registry_test

import (
	"testing"

	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/verify"
)

// TestDefaultToleranceIsVerifys keeps the registry's default tolerance, a
// constant of its own so that it does not import verify, equal to the
// Standard Webhooks default that verify documents.
func TestDefaultToleranceIsVerifys(t *testing.T) {
	if registry.DefaultTolerance != verify.DefaultTolerance {
		t.Fatalf("registry.DefaultTolerance = %s, verify.DefaultTolerance = %s", registry.DefaultTolerance, verify.DefaultTolerance)
	}
}
