package reconcile

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/store"
)

func openKV(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestLeaseOneHolderAndTakeover: one replica holds the lease; when it dies
// without releasing, the lease expires and another takes it over; a clean
// stop hands it over at once.
func TestLeaseOneHolderAndTakeover(t *testing.T) {
	ctx := context.Background()
	st := openKV(t)
	kv, err := OpenBucket(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	a := New(Config{KV: kv, Holder: "a", LeaseTTL: time.Second})
	b := New(Config{KV: kv, Holder: "b", LeaseTTL: time.Second})
	if !a.holdLease(ctx) {
		t.Fatal("a could not take a free lease")
	}
	if !a.holdLease(ctx) {
		t.Fatal("a could not renew its own lease")
	}
	if b.holdLease(ctx) {
		t.Fatal("b took a lease a holds")
	}
	// a dies without releasing: b takes over once the lease expires.
	deadline := time.Now().Add(10 * time.Second)
	for !b.holdLease(ctx) {
		if time.Now().After(deadline) {
			t.Fatal("b never took over the expired lease")
		}
		time.Sleep(50 * time.Millisecond) // polling the lease's expiry
	}
	if a.holdLease(ctx) {
		t.Fatal("a still believes it holds the lease b took over")
	}
	b.releaseLease(ctx)
	if !a.holdLease(ctx) {
		t.Fatal("a could not take the lease b released")
	}
}

// TestPositionSurvivesRestart: a new Reconciler (a restart, or another
// replica) reads the position the last one saved.
func TestPositionSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	st := openKV(t)
	kv, err := OpenBucket(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
	New(Config{KV: kv, Holder: "a"}).savePosition(ctx, at)
	got, ok := New(Config{KV: kv, Holder: "b"}).position(ctx)
	if !ok || !got.Equal(at) {
		t.Fatalf("position = %v, %v; want %v", got, ok, at)
	}
}

// countingAPI is a Kling API with no tasks that counts the listings.
type countingAPI struct{ calls atomic.Int64 }

func (c *countingAPI) ListPage(context.Context, klingfamily.Family, int, int) ([]klingapi.Task, error) {
	c.calls.Add(1)
	return nil, nil
}

func (c *countingAPI) ListTasks(context.Context, klingfamily.List, klingapi.TaskQuery) (klingapi.TaskPage, error) {
	c.calls.Add(1)
	return klingapi.TaskPage{}, nil
}

func (c *countingAPI) GetTask(context.Context, klingfamily.Family, string, bool) (klingapi.Task, error) {
	c.calls.Add(1)
	return klingapi.Task{}, klingapi.ErrNotFound
}

func (c *countingAPI) GetTasks(context.Context, klingfamily.Query, []string, bool) ([]klingapi.Task, error) {
	c.calls.Add(1)
	return nil, nil
}

// TestRunOneReplicaAtATime: two replicas run periodic passes on one
// bucket; only the lease holder passes, and the other takes over when the
// holder stops.
func TestRunOneReplicaAtATime(t *testing.T) {
	st := openKV(t)
	kv, err := OpenBucket(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	replica := func(name string, api *countingAPI) *Reconciler {
		return New(Config{KV: kv, Holder: name, API: api, Families: klingfamily.All()[:1], Interval: 20 * time.Millisecond,
			LeaseTTL: 300 * time.Millisecond, Lookback: time.Hour})
	}
	apiA, apiB := &countingAPI{}, &countingAPI{}
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan struct{})
	go func() { defer close(doneA); _ = replica("a", apiA).Run(ctxA) }()
	waitFor(t, "a's passes", func() bool { return apiA.calls.Load() >= 3 })

	ctxB, stopB := context.WithCancel(context.Background())
	doneB := make(chan struct{})
	go func() { defer close(doneB); _ = replica("b", apiB).Run(ctxB) }()
	t.Cleanup(func() { stopB(); <-doneB })
	before := apiA.calls.Load()
	waitFor(t, "more passes by a", func() bool { return apiA.calls.Load() >= before+5 })
	if n := apiB.calls.Load(); n != 0 {
		t.Fatalf("b passed %d times while a held the lease", n)
	}
	stopA()
	<-doneA
	waitFor(t, "b taking over", func() bool { return apiB.calls.Load() >= 3 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not ordering events
	}
}
