//go:build unix

package crashtest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Secrets the server under test is started with.
const (
	webhookSecret = "crashtest-webhook-secret-0123456789"
	adminToken    = "crashtest-admin-token-0123456789abcdef"
)

// readyTimeout bounds one start, from exec to /readyz answering 200.
const readyTimeout = 60 * time.Second

// buildServer compiles cmd/klingfan into dir and returns the binary's path.
func buildServer(t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("crashtest: go tool not on PATH: %v", err)
	}
	bin := filepath.Join(dir, "klingfan")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/klingfan/klingfan/cmd/klingfan")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("crashtest: building klingfan: %v\n%s", err, out)
	}
	return bin
}

// process is one run of the server binary.
type process struct {
	run      int
	cmd      *exec.Cmd
	httpURL  string
	grpcAddr string
	logPath  string
	started  time.Time

	done    chan struct{} // closed when Wait returned
	waitErr error         // valid after done
	killed  atomic.Bool   // set before the harness sends SIGKILL
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// cluster runs the server binary on one data directory, one process at a
// time, and restarts it on the same ports when it can.
type cluster struct {
	t       *testing.T
	bin     string
	dataDir string
	logDir  string

	mu       sync.Mutex
	runs     []*process // every run, in order
	httpPort int
	grpcPort int

	cur atomic.Pointer[process] // the newest run, nil before the first
}

func newCluster(t *testing.T, bin, dir string) *cluster {
	c := &cluster{t: t, bin: bin, dataDir: filepath.Join(dir, "data"), logDir: filepath.Join(dir, "logs")}
	for _, d := range []string{c.dataDir, c.logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// No process outlives the test, whatever happened.
		c.mu.Lock()
		runs := append([]*process(nil), c.runs...)
		c.mu.Unlock()
		for _, p := range runs {
			if !p.exited() {
				p.killed.Store(true)
				_ = p.cmd.Process.Signal(syscall.SIGKILL)
				<-p.done
			}
		}
		if t.Failed() {
			c.dumpTails(3, 40)
		}
	})
	return c
}

// current returns the newest run (possibly dead or not yet ready).
func (c *cluster) current() *process { return c.cur.Load() }

// spawn starts one process on the cluster's ports without waiting for it.
func (c *cluster) spawn() (*process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.httpPort == 0 {
		c.httpPort, c.grpcPort = freePort(c.t), freePort(c.t)
	}
	run := len(c.runs) + 1
	logPath := filepath.Join(c.logDir, fmt.Sprintf("run-%03d.log", run))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own descriptor
	httpAddr := fmt.Sprintf("127.0.0.1:%d", c.httpPort)
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", c.grpcPort)
	cmd := exec.Command(c.bin, "serve",
		"--data-dir", c.dataDir,
		"--http-addr", httpAddr,
		"--grpc-addr", grpcAddr,
		// The crash test wants as much in flight as possible at each kill;
		// rate limiting has tests of its own.
		"--ingest-rate", "0",
	)
	cmd.Env = append(cleanEnv(), "KLINGAI_WEBHOOK_SECRET="+webhookSecret, "KLINGFAN_ADMIN_TOKEN="+adminToken)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = procAttr()
	p := &process{run: run, cmd: cmd, httpURL: "http://" + httpAddr, grpcAddr: grpcAddr, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting run %d: %w", run, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	c.runs = append(c.runs, p)
	c.cur.Store(p)
	return p, nil
}

// start runs a new process and waits until it is ready. A run that cannot
// bind its ports is retried on fresh ones; any other early exit fails the
// test: a server that will not come back after SIGKILL is a bug.
func (c *cluster) start(ctx context.Context) *process {
	c.t.Helper()
	for attempt := 1; ; attempt++ {
		p, err := c.spawn()
		if err != nil {
			c.t.Fatalf("crashtest: %v", err)
		}
		err = waitReady(ctx, p)
		if err == nil {
			return p
		}
		if !p.exited() {
			c.kill(p)
		}
		if attempt < 5 && bytes.Contains(readFile(p.logPath), []byte("address already in use")) {
			c.t.Logf("run %d: ports taken, retrying on fresh ones", p.run)
			c.mu.Lock()
			c.httpPort, c.grpcPort = 0, 0
			c.mu.Unlock()
			continue
		}
		c.t.Fatalf("crashtest: run %d did not become ready: %v\n--- tail of %s ---\n%s", p.run, err, filepath.Base(p.logPath), tail(p.logPath, 40))
	}
}

// kill sends SIGKILL and waits for the process to be reaped. It reports
// a process that had already died on its own.
func (c *cluster) kill(p *process) {
	c.t.Helper()
	if p.exited() && !p.killed.Load() {
		c.t.Errorf("crashtest: run %d exited by itself before the kill: %v\n--- tail ---\n%s", p.run, p.waitErr, tail(p.logPath, 40))
		return
	}
	p.killed.Store(true)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Fatalf("crashtest: SIGKILL run %d: %v", p.run, err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("crashtest: run %d not reaped 30s after SIGKILL", p.run)
	}
}

// ensureUp reports a current run that died without being killed, which
// is a server bug, and starts a new one so the remaining checks still say
// something about the log, as a supervisor would.
func (c *cluster) ensureUp(ctx context.Context, where string) *process {
	c.t.Helper()
	p := c.current()
	if !p.exited() {
		return p
	}
	c.t.Errorf("crashtest: %s: run %d (started %s ago) exited by itself: %v\n--- tail of %s ---\n%s",
		where, p.run, time.Since(p.started).Round(time.Millisecond), p.waitErr, filepath.Base(p.logPath), tail(p.logPath, 20))
	p.killed.Store(true) // reported once
	return c.start(ctx)
}

// dumpTails logs the end of the last n runs' output.
func (c *cluster) dumpTails(n, lines int) {
	c.mu.Lock()
	runs := append([]*process(nil), c.runs...)
	c.mu.Unlock()
	for _, p := range runs[max(0, len(runs)-n):] {
		c.t.Logf("--- tail of %s (exit: %v) ---\n%s", filepath.Base(p.logPath), p.waitErr, tail(p.logPath, lines))
	}
}

// waitReady polls /readyz until 200, the process exits, or the deadline.
func waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	var last error
	for {
		select {
		case <-p.done:
			if p.waitErr == nil {
				return errors.New("exited during start with status 0")
			}
			return fmt.Errorf("exited during start: %w", p.waitErr)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.httpURL+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz answered %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", readyTimeout, last)
		case <-p.done:
		case <-time.After(20 * time.Millisecond): // polling a condition
		}
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// cleanEnv is the test's environment without anything that configures
// klingfan, so only the flags and secrets above apply.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KLINGFAN_") || strings.HasPrefix(kv, "KLINGAI_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(readFile(path)))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
