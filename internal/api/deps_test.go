package api_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAPIDoesNotLinkIngest keeps the layering the design asks for: the gRPC
// services sit beside the webhook path, not on top of it, so api must not
// link the ingest handler, the wire-format parsers or the signature
// schemes (it gets what it needs from them injected).
func TestAPIDoesNotLinkIngest(t *testing.T) {
	// go test puts its own GOROOT/bin first on the PATH of the test.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command on PATH: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %v", deps)
	}
	for _, dep := range deps {
		for _, banned := range []string{"internal/ingest", "internal/normalize", "internal/verify"} {
			if strings.HasSuffix(dep, "/"+banned) || strings.Contains(dep, "/"+banned+"/") {
				t.Errorf("internal/api depends on %s", dep)
			}
		}
	}
}
