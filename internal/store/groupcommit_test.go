package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// The group commit finds the file store's blocks where it expects them and
// follows new ones: after every Append the block it synced last is the
// newest one, and it holds that event. A nats-server whose file store
// moved or renamed its blocks fails here rather than syncing nothing.
func TestGroupCommitFollowsBlocks(t *testing.T) {
	dir := t.TempDir()
	// A 100 kB log gets JetStream's smallest blocks (32 kB), so the
	// appends below cross several.
	s, err := Open(context.Background(), Config{DataDir: dir, SyncAlways: true, MaxStoreBytes: 64 << 20, RetentionBytes: 100_000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.commit == nil || s.kvCommit == nil {
		t.Fatal("SyncAlways on the embedded store started no group commit")
	}
	first := uint64(0)
	for i := range 40 {
		marker := fmt.Sprintf("marker-%03d-%s", i, strings.Repeat("x", 3000))
		ev := &gatewayv1.Event{Id: fmt.Sprintf("e%d", i), WebhookId: "w", DeliveryId: fmt.Sprint(i), RawBody: []byte(marker), Job: &gatewayv1.Job{JobId: fmt.Sprint(i)}}
		if _, _, err := s.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		// Append waited for a round: its results are visible here.
		newest := newestBlock(t, s.commit.dir)
		if s.commit.index != newest {
			t.Fatalf("after append %d the group commit synced block %d, the newest is %d", i, s.commit.index, newest)
		}
		raw, err := os.ReadFile(filepath.Join(s.commit.dir, blockName(newest)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw, []byte(marker[:len("marker-000")])) {
			t.Fatalf("block %d does not hold event %d", newest, i)
		}
		if first == 0 {
			first = newest
		}
	}
	if s.commit.index < first+2 {
		t.Errorf("the appends crossed blocks %d to %d; the test wants at least two new blocks", first, s.commit.index)
	}
}

// Concurrent appends share fsyncs: every one returns, and fewer fsync
// rounds run than there were appends.
func TestGroupCommitSharesFsyncs(t *testing.T) {
	s, err := Open(context.Background(), Config{DataDir: t.TempDir(), SyncAlways: true, MaxStoreBytes: 64 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				id := fmt.Sprintf("e%d-%d", w, i)
				ev := &gatewayv1.Event{Id: id, WebhookId: "w", DeliveryId: id, Job: &gatewayv1.Job{JobId: id}}
				if _, _, err := s.Append(context.Background(), ev); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if rounds := s.commit.rounds.Load(); rounds >= 16*20 {
		t.Errorf("%d fsync rounds for %d appends: none was shared", rounds, 16*20)
	} else {
		t.Logf("%d fsync rounds for %d appends", rounds, 16*20)
	}
}

func newestBlock(t *testing.T, dir string) uint64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var newest uint64
	for _, e := range entries {
		var n uint64
		if _, err := fmt.Sscanf(e.Name(), "%d.blk", &n); err == nil {
			newest = max(newest, n)
		}
	}
	return newest
}

// A block the file store rewrites under its own name (compaction renames a
// new file over it) is followed: the next fsync reaches the new file.
func TestGroupCommitFollowsARewrittenBlock(t *testing.T) {
	dir := t.TempDir()
	msgs := filepath.Join(dir, "jetstream", "$G", "streams", "S", "msgs")
	if err := os.MkdirAll(msgs, 0o700); err != nil {
		t.Fatal(err)
	}
	block := filepath.Join(msgs, "1.blk")
	if err := os.WriteFile(block, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGroupCommit(dir, "S")
	defer g.stop()
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(block+".tmp", []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(block+".tmp", block); err != nil {
		t.Fatal(err)
	}
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	held, err := g.f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.Stat(block)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(held, onDisk) {
		t.Error("the group commit still syncs the replaced block")
	}
}

// A wait that starts after stop returns at once with ErrUnavailable, even
// when its request fits in the queue that run no longer reads, and even
// with a context that never ends.
func TestGroupCommitWaitAfterStop(t *testing.T) {
	dir := t.TempDir()
	g := startGroupCommit(dir, "s")
	g.stop()
	for i := range 100 { // the send and quit race in wait's select
		done := make(chan error, 1)
		go func() { done <- g.wait(context.Background()) }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("wait %d after stop: %v, want ErrUnavailable", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("wait %d after stop never returned", i)
		}
	}
}

// Stored answers found only after an fsync round that began after the
// lookup, because ingest acknowledges a rate-limited repeat on its
// strength while the original's append may still await its fsync; a miss
// costs no round.
func TestStoredWaitsForSync(t *testing.T) {
	s, err := Open(context.Background(), Config{DataDir: t.TempDir(), SyncAlways: true, MaxStoreBytes: 64 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := &gatewayv1.Event{Id: "e1", WebhookId: "w", DeliveryId: "d1", Job: &gatewayv1.Job{JobId: "j"}}
	if _, _, err := s.Append(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		ev         *gatewayv1.Event
		wantFound  bool
		wantRounds uint64
	}{
		{"stored", ev, true, 1},
		{"not stored", &gatewayv1.Event{Id: "e2", WebhookId: "w", DeliveryId: "d2", Job: &gatewayv1.Job{JobId: "j"}}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.commit.rounds.Load()
			_, found, err := s.Stored(context.Background(), tt.ev)
			if err != nil || found != tt.wantFound {
				t.Fatalf("Stored: found %v, err %v; want found %v", found, err, tt.wantFound)
			}
			if got := s.commit.rounds.Load() - before; got != tt.wantRounds {
				t.Errorf("Stored ran %d fsync rounds, want %d", got, tt.wantRounds)
			}
		})
	}
}
