package registry_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/verify"
)

// fragileKV hands out watchers the test can end, the way nats.go ends a
// watch whose consumer it could not recreate after a reconnect.
type fragileKV struct {
	jetstream.KeyValue
	watches atomic.Int32

	mu       sync.Mutex
	watchers []*fragileWatcher
}

func (kv *fragileKV) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	inner, err := kv.KeyValue.WatchAll(ctx, opts...)
	if err != nil {
		return nil, err
	}
	w := &fragileWatcher{inner: inner, out: make(chan jetstream.KeyValueEntry), broken: make(chan struct{})}
	go w.forward()
	kv.mu.Lock()
	kv.watchers = append(kv.watchers, w)
	kv.mu.Unlock()
	kv.watches.Add(1)
	return w, nil
}

// breakCurrent ends the newest watch.
func (kv *fragileKV) breakCurrent() {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.watchers[len(kv.watchers)-1].breakOnce.Do(func() { close(kv.watchers[len(kv.watchers)-1].broken) })
}

type fragileWatcher struct {
	inner     jetstream.KeyWatcher
	out       chan jetstream.KeyValueEntry
	broken    chan struct{}
	breakOnce sync.Once
}

func (w *fragileWatcher) forward() {
	defer close(w.out)
	for {
		select {
		case <-w.broken:
			return
		case e, ok := <-w.inner.Updates():
			if !ok {
				return
			}
			select {
			case w.out <- e:
			case <-w.broken:
				return
			}
		}
	}
}

func (w *fragileWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.out }
func (w *fragileWatcher) Stop() error {
	w.breakOnce.Do(func() { close(w.broken) })
	return w.inner.Stop()
}

// A watch that ends on its own is started again, so changes made through
// another replica (here: straight to the bucket) still reach the cache.
func TestWatchRestartsWhenItEnds(t *testing.T) {
	st := openStore(t)
	kv := &fragileKV{KeyValue: st.KV()}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r, err := registry.Open(ctx, registry.Config{KV: kv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Schemes: verify.SchemeTable{}})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// Another replica's registry, writing to the same bucket.
	other, err := registry.Open(ctx, registry.Config{KV: st.KV(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Schemes: verify.SchemeTable{}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1781080794, 0)
	create := func(id string) {
		t.Helper()
		if _, err := other.Create(ctx, &registry.Webhook{
			ID: id, Scheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE, Active: true,
			Secrets: []registry.Secret{{Value: "s-" + id}}, CreateTime: now, UpdateTime: now,
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond) // polling a condition, not ordering events
		}
	}

	create("before")
	waitFor("the first change", func() bool { _, ok := r.Get("before"); return ok })

	kv.breakCurrent()
	waitFor("the watch to be restarted", func() bool { return kv.watches.Load() >= 2 })
	create("after")
	waitFor("a change made after the watch ended", func() bool { _, ok := r.Get("after"); return ok })

	// A deletion made around a restart is seen too (the replay carries the
	// delete marker).
	kv.mu.Lock()
	n := len(kv.watchers)
	kv.mu.Unlock()
	kv.breakCurrent()
	if err := other.Delete(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	waitFor("the deletion", func() bool { _, ok := r.Get("before"); return !ok })
	if got := int(kv.watches.Load()); got <= n {
		t.Errorf("watches = %d, want a restart after the second break", got)
	}
}
