package docstest_test

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/apptest"
)

// klingctlRun runs the built klingctl against srv and returns its exit
// status; interrupt, when set, is sent SIGINT once the command has printed
// on stderr or after it ran for a moment.
type klingctlRun struct {
	t   *testing.T
	srv *apptest.Server
}

func (k klingctlRun) code(stdin string, interrupt bool, args ...string) int {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binaries(k.t), "klingctl"), args...)
	cmd.Env = append(baseEnv(), "KLINGFAN_SERVER="+k.srv.GRPC, "KLINGFAN_TOKEN="+apptest.AdminToken,
		"KLINGFAN_HTTP_URL="+k.srv.HTTPURL)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	if interrupt {
		// A subscription that is live prints Ready; a wait has its
		// subscription open once the server counts it.
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(stderr.String(), "Ready") && time.Now().Before(deadline) && k.subscribers() == 0 {
			time.Sleep(20 * time.Millisecond) // polling, not ordering events
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
	}
	err := cmd.Wait()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return ee.ExitCode()
	} else if err != nil {
		k.t.Fatal(err)
	}
	return 0
}

func (k klingctlRun) subscribers() float64 {
	s := &server{http: strings.TrimPrefix(k.srv.HTTPURL, "http://")}
	return s.metric(k.t, "klingfan_hub_subscribers")
}

// TestKlingctlExitTables runs what each row of docs/klingctl.md's exit
// status tables describes and compares the status.
func TestKlingctlExitTables(t *testing.T) {
	if testing.Short() {
		t.Skip("builds klingctl")
	}
	srv := startTableServer(t)
	k := klingctlRun{t: t, srv: srv}
	p := page(t, "docs/klingctl.md")
	want := func(t *testing.T, row []string, got ...int) {
		t.Helper()
		n, err := strconv.Atoi(row[0])
		if err != nil {
			t.Fatalf("status cell %q", row[0])
		}
		for i, g := range got {
			if g != n {
				t.Errorf("case %d exited %d; the table says %d (%s)", i+1, g, n, row[1])
			}
		}
	}
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	post := func(job, event string) {
		body := []byte(`{"event":"` + event + `","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"` + job + `"}}`)
		if st, out := srv.Post(t, "/webhooks/klingai", signKling(secret, body), body); st != 200 {
			t.Fatalf("post: %d %s", st, out)
		}
	}
	post("done-1", "video.completed")
	post("broken-1", "video.failed")

	checkRows(t, p.TableAfter("Exit status and errors", "status", "meaning"), "docs/klingctl.md exit status", map[string]func(t *testing.T, row []string){
		"0": func(t *testing.T, row []string) {
			want(t, row, k.code("", false, "webhooks", "list"), k.code("", true, "listen"))
		},
		"1": func(t *testing.T, row []string) {
			example := `{"event":"video.completed","data":{"job_id":"x"}}`
			want(t, row,
				k.code("", false, "--server", closed, "webhooks", "list"),
				k.code("", false, "--token", "not-a-token-0123456789abcdef", "webhooks", "list"),
				k.code("", false, "webhooks", "get", "nobody"),
				k.code("", false, "webhooks", "create", "--id", "Not_Valid"),
				k.code(example, false, "post", "-", "--secret", "wrong-secret"))
		},
		"2": func(t *testing.T, row []string) {
			want(t, row, k.code("", false, "listen", "--nope"),
				k.code("", false, "listen", "--since", "1h", "--from-beginning"),
				k.code("", false, "listen", "--type", "video.exploded"))
		},
		"130": func(t *testing.T, row []string) {
			want(t, row, k.code("", true, "wait", "never-seen", "--timeout", "1m"))
		},
	})
	checkRows(t, p.TableAfter("jobs and wait", "status", "`wait` means"), "docs/klingctl.md wait", map[string]func(t *testing.T, row []string){
		"0": func(t *testing.T, row []string) { want(t, row, k.code("", false, "wait", "done-1")) },
		"1": func(t *testing.T, row []string) { want(t, row, k.code("", false, "wait", "broken-1")) },
		"2": func(t *testing.T, row []string) {
			want(t, row, k.code("", false, "wait", "never-seen", "--timeout", "200ms"), k.code("", false, "wait"))
		},
	})
}
