// Package examples_test runs the Python and Node.js examples against a real
// in-process klingfan, so they keep working as the API grows. They need
// their toolchains (see .ci/run): without one the test skips locally, and
// fails under CI, where a skip would hide a broken example.
package examples_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klingfan/klingfan/client"
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

// secret signs the deliveries the tests post.
const secret = "examples-webhook-secret"

// runTimeout bounds one run of an example script.
const runTimeout = 30 * time.Second

// missing skips the test for a missing toolchain, or fails it under CI.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI must install it: see .ci/run)", msg)
	}
	t.Skipf("%s; install it to run this example (see .ci/run)", msg)
}

// script runs one example program with arguments.
type script func(ctx context.Context, name string, args ...string) *exec.Cmd

func TestPythonExamples(t *testing.T) {
	py := pythonWithGRPC(t)
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		missing(t, "protoc (Debian: protobuf-compiler) is not installed")
	}
	plugin, err := exec.LookPath("grpc_python_plugin")
	if err != nil {
		missing(t, "grpc_python_plugin (Debian: protobuf-compiler-grpc) is not installed")
	}
	// The stubs are generated for this run, by the protoc that matches the
	// installed python3-protobuf runtime, and never committed.
	gen := t.TempDir()
	protos, _ := filepath.Glob("../proto/kling/gateway/v1/*.proto")
	out, err := exec.Command(protoc, append([]string{"-I", "../proto", "--python_out=" + gen, "--grpc_out=" + gen,
		"--plugin=protoc-gen-grpc=" + plugin}, protos...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	dir, _ := filepath.Abs("python")
	runExamples(t, func(ctx context.Context, name string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, py, append([]string{filepath.Join(dir, name+".py")}, args...)...)
		cmd.Env = append(os.Environ(), "PYTHONPATH="+gen+string(os.PathListSeparator)+dir, "PYTHONDONTWRITEBYTECODE=1")
		return cmd
	})
}

// pythonWithGRPC returns a Python 3 that can import grpc and protobuf:
// $KLINGFAN_PYTHON, python3 on the PATH, or Debian's /usr/bin/python3 (a
// pyenv or venv python3 first on the PATH does not see Debian's packages).
func pythonWithGRPC(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("KLINGFAN_PYTHON"), "python3", "/usr/bin/python3"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if exec.Command(c, "-c", "import grpc, google.protobuf").Run() == nil {
			return c
		}
	}
	missing(t, "no python3 that imports grpc and google.protobuf (Debian: python3-grpcio, python3-protobuf)")
	return ""
}

func TestNodeExamples(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node (Debian: nodejs) is not installed")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		missing(t, "npm is not installed")
	}
	// Install the locked dependencies into a copy, so the source tree
	// stays clean and parallel runs do not share node_modules.
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "klingfan.js", "subscriber.js", "consumer.js", "creator.js"} {
		b, err := os.ReadFile(filepath.Join("node", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	protoDir, _ := filepath.Abs("../proto")
	runExamples(t, func(ctx context.Context, name string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(dir, name+".js")}, args...)...)
		cmd.Env = append(os.Environ(), "KLINGFAN_PROTO_DIR="+protoDir)
		return cmd
	})
}

