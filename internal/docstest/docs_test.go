package docstest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/docstest"
)

// root is the repository, two levels up from this package.
var root = func() string {
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return abs
}()

// pages are the Markdown files a user follows.
func pages(t *testing.T) []*docstest.Page {
	t.Helper()
	paths := []string{"README.md", "client/README.md"}
	for _, glob := range []string{"docs/*.md", "examples/*/README.md"} {
		m, err := filepath.Glob(filepath.Join(root, glob))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			rel, _ := filepath.Rel(root, p)
			paths = append(paths, rel)
		}
	}
	var out []*docstest.Page
	for _, rel := range paths {
		text, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		p, err := docstest.Parse(rel, string(text))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func page(t *testing.T, rel string) *docstest.Page {
	t.Helper()
	for _, p := range pages(t) {
		if p.Path == rel {
			return p
		}
	}
	t.Fatalf("no page %s", rel)
	return nil
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds klingfan and klingctl once for every test of the run.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "klingfan-docs-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/klingfan", "./cmd/klingctl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is a klingfan process started as `make run` starts it, with the
// secret the README starts it with.
type server struct {
	cmd        *exec.Cmd
	out        *syncBuffer
	http, grpc string // host:port
	done       chan error
}

var servingRE = regexp.MustCompile(`msg="klingfan serving" grpc=(\S+) http=(\S+)`)

func startServer(t *testing.T, work string) *server {
	t.Helper()
	cmd := exec.Command(filepath.Join(work, "bin", "klingfan"), "serve", "--data-dir", "data",
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--public-url", "http://localhost:8080")
	cmd.Dir = work
	cmd.Env = append(baseEnv(), runEnv(t)...)
	s := &server{cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := servingRE.FindStringSubmatch(s.out.String()); m != nil {
			s.grpc, s.http = m[1], m[2]
			break
		}
		select {
		case err := <-s.done:
			t.Fatalf("klingfan exited during start (%v):\n%s", err, s.out)
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("klingfan did not start within 30s:\n%s", s.out)
		}
		time.Sleep(20 * time.Millisecond) // polling its log, not ordering events
	}
	return s
}

// runEnv returns the variables README's Try it starts `make run` with
// (KLINGAI_WEBHOOK_SECRET=dev-secret make run): every page's server is
// started the way the README says, so a README that forgot the secret
// fails at its first signed POST, as it did for a new user.
func runEnv(t *testing.T) []string {
	t.Helper()
	for _, b := range page(t, "README.md").Blocks {
		if b.Section != "Try it" || !b.Shell() {
			continue
		}
		for _, line := range strings.Split(b.Text, "\n") {
			fields := strings.Fields(line)
			for i, f := range fields {
				if f == "make" && i+1 < len(fields) && fields[i+1] == "run" {
					return fields[:i]
				}
			}
		}
	}
	t.Fatal("README's Try it does not say how to start make run")
	return nil
}

// stop ends the server as Ctrl-C would and checks its log for the noise a
// new user should never see.
func (s *server) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		_ = err // a signalled process exits with a status; the log is what is checked
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		if err := <-s.done; err != nil {
			t.Logf("klingfan killed: %v", err)
		}
		t.Errorf("klingfan did not stop within 20s of SIGTERM")
	}
	for _, noise := range []string{"superfluous response.WriteHeader", "changed JetStream setting", "level=ERROR"} {
		if strings.Contains(s.out.String(), noise) {
			t.Errorf("the server logged %q:\n%s", noise, s.out)
		}
	}
}

// metric reads one unlabelled gauge from /metrics.
func (s *server) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// baseEnv is the environment blocks run in: this one without any klingfan
// setting of the developer's, and without klingctl on PATH (the pages say
// ./bin/klingctl).
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "KLING") || k == "TOKEN" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// curlShim makes curl fail on an HTTP error, so a block whose request the
// server refuses fails even when the page shows no output for it.
func curlShim(t *testing.T) string {
	t.Helper()
	curlPath, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	dir := t.TempDir()
	script := "#!/bin/sh\nexec " + curlPath + " --fail-with-body \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "curl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// session runs one page's blocks in order, keeping variables between them.
type session struct {
	t          *testing.T
	page       *docstest.Page
	work       string
	srv        *server
	env        []string
	state      string
	rewrite    *strings.Replacer
	unrewrite  *strings.Replacer
	background []*background
	last       string // stdout of the last block run
	ran        bool   // whether a block ran since the last output check
	logs       string // what the first start logged
}

type background struct {
	block docstest.Block
	cmd   *exec.Cmd
	out   *syncBuffer
	errs  *syncBuffer
	done  chan struct{}
}

func newSession(t *testing.T, p *docstest.Page) *session {
	t.Helper()
	bin := binaries(t)
	work := t.TempDir()
	if err := os.Mkdir(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"klingfan", "klingctl"} {
		if err := os.Symlink(filepath.Join(bin, name), filepath.Join(work, "bin", name)); err != nil {
			t.Fatal(err)
		}
	}
	// Two starts, as a user who restarts make run: the first generates the
	// admin token, the second reuses it, and neither may log noise.
	first := startServer(t, work)
	first.stop(t)
	srv := startServer(t, work)
	s := &session{t: t, page: p, work: work, srv: srv, state: filepath.Join(t.TempDir(), "state")}
	s.logs = first.out.String()
	t.Cleanup(func() {
		for _, b := range s.background {
			b.stop()
		}
		srv.stop(t)
	})
	s.env = append(baseEnv(),
		"PATH="+curlShim(t)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"KLINGFAN_SERVER="+srv.grpc, "KLINGFAN_HTTP_URL=http://"+srv.http, "NO_COLOR=1")
	s.rewrite = strings.NewReplacer("localhost:8080", srv.http, "localhost:9090", srv.grpc)
	s.unrewrite = strings.NewReplacer(srv.http, "localhost:8080", srv.grpc, "localhost:9090")
	if err := os.WriteFile(s.state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *session) script(b docstest.Block, save bool) string {
	var sb strings.Builder
	sb.WriteString("set -eo pipefail\nset -a\n. " + s.state + "\n")
	sb.WriteString(s.rewrite.Replace(b.Text))
	if save {
		sb.WriteString("\nset +a\nexport -p | grep -v '^declare -[a-z]*r' > " + s.state + ".new\n")
	}
	return sb.String()
}

func (s *session) where(b docstest.Block) string {
	return fmt.Sprintf("%s:%d (%s)", s.page.Path, b.Line, b.Section)
}

// run runs a block and checks its exit status.
func (s *session) run(b docstest.Block, wantExit int) {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", s.script(b, true))
	cmd.Dir, cmd.Env = s.work, s.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", s.where(b), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s: still running after 30s (mark a block that blocks with <!-- docs-test: background --> or skip)\nstdout:\n%s\nstderr:\n%s", s.where(b), stdout.String(), stderr.String())
	}
	if code != wantExit {
		t.Fatalf("%s: exit status %d, want %d\n%s\nstdout:\n%s\nstderr:\n%s", s.where(b), code, wantExit, b.Text, stdout.String(), stderr.String())
	}
	if code == 0 {
		if err := os.Rename(s.state+".new", s.state); err != nil {
			t.Fatal(err)
		}
	}
	s.last, s.ran = s.unrewrite.Replace(stdout.String()), true
}

