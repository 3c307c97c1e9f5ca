package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// When the disk itself runs nearly out (other programs fill it, or the
// budget exceeds it), appends are refused before JetStream meets ENOSPC,
// which would switch it off until a restart; /readyz says why; and appends
// resume by themselves when space comes back.
func TestDiskNearlyFullRefusesBeforeJetStream(t *testing.T) {
	var free atomic.Int64
	free.Store(8 << 30)
	orig := diskSpace
	diskSpace = func(string) (int64, int64, error) { return free.Load(), 10 << 30, nil }
	t.Cleanup(func() { diskSpace = orig })

	ctx := context.Background()
	s, err := Open(ctx, Config{DataDir: t.TempDir(), MaxStoreBytes: 64 << 20, SpaceCheckInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	n := 0
	appendOne := func() error {
		n++
		id := fmt.Sprintf("e%d", n)
		_, _, err := s.Append(ctx, &gatewayv1.Event{Id: id, WebhookId: "wh", DeliveryId: id})
		return err
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(10 * time.Millisecond) // polling a condition, not ordering events
		}
	}
	if err := appendOne(); err != nil {
		t.Fatal(err)
	}

	free.Store(100 << 20) // under half the 512 MiB reserve of a 10 GiB disk
	waitUntil("appends are refused", func() bool { return errors.Is(appendOne(), ErrStoreFull) })
	err = s.Ready(ctx)
	var full *FullError
	if !errors.As(err, &full) || !strings.Contains(full.Reason, "100.0 MiB free") || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ready while the disk is nearly full: %v, want a *FullError naming the free space", err)
	}

	free.Store(8 << 30)
	waitUntil("appends resume", func() bool { return appendOne() == nil })
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready after space came back: %v", err)
	}
}

// TestDerivedCapChangeIsQuiet restarts the embedded store with another
// budget and no --retention-bytes: the stream's size cap follows the
// budget without a warning, since a derived budget moves at every start,
// while a configured cap that changes is still warned about.
func TestDerivedCapChangeIsQuiet(t *testing.T) {
	dir := t.TempDir()
	open := func(cfg Config) string {
		t.Helper()
		var logs strings.Builder
		cfg.DataDir = dir
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		s, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return logs.String()
	}
	open(Config{MaxStoreBytes: 64 << 20})
	if logs := open(Config{MaxStoreBytes: 80 << 20}); strings.Contains(logs, "changed JetStream setting") {
		t.Errorf("a derived cap that moved was logged:\n%s", logs)
	}
	if logs := open(Config{MaxStoreBytes: 80 << 20, RetentionBytes: 16 << 20}); !strings.Contains(logs, "level=WARN msg=\"changed JetStream setting") {
		t.Errorf("a configured cap that changed was not warned about:\n%s", logs)
	}
}