// runExamples runs the examples of one language against a fresh server,
// whose Kling API is a stand-in that calls back like Kling.
func runExamples(t *testing.T, run script) {
	kling := newKling(t)
	srv := apptest.Start(t, t.TempDir(), apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret),
		apptest.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		apptest.WithConfig(func(c *config.Config) {
			c.Reconcile.APIURL = kling.URL
			c.Reconcile.APIKey = "examples-api-key"
			c.Reconcile.Interval = 0
			c.PublicURLSet = true
		}))
	c, err := client.Dial(context.Background(), srv.GRPC, client.WithInsecure(), client.WithToken(apptest.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	conn := []string{"--server", srv.GRPC, "--token", apptest.AdminToken}

	t.Run("subscriber resumes after its last sequence", func(t *testing.T) {
		cursor := filepath.Join(t.TempDir(), "subscriber.cursor")
		args := append(slices.Clone(conn), "--cursor-file", cursor, "--from-beginning", "--job", "s1", "--job", "s2", "--job", "s3", "--job", "s4", "--job", "s5")
		for _, job := range []string{"s1", "s2", "s3"} {
			post(t, srv, job)
		}
		first := lines(t, run, "subscriber", append(args, "--max-events", "2")...)
		if saved := readCursor(t, cursor); saved != first[1].Sequence {
			t.Errorf("cursor file holds %d, want the last sequence handled %d", saved, first[1].Sequence)
		}
		post(t, srv, "s4")
		post(t, srv, "s5")
		second := lines(t, run, "subscriber", append(args, "--max-events", "3")...)

		got := append(first, second...)
		var jobs []string
		for _, e := range got {
			jobs = append(jobs, e.JobID)
		}
		if want := []string{"s1", "s2", "s3", "s4", "s5"}; !slices.Equal(jobs, want) {
			t.Fatalf("two runs handled %v, want %v: no gap, no repeat", jobs, want)
		}
		log := listSequences(t, c, []string{"s1", "s2", "s3", "s4", "s5"})
		if seqs := sequencesOf(got); !slices.Equal(seqs, log) {
			t.Errorf("handled sequences %v, the log holds %v", seqs, log)
		}
	})

	t.Run("creator creates a job and waits for Kling's callback", func(t *testing.T) {
		if _, err := c.Webhooks().CreateWebhook(context.Background(), &gatewayv1.CreateWebhookRequest{
			WebhookId: "kling", Webhook: &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN},
		}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		defer cancel()
		cmd := run(ctx, "creator", append(slices.Clone(conn), "--endpoint", "/v1/videos/text2video",
			"--body", `{"prompt": "a cat", "duration": "5"}`, "--webhook", "kling", "--request-id", "example-1")...)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				stderr = ee.Stderr
			}
			t.Fatalf("creator: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
		}
		var created, final struct {
			JobID  string `json:"job_id"`
			Status string `json:"status"`
		}
		got := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(got) != 2 || json.Unmarshal([]byte(got[0]), &created) != nil || json.Unmarshal([]byte(got[1]), &final) != nil {
			t.Fatalf("creator printed %q, want two JSON lines", out)
		}
		// Kling's callback may overtake its answer to the create, so the
		// job may be finished already when CreateJob answers.
		if created.JobID != "example-task" || (created.Status != "JOB_STATUS_SUBMITTED" && created.Status != "JOB_STATUS_SUCCEEDED") ||
			final.JobID != "example-task" || final.Status != "JOB_STATUS_SUCCEEDED" {
			t.Errorf("creator printed %s", out)
		}
		st, err := c.Jobs().GetJob(context.Background(), &gatewayv1.GetJobRequest{JobId: "example-task", WebhookId: "kling"})
		if err != nil || st.GetJobState().GetJob().GetExternalId() != "example-1" || st.GetJobState().GetJob().GetCreateEndpoint() != "/v1/videos/text2video" {
			t.Errorf("GetJob = %v, %v", st, err)
		}
	})

	t.Run("group consumer acknowledges", func(t *testing.T) {
		jobs := []string{"g1", "g2", "g3", "g4"}
		ctx := context.Background()
		if _, err := c.ConsumerGroups().CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{
			ConsumerGroupId: "examples",
			ConsumerGroup:   &gatewayv1.ConsumerGroup{JobIds: jobs, Start: &gatewayv1.ConsumerGroup_FromBeginning{FromBeginning: true}},
		}); err != nil {
			t.Fatal(err)
		}
		for _, job := range jobs {
			post(t, srv, job)
		}
		got := lines(t, run, "consumer", append(slices.Clone(conn), "--group", "examples", "--max-events", "4")...)
		if seqs, log := sequencesOf(got), listSequences(t, c, jobs); !slices.Equal(seqs, log) {
			t.Errorf("consumer handled sequences %v, the log holds %v", seqs, log)
		}
		apptest.Eventually(t, 20*time.Second, "every event acknowledged", func() bool {
			resp, err := c.ConsumerGroups().GetConsumerGroup(ctx, &gatewayv1.GetConsumerGroupRequest{Id: "examples"})
			g := resp.GetConsumerGroup()
			return err == nil && g.GetPending() == 0 && g.GetAckPending() == 0 && g.GetRedelivered() == 0
		})
	})
}