// start runs a block in the background and waits until the server has one
// more live subscription.
func (s *session) start(b docstest.Block) {
	t := s.t
	t.Helper()
	before := s.srv.metric(t, "klingfan_hub_subscribers")
	cmd := exec.Command("bash", "-c", s.script(b, false))
	cmd.Dir, cmd.Env = s.work, s.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	bg := &background{block: b, cmd: cmd, out: &syncBuffer{}, errs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = bg.out, bg.errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(bg.done) }()
	s.background = append(s.background, bg)
	deadline := time.Now().Add(15 * time.Second)
	for s.srv.metric(t, "klingfan_hub_subscribers") <= before {
		select {
		case <-bg.done:
			t.Fatalf("%s: the background block ended before it subscribed\nstdout:\n%s\nstderr:\n%s", s.where(b), bg.out, bg.errs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no new subscription within 15s\nstderr:\n%s", s.where(b), bg.errs)
		}
		time.Sleep(20 * time.Millisecond) // polling a gauge, not ordering events
	}
}

func (bg *background) stop() {
	_ = syscall.Kill(-bg.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-bg.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-bg.cmd.Process.Pid, syscall.SIGKILL)
		<-bg.done
	}
}

// expect compares the last block's output, or waits for the last
// background block's, with what the page shows.
func (s *session) expect(b docstest.Block, ofBackground bool) {
	t := s.t
	t.Helper()
	if !ofBackground {
		if !s.ran {
			t.Fatalf("%s: an output block with no block run before it", s.where(b))
		}
		s.ran = false
		if err := docstest.Match(b.Text, s.last); err != nil {
			t.Fatalf("%s: the output differs from the page: %v", s.where(b), err)
		}
		return
	}
	if len(s.background) == 0 {
		t.Fatalf("%s: an output (background) block with no background block before it", s.where(b))
	}
	bg := s.background[len(s.background)-1]
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := docstest.Match(b.Text, s.unrewrite.Replace(bg.out.String()))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the background block's output differs from the page after 15s: %v\nstderr:\n%s", s.where(b), err, bg.errs)
		}
		time.Sleep(20 * time.Millisecond) // polling its output, not ordering events
	}
}

