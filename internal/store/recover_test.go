package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/store"
)

// lockedBuffer collects log output from the store's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fillAndClose appends n events to a new store in dir and closes it.
func fillAndClose(t *testing.T, dir string, n int) {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, store.Config{DataDir: dir, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, _, err := s.Append(ctx, testEvent("wh", fmt.Sprintf("d%d", i), fmt.Sprintf("job-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// A last block cut short, as after a power loss: the store opens, logs the
// lost sequences, serves the rest and takes new events.
func TestDamagedLastBlockServesTheRest(t *testing.T) {
	dir := t.TempDir()
	const n = 20
	fillAndClose(t, dir, n)
	blocks, _ := filepath.Glob(filepath.Join(dir, "jetstream", "jetstream", "$G", "streams", store.StreamName, "msgs", "*.blk"))
	if len(blocks) == 0 {
		t.Fatal("no message block found")
	}
	last := blocks[len(blocks)-1]
	info, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(last, info.Size()-100); err != nil {
		t.Fatal(err)
	}
	// After a power loss the index written at a clean shutdown is missing
	// or older than the blocks; without it the server reads the blocks.
	if err := os.Remove(filepath.Join(filepath.Dir(last), "index.db")); err != nil {
		t.Fatal(err)
	}

	var logs lockedBuffer
	ctx := context.Background()
	s, err := store.Open(ctx, store.Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("a store with a truncated last block must open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	first, lastSeq, err := s.Bounds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first != 1 || lastSeq >= n || lastSeq == 0 {
		t.Fatalf("bounds after recovery: %d..%d, want 1..<%d", first, lastSeq, n)
	}
	for seq := first; seq <= lastSeq; seq++ {
		if _, err := s.Get(ctx, seq); err != nil {
			t.Fatalf("event %d, before the damage, is not served: %v", seq, err)
		}
	}
	want := fmt.Sprintf("lost_sequences=%d", lastSeq+1)
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("the log does not name the lost sequences (want %s):\n%s", want, logs.String())
	}
	seq, _, err := s.Append(ctx, testEvent("wh", "after", "job-after"))
	if err != nil || seq <= lastSeq {
		t.Fatalf("append after recovery: seq %d, %v", seq, err)
	}
}

// A store JetStream cannot open fails start-up with a message naming the
// directory and the next step, and leaves the files alone.
func TestUnopenableStoreFailsStart(t *testing.T) {
	dir := t.TempDir()
	fillAndClose(t, dir, 3)
	meta := filepath.Join(dir, "jetstream", "jetstream", "$G", "streams", store.StreamName, "meta.inf")
	if err := os.WriteFile(meta, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Config{DataDir: dir, Logger: discard})
	if err == nil {
		_ = s.Close()
		t.Fatal("a store whose stream cannot be loaded opened (an empty log would hide the loss)")
	}
	if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "klingfan restore") {
		t.Fatalf("error %q: want ErrDamaged naming %q and the next step", err, dir)
	}
	if raw, _ := os.ReadFile(meta); string(raw) != "not json" {
		t.Error("the damaged stream's files were changed")
	}
}
