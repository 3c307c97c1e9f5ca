package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/store"
)

// discard keeps test output readable; failures are reported through errors.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Config{DataDir: dir, Logger: discard})
	if err != nil {
		t.Fatalf("Open(%q): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testEvent(webhook, delivery, job string) *gatewayv1.Event {
	return &gatewayv1.Event{
		Id:           webhook + "_" + delivery,
		Type:         gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED,
		RawType:      "video.completed",
		WebhookId:    webhook,
		DeliveryId:   delivery,
		OccurredAt:   timestamppb.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)),
		ReceivedAt:   timestamppb.Now(),
		SourceFormat: gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT,
		Job: &gatewayv1.Job{
			JobId:     job,
			Status:    gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED,
			RawStatus: "succeed",
			Videos:    []*gatewayv1.Video{{Id: "v1", Url: "https://example.com/v1.mp4"}},
		},
		RawBody: []byte(`{"event":"video.completed"}`),
	}
}

func mustAppend(t testing.TB, s *store.Store, ev *gatewayv1.Event) uint64 {
	t.Helper()
	seq, dup, err := s.Append(context.Background(), ev)
	if err != nil {
		t.Fatalf("Append(%s): %v", ev.GetId(), err)
	}
	if dup {
		t.Fatalf("Append(%s): unexpected duplicate (seq %d)", ev.GetId(), seq)
	}
	return seq
}

func seqs(evs []*gatewayv1.Event) []uint64 {
	out := make([]uint64, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.GetSequence())
	}
	return out
}

func TestAppendGetRoundTrip(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()

	ev := testEvent("wh1", "d1", "task.with.dots")
	ev.Sequence = 99 // must not leak into the stored bytes or be modified
	seq, dup, err := s.Append(ctx, ev)
	if err != nil || dup || seq != 1 {
		t.Fatalf("Append = (%d, %v, %v), want (1, false, nil)", seq, dup, err)
	}
	if ev.GetSequence() != 99 {
		t.Errorf("Append modified the caller's event: Sequence = %d", ev.GetSequence())
	}

	got, err := s.Get(ctx, seq)
	if err != nil {
		t.Fatalf("Get(%d): %v", seq, err)
	}
	want := proto.CloneOf(ev)
	want.Sequence = seq
	if !proto.Equal(got, want) {
		t.Errorf("Get(%d) = %v, want %v", seq, got, want)
	}
}

func TestGetNotFound(t *testing.T) {
	s := openStore(t, t.TempDir())
	mustAppend(t, s, testEvent("wh1", "d1", "j"))
	for _, seq := range []uint64{0, 2, 1000} {
		if _, err := s.Get(context.Background(), seq); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%d) error = %v, want ErrNotFound", seq, err)
		}
	}
}

func TestAppendDuplicates(t *testing.T) {
	tests := []struct {
		name       string
		second     *gatewayv1.Event
		wantDup    bool
		wantSeq    uint64
		wantLength uint64
	}{
		{"same webhook and delivery", testEvent("wh1", "d1", "other-job"), true, 1, 1},
		{"other webhook same delivery", testEvent("wh2", "d1", "j"), false, 2, 2},
		{"same webhook other delivery", testEvent("wh1", "d2", "j"), false, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			ctx := context.Background()
			mustAppend(t, s, testEvent("wh1", "d1", "j"))
			seq, dup, err := s.Append(ctx, tt.second)
			if err != nil {
				t.Fatalf("second Append: %v", err)
			}
			if dup != tt.wantDup || seq != tt.wantSeq {
				t.Errorf("second Append = (%d, %v), want (%d, %v)", seq, dup, tt.wantSeq, tt.wantDup)
			}
			first, last, err := s.Bounds(ctx)
			if err != nil {
				t.Fatalf("Bounds: %v", err)
			}
			if n := last - first + 1; n != tt.wantLength {
				t.Errorf("stream holds %d messages, want %d", n, tt.wantLength)
			}
		})
	}
}

