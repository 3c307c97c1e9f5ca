package docstest_test

import (
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoRefusesBusyPorts: `make demo` with one of its ports taken stops
// before starting anything, naming the address and the variable to change,
// instead of talking to whatever answers there.
func TestDemoRefusesBusyPorts(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	httpAddr, simAddr := free(), free()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "demo.sh"))
	cmd.Env = append(baseEnv(), "BIN="+t.TempDir(), "DEMO_HTTP="+httpAddr, "DEMO_GRPC="+busy.Addr().String(), "DEMO_SIM="+simAddr)
	out, err := cmd.CombinedOutput()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("demo.sh with a busy port: %v, want exit status 1\n%s", err, out)
	}
	want := "demo: " + busy.Addr().String() + " is in use; stop what listens there or choose another address with DEMO_GRPC=host:port\n"
	if string(out) != want {
		t.Errorf("demo.sh said\n%s\nwant\n%s", out, want)
	}
	if strings.Contains(string(out), httpAddr) || strings.Contains(string(out), simAddr) {
		t.Errorf("a free port was reported busy:\n%s", out)
	}
}
