package app_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/datadir"
)

// runOnce runs a second server on dataDir with its own port-0 listeners
// (or the given HTTP address) and returns what app.Run returned; it fails
// the test when that server starts serving instead.
func runOnce(t *testing.T, dataDir, httpAddr string) error {
	t.Helper()
	cfg, err := config.Parse([]string{"--data-dir", dataDir, "--grpc-addr", "127.0.0.1:0", "--http-addr", httpAddr},
		func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminToken = apptest.AdminToken
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = app.Run(ctx, cfg, app.Options{Stdout: io.Discard, Logger: newTextLogger(io.Discard)})
	if ctx.Err() != nil {
		t.Fatalf("the second server ran until the deadline (%v); it must stop at once", err)
	}
	return err
}

// A second klingfan on a data directory in use stops at once with a line
// naming the directory and the holder, and touches nothing: the first keeps
// serving, and every delivery it acknowledged, before, during and after the
// attempt, is in its log.
func TestSecondServerOnOneDataDirectoryStops(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first := apptest.Start(t, dir, apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", storageSecret))

	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			job := fmt.Sprintf("first-%d", i)
			if code, _ := postDelivery(t, first, job); code == 200 {
				mu.Lock()
				acked = append(acked, job)
				mu.Unlock()
			}
		}
	}()
	waitFor(t, "deliveries to be acknowledged", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 20 })

	storeDir := filepath.Join(dir, "jetstream")
	before, err := os.ReadDir(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	err = runOnce(t, dir, "127.0.0.1:0")
	want := fmt.Sprintf("data directory %s is in use by another klingfan (pid %d)", dir, os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("second server on the same directory: got %v, want %q", err, want)
	}
	if !errors.Is(err, datadir.ErrInUse) {
		t.Errorf("error %v does not wrap datadir.ErrInUse", err)
	}
	after, err := os.ReadDir(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	if names(before) != names(after) {
		t.Errorf("the store directory changed: %s, then %s", names(before), names(after))
	}

	mu.Lock()
	n := len(acked)
	mu.Unlock()
	waitFor(t, "more deliveries after the attempt", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= n+20 })
	close(stop)
	wg.Wait()
	got := listJobs(t, first)
	for _, job := range acked {
		if !slices.Contains(got, job) {
			t.Errorf("delivery %s was acknowledged by the first server but is not listed", job)
		}
	}
	t.Logf("%d deliveries acknowledged and listed", len(acked))
}

// A busy port stops a start before the store is opened: the new data
// directory holds no store afterwards.
func TestBusyPortStopsBeforeTheStore(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := filepath.Join(t.TempDir(), "data")
	err = runOnce(t, dir, busy.Addr().String())
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("start on a busy port: got %v, want an error naming %s", err, busy.Addr())
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the store was created before the port was bound: %v", err)
	}
}

// holdLockEnv makes the test binary a child that holds a data directory's
// lock until it is killed.
const holdLockEnv = "KLINGFAN_TEST_HOLD_DATA_DIR"

// TestHoldDataDirLock is the child of TestLockDiesWithItsProcess; it does
// nothing in a normal run.
func TestHoldDataDirLock(t *testing.T) {
	dir := os.Getenv(holdLockEnv)
	if dir == "" {
		t.Skip("the child process of TestLockDiesWithItsProcess")
	}
	if _, err := datadir.Acquire(dir); err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("locked")
	select {} // until killed
}

// The lock belongs to the process: while a child holds it a start fails
// naming the child's pid, and once the child is killed (no clean-up) a
// start succeeds.
func TestLockDiesWithItsProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldDataDirLock$")
	cmd.Env = append(os.Environ(), holdLockEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("child: %q, %v", line, err)
	}

	err = runOnce(t, dir, "127.0.0.1:0")
	want := fmt.Sprintf("data directory %s is in use by another klingfan (pid %d)", dir, cmd.Process.Pid)
	if err == nil || err.Error() != want {
		t.Fatalf("start while the child holds the lock: got %v, want %q", err, want)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	srv := apptest.Start(t, dir)
	srv.Stop(t)
}

// A data directory that cannot be written stops the start with one line
// naming it.
func TestUnwritableDataDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// Root writes through any mode bits: a read-only mount is what
		// stops it.
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Skipf("running as root but cannot mount a read-only tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	} else {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	}
	err := runOnce(t, dir, "127.0.0.1:0")
	if err == nil {
		t.Fatal("a start on an unwritable data directory succeeded")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "data directory "+dir+" is not writable: ") || strings.Contains(msg, "\n") {
		t.Errorf("got %q, want one line starting %q", msg, "data directory "+dir+" is not writable: ")
	}
}

func names(entries []os.DirEntry) string {
	var s []string
	for _, e := range entries {
		s = append(s, e.Name())
	}
	return strings.Join(s, " ")
}