func TestAppendInvalid(t *testing.T) {
	s := openStore(t, t.TempDir())
	mod := func(f func(*gatewayv1.Event)) *gatewayv1.Event {
		ev := testEvent("wh1", "d1", "j")
		f(ev)
		return ev
	}
	tests := map[string]*gatewayv1.Event{
		"nil":               nil,
		"empty webhook":     mod(func(ev *gatewayv1.Event) { ev.WebhookId = "" }),
		"dotted webhook":    mod(func(ev *gatewayv1.Event) { ev.WebhookId = "a.b" }),
		"wildcard id":       mod(func(ev *gatewayv1.Event) { ev.Id = "*" }),
		"id with space":     mod(func(ev *gatewayv1.Event) { ev.Id = "a b" }),
		"empty id":          mod(func(ev *gatewayv1.Event) { ev.Id = "" }),
		"empty delivery id": mod(func(ev *gatewayv1.Event) { ev.DeliveryId = "" }),
	}
	for name, ev := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := s.Append(context.Background(), ev); !errors.Is(err, store.ErrInvalidEvent) {
				t.Errorf("Append error = %v, want ErrInvalidEvent", err)
			}
		})
	}
}

func TestReopenKeepsDataAndDedup(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()

	s1, err := store.Open(ctx, store.Config{DataDir: dir, Logger: discard, SyncAlways: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	var originals []*gatewayv1.Event
	for i := range 3 {
		ev := testEvent("wh1", fmt.Sprintf("d%d", i), "j")
		ev.Sequence = mustAppend(t, s1, ev)
		originals = append(originals, ev)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2 := openStore(t, dir)
	for _, want := range originals {
		got, err := s2.Get(ctx, want.GetSequence())
		if err != nil {
			t.Fatalf("Get(%d) after reopen: %v", want.GetSequence(), err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("Get(%d) after reopen = %v, want %v", want.GetSequence(), got, want)
		}
	}
	seq, dup, err := s2.Append(ctx, testEvent("wh1", "d1", "j"))
	if err != nil || !dup || seq != 2 {
		t.Errorf("re-Append after reopen = (%d, %v, %v), want (2, true, nil)", seq, dup, err)
	}
	if seq := mustAppend(t, s2, testEvent("wh1", "d3", "j")); seq != 4 {
		t.Errorf("new Append after reopen: seq %d, want 4", seq)
	}
}

func TestGetByID(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	mustAppend(t, s, testEvent("wh1", "d1", "j1"))
	mustAppend(t, s, testEvent("wh2", "d2", "j2"))
	// The same event id again with another delivery id, so the duplicate
	// window's Nats-Msg-Id cannot see it, as after a redelivery outside
	// the window: the event's own subject still refuses it.
	again := testEvent("wh1", "d1", "j1")
	again.DeliveryId = "d1-late"
	if seq, dup, err := s.Append(ctx, again); err != nil || !dup || seq != 1 {
		t.Fatalf("Append of an id already logged = (%d, %v, %v), want (1, true, nil)", seq, dup, err)
	}
	newest := uint64(1)
	mustAppend(t, s, testEvent("wh1", "d3", "j1"))

	tests := []struct {
		id      string
		wantSeq uint64
		wantErr error
	}{
		{"wh1_d1", newest, nil},
		{"wh2_d2", 2, nil},
		{"missing", 0, store.ErrNotFound},
		{"bad.id", 0, store.ErrNotFound},
		{"*", 0, store.ErrNotFound},
		{"", 0, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, err := s.GetByID(ctx, tt.id)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("GetByID(%q) error = %v, want %v", tt.id, err, tt.wantErr)
			}
			if err == nil && (got.GetSequence() != tt.wantSeq || got.GetId() != tt.id) {
				t.Errorf("GetByID(%q) = seq %d id %q, want seq %d", tt.id, got.GetSequence(), got.GetId(), tt.wantSeq)
			}
		})
	}
}

func TestBounds(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	first, last, err := s.Bounds(ctx)
	if err != nil || first != last+1 {
		t.Fatalf("Bounds on empty = (%d, %d, %v), want first = last+1", first, last, err)
	}
	for i := range 3 {
		mustAppend(t, s, testEvent("wh1", fmt.Sprint(i), "j"))
	}
	first, last, err = s.Bounds(ctx)
	if err != nil || first != 1 || last != 3 {
		t.Fatalf("Bounds = (%d, %d, %v), want (1, 3, nil)", first, last, err)
	}
}

func TestSeqAt(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()

	if seq, err := s.SeqAt(ctx, time.Now()); err != nil || seq != 1 {
		t.Fatalf("SeqAt on empty = (%d, %v), want (1, nil)", seq, err)
	}
	before := time.Now()
	mustAppend(t, s, testEvent("wh1", "d1", "j"))
	between := time.Now() // after the first message was stored, before the second
	mustAppend(t, s, testEvent("wh1", "d2", "j"))
	mustAppend(t, s, testEvent("wh1", "d3", "j"))
	after := time.Now()

	tests := []struct {
		name string
		t    time.Time
		want uint64
	}{
		{"zero time", time.Time{}, 1},
		{"before all", before.Add(-time.Hour), 1},
		{"just before first", before, 1},
		{"between first and second", between, 2},
		{"after all", after, 4},
		{"far future", after.Add(24 * time.Hour), 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.SeqAt(ctx, tt.t)
			if err != nil || got != tt.want {
				t.Errorf("SeqAt(%s) = (%d, %v), want %d", tt.t.Format(time.RFC3339Nano), got, err, tt.want)
			}
		})
	}
}

// fixture appends ten events over two webhooks and three jobs (one empty):
//
//	seq:     1   2   3   4   5   6   7   8   9   10
//	webhook: w1  w2  w1  w2  w1  w2  w1  w2  w1  w2
//	job:     a.1 b   ""  a.1 b   ""  a.1 b   ""  a.1
func fixture(t testing.TB) *store.Store {
	t.Helper()
	s := openStore(t, t.TempDir())
	jobs := []string{"a.1", "b", ""}
	for i := range 10 {
		wh := []string{"w1", "w2"}[i%2]
		mustAppend(t, s, testEvent(wh, fmt.Sprintf("d%d", i+1), jobs[i%3]))
	}
	return s
}

func TestRead(t *testing.T) {
	s := fixture(t)
	ctx := context.Background()
	many := make([]string, 300) // product > 256: not pushed down
	for i := range many {
		many[i] = fmt.Sprintf("w%d", i)
	}
	tests := []struct {
		name     string
		from     uint64
		limit    int
		webhooks []string
		jobs     []string
		want     []uint64
		wantNext uint64
	}{
		{"first page", 1, 3, nil, nil, []uint64{1, 2, 3}, 4},
		{"from zero", 0, 2, nil, nil, []uint64{1, 2}, 3},
		{"middle page", 4, 3, nil, nil, []uint64{4, 5, 6}, 7},
		{"to the end", 8, 10, nil, nil, []uint64{8, 9, 10}, 11},
		{"exactly the end", 8, 3, nil, nil, []uint64{8, 9, 10}, 11},
		{"past the end", 11, 5, nil, nil, nil, 11},
		{"far past the end", 50, 5, nil, nil, nil, 50},
		{"zero limit", 1, 0, nil, nil, nil, 1},
		{"webhook", 1, 100, []string{"w1"}, nil, []uint64{1, 3, 5, 7, 9}, 11},
		{"webhook limited", 1, 2, []string{"w2"}, nil, []uint64{2, 4}, 5},
		{"job with dot", 1, 100, nil, []string{"a.1"}, []uint64{1, 4, 7, 10}, 11},
		{"empty job", 1, 100, nil, []string{""}, []uint64{3, 6, 9}, 11},
		{"webhook and job", 1, 100, []string{"w1"}, []string{"a.1", "b"}, []uint64{1, 5, 7}, 11},
		{"duplicate filter values", 2, 100, []string{"w1", "w1"}, []string{"b", "b"}, []uint64{5}, 11},
		{"no match", 1, 100, []string{"nobody"}, nil, nil, 11},
		{"filter from middle", 6, 100, []string{"w1"}, nil, []uint64{7, 9}, 11},
		{"invalid webhook token not pushed down", 9, 100, []string{"w.1"}, nil, []uint64{9, 10}, 11},
		{"large product not pushed down", 8, 100, many, nil, []uint64{8, 9, 10}, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, next, err := s.Read(ctx, tt.from, tt.limit, tt.webhooks, tt.jobs)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if got := seqs(evs); !slices.Equal(got, tt.want) || next != tt.wantNext {
				t.Errorf("Read(%d, %d) = %v next %d, want %v next %d", tt.from, tt.limit, got, next, tt.want, tt.wantNext)
			}
			for _, ev := range evs {
				if ev.GetId() != ev.GetWebhookId()+"_"+ev.GetDeliveryId() {
					t.Errorf("event %d decoded wrongly: %v", ev.GetSequence(), ev)
				}
			}
		})
	}
}