var exitRE = regexp.MustCompile(`^exit (\d+)$`)

// TestWalkthroughs runs every page's shell blocks in order, as a new user
// pastes them, against a server of its own.
func TestWalkthroughs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	for _, p := range pages(t) {
		t.Run(p.Path, func(t *testing.T) {
			if p.NotRun != "" {
				t.Skip("the page says: " + p.NotRun)
			}
			if !hasRunnable(p) {
				t.Skip("no shell block to run")
			}
			s := newSession(t, p)
			for _, b := range p.Blocks {
				d := b.Directive
				switch {
				case strings.HasPrefix(d, "skip"), strings.HasPrefix(d, "synopsis"):
				case d == "background":
					s.start(b)
				case d == "output":
					s.expect(b, false)
				case d == "output (background)":
					s.expect(b, true)
				case d == "log":
					s.expectLog(b)
				case b.Shell():
					want := 0
					if m := exitRE.FindStringSubmatch(d); m != nil {
						want, _ = strconv.Atoi(m[1])
					} else if d != "" {
						t.Fatalf("%s: unknown directive %q", s.where(b), d)
					}
					s.run(b, want)
				}
			}
		})
	}
}

func hasRunnable(p *docstest.Page) bool {
	for _, b := range p.Blocks {
		if b.Shell() && !strings.HasPrefix(b.Directive, "skip") && !strings.HasPrefix(b.Directive, "synopsis") {
			return true
		}
	}
	return false
}

// expectLog checks that every line of the block is in what the server
// logged over both starts.
func (s *session) expectLog(b docstest.Block) {
	t := s.t
	t.Helper()
	logs := s.logs + s.srv.out.String()
	for _, want := range strings.Split(strings.TrimSpace(b.Text), "\n") {
		found := false
		for _, line := range strings.Split(logs, "\n") {
			if docstest.Match(want, line) == nil || strings.Contains(docstest.Normalize(line), docstest.Normalize(want)) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s: the server never logged\n  %s\nit logged:\n%s", s.where(b), want, logs)
		}
	}
}
