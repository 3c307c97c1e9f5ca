package cli_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/cli"
)

// waitProjected polls `klingctl jobs get` until the job shows status.
func waitProjected(t *testing.T, srv *apptest.Server, job, status string) {
	t.Helper()
	apptest.Eventually(t, waitFor, job+" "+status, func() bool {
		r := klingctl(t, with(conn(srv), "jobs", "get", job)...)
		return r.code == 0 && strings.Contains(r.stdout, status)
	})
}

// subscribers reads the gateway's live subscription count from /metrics.
func subscribers(t *testing.T, srv *apptest.Server) string {
	t.Helper()
	resp, err := http.Get(srv.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "klingfan_hub_subscribers ") {
			return strings.TrimPrefix(line, "klingfan_hub_subscribers ")
		}
	}
	return ""
}

func TestWait(t *testing.T) {
	srv := startServer(t, "")
	c := conn(srv)

	t.Run("started before the completion, exits 0 when it arrives", func(t *testing.T) {
		post(t, srv, "processing", "job-wait-ok")
		waitProjected(t, srv, "job-wait-ok", "processing")
		var stdout, stderr apptest.SyncBuffer
		done := make(chan int, 1)
		go func() {
			done <- cli.Run(context.Background(), with(c, "wait", "job-wait-ok", "--timeout", "20s"), cli.Env{Stdout: &stdout, Stderr: &stderr})
		}()
		// The wait is subscribed (after the state's last sequence) before
		// the completion is posted.
		apptest.Eventually(t, waitFor, "wait's subscription", func() bool { return subscribers(t, srv) == "1" })
		select {
		case code := <-done:
			t.Fatalf("wait exited %d before the completion\n%s%s", code, stdout.String(), stderr.String())
		default:
		}
		post(t, srv, "completed", "job-wait-ok")
		select {
		case code := <-done:
			if code != 0 || !strings.Contains(stdout.String(), "succeeded") {
				t.Errorf("wait exited %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
			}
		case <-time.After(waitFor):
			t.Fatal("wait did not return after the completion")
		}
	})

	t.Run("a job not seen yet is followed from the beginning", func(t *testing.T) {
		var stdout, stderr apptest.SyncBuffer
		done := make(chan int, 1)
		go func() {
			done <- cli.Run(context.Background(), with(c, "wait", "job-wait-new", "--json", "--timeout", "20s"), cli.Env{Stdout: &stdout, Stderr: &stderr})
		}()
		apptest.Eventually(t, waitFor, "wait's subscription", func() bool { return subscribers(t, srv) == "1" })
		post(t, srv, "completed", "job-wait-new")
		if code := <-done; code != 0 || !strings.Contains(stdout.String(), `"JOB_STATUS_SUCCEEDED"`) {
			t.Errorf("wait exited %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
		}
	})

	t.Run("failed job exits 1", func(t *testing.T) {
		post(t, srv, "failed", "job-wait-failed")
		r := klingctl(t, with(c, "wait", "job-wait-failed", "--timeout", "20s")...)
		if r.code != cli.ExitJobFailed || !strings.Contains(r.stdout, "failed") {
			t.Errorf("wait exited %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("cancelled job exits 1", func(t *testing.T) {
		post(t, srv, "cancelled", "job-wait-cancelled")
		if r := klingctl(t, with(c, "wait", "job-wait-cancelled", "--timeout", "20s")...); r.code != cli.ExitJobFailed {
			t.Errorf("wait exited %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("timeout on a running job exits 2", func(t *testing.T) {
		post(t, srv, "processing", "job-wait-running")
		waitProjected(t, srv, "job-wait-running", "processing")
		start := time.Now()
		r := klingctl(t, with(c, "wait", "job-wait-running", "--timeout", "1s")...)
		if r.code != cli.ExitJobTimeout || !strings.Contains(r.stderr, "did not finish within 1s (still processing)") {
			t.Errorf("wait exited %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		if d := time.Since(start); d < time.Second || d > 10*time.Second {
			t.Errorf("wait --timeout 1s took %s", d)
		}
	})

	t.Run("help states the exit codes", func(t *testing.T) {
		r := klingctl(t, "wait", "--help").must(t)
		for _, want := range []string{"0  the job succeeded", "1  the job failed or was cancelled", "2  --timeout ran out"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("wait --help lacks %q:\n%s", want, r.stdout)
			}
		}
	})
}

func TestJobsGetAndList(t *testing.T) {
	srv := startServer(t, "")
	c := conn(srv)
	post(t, srv, "completed", "job-list-ok")
	post(t, srv, "failed", "job-list-failed")
	waitProjected(t, srv, "job-list-ok", "succeeded")
	waitProjected(t, srv, "job-list-failed", "failed")

	r := klingctl(t, with(c, "jobs", "list", "--status", "failed", "--since", "1h")...).must(t)
	if lines := r.lines(); len(lines) != 2 || !strings.HasPrefix(lines[1], "job-list-failed") {
		t.Errorf("jobs list --status failed:\n%s", r.stdout)
	}
	r = klingctl(t, with(c, "jobs", "list", "--json")...).must(t)
	if lines := r.lines(); len(lines) != 2 || !strings.Contains(lines[0], `"jobId":"job-list-failed"`) {
		t.Errorf("jobs list --json, newest first:\n%s", r.stdout)
	}
	r = klingctl(t, with(c, "jobs", "list", "--status", "succeeded", "--since", "2030-01-01T00:00:00Z")...).must(t)
	if r.stdout != "" || !strings.Contains(r.stderr, "No jobs match.") {
		t.Errorf("jobs list in the future: %q %q", r.stdout, r.stderr)
	}
	r = klingctl(t, with(c, "jobs", "get", "job-list-ok")...).must(t)
	for _, want := range []string{"Status:", "succeeded", "Events:", "Video 1:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("jobs get lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown job", []string{"jobs", "get", "nope"}, cli.ExitError, "job not found"},
		{"bad status", []string{"jobs", "list", "--status", "done"}, cli.ExitUsage, "unknown job status"},
		{"bad kind", []string{"jobs", "list", "--kind", "movie"}, cli.ExitUsage, "unknown job kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := klingctl(t, with(c, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tc.code, tc.want)
			}
		})
	}
}