func TestReadEmpty(t *testing.T) {
	s := openStore(t, t.TempDir())
	evs, next, err := s.Read(context.Background(), 1, 10, nil, nil)
	if err != nil || len(evs) != 0 || next != 1 {
		t.Fatalf("Read on empty = (%v, %d, %v), want (nil, 1, nil)", seqs(evs), next, err)
	}
	evs, next, err = s.ReadBackward(context.Background(), 10, 10, nil, nil)
	if err != nil || len(evs) != 0 || next != 0 {
		t.Fatalf("ReadBackward on empty = (%v, %d, %v), want (nil, 0, nil)", seqs(evs), next, err)
	}
}

func TestReadPagesThroughEverything(t *testing.T) {
	s := fixture(t)
	var got []uint64
	for from := uint64(1); ; {
		evs, next, err := s.Read(context.Background(), from, 4, nil, nil)
		if err != nil {
			t.Fatalf("Read(%d): %v", from, err)
		}
		if len(evs) == 0 {
			break
		}
		got = append(got, seqs(evs)...)
		from = next
	}
	if want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(got, want) {
		t.Errorf("paged Read = %v, want %v", got, want)
	}
}

func TestReadBackward(t *testing.T) {
	s := fixture(t)
	ctx := context.Background()
	tests := []struct {
		name     string
		from     uint64
		limit    int
		webhooks []string
		jobs     []string
		want     []uint64
		wantNext uint64
	}{
		{"newest page", 10, 3, nil, nil, []uint64{10, 9, 8}, 7},
		{"from beyond last", 1000, 2, nil, nil, []uint64{10, 9}, 8},
		{"to the beginning", 3, 10, nil, nil, []uint64{3, 2, 1}, 0},
		{"exactly to the beginning", 3, 3, nil, nil, []uint64{3, 2, 1}, 0},
		{"from zero", 0, 10, nil, nil, nil, 0},
		{"webhook", 10, 100, []string{"w1"}, nil, []uint64{9, 7, 5, 3, 1}, 0},
		{"webhook limited", 10, 2, []string{"w1"}, nil, []uint64{9, 7}, 6},
		{"job", 9, 100, nil, []string{"a.1"}, []uint64{7, 4, 1}, 0},
		{"webhook and job", 10, 100, []string{"w2"}, []string{""}, []uint64{6}, 0},
		{"no match", 10, 100, []string{"nobody"}, nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, next, err := s.ReadBackward(ctx, tt.from, tt.limit, tt.webhooks, tt.jobs)
			if err != nil {
				t.Fatalf("ReadBackward: %v", err)
			}
			if got := seqs(evs); !slices.Equal(got, tt.want) || next != tt.wantNext {
				t.Errorf("ReadBackward(%d, %d) = %v next %d, want %v next %d", tt.from, tt.limit, got, next, tt.want, tt.wantNext)
			}
		})
	}
}