// handled is the JSON line the examples print for each event.
type handled struct {
	Sequence uint64
	JobID    string
	Type     string
}

// UnmarshalJSON accepts the sequence as a number (Python) or a decimal
// string (Node, which keeps uint64 exact that way).
func (h *handled) UnmarshalJSON(b []byte) error {
	var raw struct {
		Sequence json.Number `json:"sequence"`
		JobID    string      `json:"job_id"`
		Type     string      `json:"type"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	seq, err := strconv.ParseUint(raw.Sequence.String(), 10, 64)
	if err != nil {
		return fmt.Errorf("sequence %q: %w", raw.Sequence, err)
	}
	*h = handled{Sequence: seq, JobID: raw.JobID, Type: raw.Type}
	return nil
}

// lines runs an example to completion and parses what it printed.
func lines(t *testing.T, run script, name string, args ...string) []handled {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := run(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", name, err, stdout.String(), stderr.String())
	}
	var out []handled
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if line == "" {
			continue
		}
		var h handled
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			t.Fatalf("%s printed %q: %v", name, line, err)
		}
		if h.Type != gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED.String() {
			t.Errorf("%s printed type %q, want %s", name, h.Type, gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED)
		}
		out = append(out, h)
	}
	return out
}

func sequencesOf(hs []handled) []uint64 {
	var seqs []uint64
	for _, h := range hs {
		seqs = append(seqs, h.Sequence)
	}
	return seqs
}

// listSequences returns the log's sequences of events about jobs, in order.
func listSequences(t *testing.T, c *client.Client, jobs []string) []uint64 {
	t.Helper()
	resp, err := c.Events().ListEvents(context.Background(), &gatewayv1.ListEventsRequest{JobIds: jobs})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, ev := range resp.GetEvents() {
		seqs = append(seqs, ev.GetSequence())
	}
	return seqs
}

func readCursor(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("cursor file %q: %v", b, err)
	}
	return seq
}

// post delivers a signed video.completed event for job, as Kling does.
func post(t *testing.T, srv *apptest.Server, job string) {
	t.Helper()
	body := fmt.Appendf(nil, `{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":%q,"video_url":"https://example.com/%s.mp4"}}`, job, job)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	h := http.Header{"X-Kling-Signature": {"sha256=" + hex.EncodeToString(mac.Sum(nil))}}
	if code, resp := srv.Post(t, "/webhooks/klingai", h, body); code != http.StatusOK {
		t.Fatalf("post %s: status %d: %s", job, code, resp)
	}
}

// newKling stands in for Kling's API: it answers a create of
// /v1/videos/text2video with the task "example-task", submitted, then posts
// the task's succeed callback to the callback_url the create carried.
func newKling(t *testing.T) *httptest.Server {
	// callbacks is waited for before the test ends, so no callback outlives
	// the server it posts to.
	var callbacks sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			CallbackURL    string `json:"callback_url"`
			ExternalTaskID string `json:"external_task_id"`
		}
		if r.Method != http.MethodPost || r.URL.Path != "/v1/videos/text2video" || json.NewDecoder(r.Body).Decode(&body) != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"code":1201,"message":"unexpected request","request_id":"x"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"code":0,"message":"SUCCEED","request_id":"x","data":{"task_id":"example-task","task_status":"submitted","task_info":{"external_task_id":%q},"created_at":1,"updated_at":1}}`, body.ExternalTaskID)
		callbacks.Add(1)
		go func() {
			defer callbacks.Done()
			done := fmt.Sprintf(`{"task_id":"example-task","task_status":"succeed","task_info":{"external_task_id":%q},"created_at":1,"updated_at":2,"task_result":{"videos":[{"id":"v1","url":"https://example.com/v1.mp4","duration":"5"}]}}`, body.ExternalTaskID)
			if resp, err := http.Post(body.CallbackURL, "application/json", strings.NewReader(done)); err == nil {
				resp.Body.Close()
			}
		}()
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(callbacks.Wait) // runs first: cleanups run last-registered first
	return srv
}
