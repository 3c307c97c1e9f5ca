package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/store"
)

// waitIndexed waits until the id index holds n entries.
func waitIndexed(t testing.TB, s *store.Store, n uint64) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		idx, err := s.JetStream().Stream(ctx, store.IDIndexStreamName)
		if err != nil {
			t.Fatalf("no id index stream: %v", err)
		}
		info, err := idx.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("id index holds %d entries after 30s, want %d", info.State.Msgs, n)
		}
		time.Sleep(10 * time.Millisecond) // polling the server's count
	}
}

// TestGetByIDThroughIndex: every appended event gets an id index entry;
// GetByID finds events through it, still finds them when the index lost
// its entries (the fallback lookup), and answers ErrNotFound for an event
// gone from the log and for an unknown id.
func TestGetByIDThroughIndex(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	seqs := map[string]uint64{}
	for _, d := range []string{"d1", "d2", "d3"} {
		ev := testEvent("wh", d, "job-"+d)
		seqs[ev.GetId()] = mustAppend(t, s, ev)
	}
	waitIndexed(t, s, 3)

	check := func(name string) {
		t.Helper()
		for id, seq := range seqs {
			ev, err := s.GetByID(ctx, id)
			if err != nil || ev.GetSequence() != seq || ev.GetId() != id {
				t.Fatalf("%s: GetByID(%s) = %v, %v; want sequence %d", name, id, ev, err, seq)
			}
		}
	}
	check("through the index")

	idx, err := s.JetStream().Stream(ctx, store.IDIndexStreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	check("without index entries")

	if _, err := s.GetByID(ctx, "wh_nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}
	// An indexed event that left the log is not found.
	gone := testEvent("wh", "d4", "job-d4")
	seq := mustAppend(t, s, gone)
	waitIndexed(t, s, 1)
	events, err := s.JetStream().Stream(ctx, store.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.DeleteMsg(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetByID(ctx, gone.GetId()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted event: %v, want ErrNotFound", err)
	}
}