func TestReadBackwardSparseFilterOverManyEvents(t *testing.T) {
	s := openStore(t, t.TempDir())
	const n = 1500
	var want []uint64
	for i := range n {
		job := "common"
		if i%500 == 7 {
			job = "rare"
		}
		seq := mustAppend(t, s, testEvent("wh", fmt.Sprint(i), job))
		if job == "rare" {
			want = append([]uint64{seq}, want...)
		}
	}
	var got []uint64
	for from := uint64(n); from != 0; {
		evs, next, err := s.ReadBackward(context.Background(), from, 2, nil, []string{"rare"})
		if err != nil {
			t.Fatalf("ReadBackward(%d): %v", from, err)
		}
		got = append(got, seqs(evs)...)
		from = next
	}
	if !slices.Equal(got, want) {
		t.Errorf("ReadBackward pages = %v, want %v", got, want)
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		name  string
		after uint64 // with two events already in the log
		want  []uint64
	}{
		{"from the beginning", 0, []uint64{1, 2, 3, 4}},
		{"after a past sequence", 1, []uint64{2, 3, 4}},
		{"only new events", 2, []uint64{3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			mustAppend(t, s, testEvent("wh", "d1", "j"))
			mustAppend(t, s, testEvent("wh", "d2", "j"))

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make(chan uint64, 16)
			done := make(chan error, 1)
			go func() {
				done <- s.Tail(ctx, tt.after, func(ev *gatewayv1.Event) { got <- ev.GetSequence() })
			}()
			mustAppend(t, s, testEvent("wh", "d3", "j"))
			mustAppend(t, s, testEvent("wh", "d4", "j"))

			var seen []uint64
			timeout := time.After(10 * time.Second)
			for len(seen) < len(tt.want) {
				select {
				case seq := <-got:
					seen = append(seen, seq)
				case err := <-done:
					t.Fatalf("Tail returned early: %v (saw %v)", err, seen)
				case <-timeout:
					t.Fatalf("Tail saw %v, want %v", seen, tt.want)
				}
			}
			if !slices.Equal(seen, tt.want) {
				t.Errorf("Tail saw %v, want %v", seen, tt.want)
			}
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Tail returned %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Tail did not return after cancel")
			}
			select {
			case seq := <-got:
				t.Errorf("Tail delivered unexpected sequence %d", seq)
			default:
			}
		})
	}
}

func TestTailEndsWhenStoreCloses(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(context.Background(), store.Config{DataDir: dir, Logger: discard})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	seen := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Tail(context.Background(), 0, func(*gatewayv1.Event) { close(seen) })
	}()
	mustAppend(t, s, testEvent("wh", "d1", "j"))
	<-seen // Tail is live
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Tail after Close returned %v, want ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Tail did not return after Close")
	}
}

func TestOpenUnusableDataDir(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "regular-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		dir    func(t *testing.T) string
		asRoot bool // whether the case still fails when running as root
	}{
		{"path under a regular file", func(*testing.T) string { return filepath.Join(file, "data") }, true},
		{"regular file", func(*testing.T) string { return file }, true},
		{"read-only directory", func(t *testing.T) string {
			dir := filepath.Join(base, "read-only")
			if err := os.Mkdir(dir, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
			return dir
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.asRoot && os.Geteuid() == 0 {
				t.Skip("root ignores directory permissions")
			}
			dir := tt.dir(t)
			s, err := store.Open(context.Background(), store.Config{DataDir: dir, Logger: discard})
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", dir)
			}
			if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "not usable") {
				t.Errorf("Open(%q) error %q does not name the directory as unusable", dir, err)
			}
		})
	}
}

func TestOpenInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]store.Config{
		"no data dir":               {},
		"negative replicas":         {DataDir: dir, Replicas: -1},
		"replicas without cluster":  {DataDir: dir, Replicas: 3},
		"negative retention":        {DataDir: dir, Retention: -time.Hour},
		"window exceeds retention":  {DataDir: dir, Retention: time.Hour, DuplicateWindow: 2 * time.Hour},
		"bad listen address":        {DataDir: dir, NATSListen: "nonsense"},
		"negative duplicate window": {DataDir: dir, DuplicateWindow: -time.Second},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			cfg.Logger = discard
			s, err := store.Open(context.Background(), cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "store: ") {
				t.Errorf("error %q lacks the store: prefix", err)
			}
		})
	}
}

func TestReadyAndClose(t *testing.T) {
	s, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir(), Logger: discard})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if s.KV() == nil || s.KV().Bucket() != store.BucketName {
		t.Fatalf("KV() = %v, want bucket %s", s.KV(), store.BucketName)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Ready(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ready after Close = %v, want ErrUnavailable", err)
	}
	if _, _, err := s.Append(context.Background(), testEvent("wh", "d", "j")); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Append after Close = %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(context.Background(), 1); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Get after Close = %v, want ErrUnavailable", err)
	}
	if _, _, err := s.Read(context.Background(), 1, 10, nil, nil); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Read after Close = %v, want ErrUnavailable", err)
	}
}

func TestKVUsable(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	if _, err := s.KV().Put(ctx, "wh1", []byte("record")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	e, err := s.KV().Get(ctx, "wh1")
	if err != nil || string(e.Value()) != "record" {
		t.Fatalf("Get = (%v, %v), want record", e, err)
	}
}

func TestOpenExternalURL(t *testing.T) {
	ns := apptest.StartNATS(t, nil)

	s, err := store.Open(context.Background(), store.Config{URL: ns.ClientURL(), Logger: discard})
	if err != nil {
		t.Fatalf("Open(URL): %v", err)
	}
	defer s.Close()
	seq := mustAppend(t, s, testEvent("wh", "d1", "j"))
	if ev, err := s.Get(context.Background(), seq); err != nil || ev.GetDeliveryId() != "d1" {
		t.Fatalf("Get(%d) over the network = (%v, %v)", seq, ev, err)
	}
	if err := s.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

func TestOpenUnreachableURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Config{URL: "nats://127.0.0.1:1", Logger: discard})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open on an unreachable URL succeeded")
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open error = %v, want ErrUnavailable", err)
	}
}
