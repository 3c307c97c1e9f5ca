package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/klingfan/klingfan/client"
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

func dial(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), addr, client.WithInsecure(), client.WithToken(apptest.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// seen records the jobs a handler saw, in order.
type seen struct {
	mu   sync.Mutex
	jobs []string
}

func (s *seen) add(job string) { s.mu.Lock(); s.jobs = append(s.jobs, job); s.mu.Unlock() }
func (s *seen) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.jobs...)
}

// TestSubscribeResumesAcrossRestart: a Subscribe call outlives a server
// restart on the same address, missing and repeating nothing; a second
// call with the same cursor file resumes after the last handled event.
func TestSubscribeResumesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	srv := apptest.Start(t, dir, apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret))
	c := dial(t, srv.GRPC)
	cursor := client.FileCursor{Path: filepath.Join(t.TempDir(), "cursor")}
	got := &seen{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- c.Subscribe(ctx, &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true}},
			func(_ context.Context, ev *gatewayv1.Event) error { got.add(ev.GetJob().GetJobId()); return nil },
			client.WithCursorStore(cursor), client.WithSubscribeBackoff(client.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}))
	}()
	post := func(s *apptest.Server, job string) { t.Helper(); postEventTo(s, job) }
	post(srv, "r1")
	post(srv, "r2")
	apptest.Eventually(t, 20*time.Second, "two events before the restart", func() bool { return len(got.list()) == 2 })

	srv.Stop(t)
	srv2 := apptest.Start(t, dir, apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret), sameGRPCAddr(t, srv.GRPC))
	post(srv2, "r3")
	apptest.Eventually(t, 30*time.Second, "the event posted after the restart", func() bool { return len(got.list()) == 3 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe returned %v, want context.Canceled", err)
	}
	if g := got.list(); g[0] != "r1" || g[1] != "r2" || g[2] != "r3" {
		t.Errorf("handled %v, want [r1 r2 r3]", g)
	}

	// A new process with the same cursor file resumes after r3.
	post(srv2, "r4")
	again := &seen{}
	err := c.Subscribe(context.Background(), &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true}},
		func(_ context.Context, ev *gatewayv1.Event) error {
			again.add(ev.GetJob().GetJobId())
			return errEnough
		},
		client.WithCursorStore(cursor))
	if !errors.Is(err, errEnough) || len(again.list()) != 1 || again.list()[0] != "r4" {
		t.Errorf("resumed with %v (%v), want [r4]", again.list(), err)
	}
}

// sameGRPCAddr makes a restarted server listen where the old one did.
func sameGRPCAddr(t *testing.T, addr string) apptest.Option {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return func(_ *config.Config, o *app.Options) { o.GRPCListener = ln }
}

// TestConsumeRetriesFailures: a handler that fails an event's first
// attempt sees it again, and every event ends acknowledged.
func TestConsumeRetriesFailures(t *testing.T) {
	c := dial(t, server.GRPC)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jobs := []string{"retry-1", "retry-2", "retry-3"}
	if _, err := c.ConsumerGroups().CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{
		ConsumerGroupId: "retrying",
		ConsumerGroup:   &gatewayv1.ConsumerGroup{JobIds: jobs, Start: &gatewayv1.ConsumerGroup_FromBeginning{FromBeginning: true}},
	}); err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		postEvent(j)
	}
	var mu sync.Mutex
	attempts := map[string]int{}
	handled := &seen{}
	done := make(chan error, 1)
	go func() {
		done <- c.Consume(ctx, "retrying", func(_ context.Context, ev *gatewayv1.Event) error {
			mu.Lock()
			defer mu.Unlock()
			job := ev.GetJob().GetJobId()
			if attempts[job]++; attempts[job] == 1 {
				return errors.New("first attempt fails")
			}
			handled.add(job)
			return nil
		}, client.WithConcurrency(2), client.WithRetryBackoff(client.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}))
	}()
	apptest.Eventually(t, 20*time.Second, "every event handled", func() bool { return len(handled.list()) == 3 })
	apptest.Eventually(t, 20*time.Second, "nothing left unacknowledged", func() bool {
		resp, err := c.ConsumerGroups().GetConsumerGroup(ctx, &gatewayv1.GetConsumerGroupRequest{Id: "retrying"})
		return err == nil && resp.GetConsumerGroup().GetAckPending() == 0 && resp.GetConsumerGroup().GetPending() == 0
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Consume returned %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, j := range jobs {
		if attempts[j] != 2 {
			t.Errorf("%s handled %d times, want 2 (one failure, one success)", j, attempts[j])
		}
	}
}

// TestConsumeUnknownGroup: a refused request is returned, not retried.
func TestConsumeUnknownGroup(t *testing.T) {
	c := dial(t, server.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Consume(ctx, "no-such-group", func(context.Context, *gatewayv1.Event) error { return nil })
	if status.Code(err) != codes.NotFound {
		t.Errorf("Consume returned %v, want NOT_FOUND", err)
	}
}

func TestFileCursor(t *testing.T) {
	dir := t.TempDir()
	fc := client.FileCursor{Path: filepath.Join(dir, "cursor")}
	ctx := context.Background()
	if _, ok, err := fc.Load(ctx); ok || err != nil {
		t.Fatalf("missing file: ok %v, err %v; want a first run", ok, err)
	}
	for _, seq := range []uint64{1, 42, 1 << 40, 18446744073709551615} {
		if err := fc.Save(ctx, seq); err != nil {
			t.Fatal(err)
		}
		got, ok, err := fc.Load(ctx)
		if !ok || err != nil || got != seq {
			t.Errorf("load after saving %d: %d, %v, %v", seq, got, ok, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	cases := []struct {
		name, content string
		wantOK        bool
		wantErr       string
	}{
		{name: "empty means first run", content: ""},
		{name: "whitespace means first run", content: " \n"},
		{name: "surrounding space tolerated", content: " 7 \n", wantOK: true},
		{name: "garbage", content: "seven\n", wantErr: `"seven" is not a sequence number`},
		{name: "negative", content: "-1", wantErr: "not a sequence number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(fc.Path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, ok, err := fc.Load(ctx)
			if ok != tc.wantOK || (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Load = ok %v, err %v; want ok %v, err %q", ok, err, tc.wantOK, tc.wantErr)
			}
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		bad := client.FileCursor{Path: filepath.Join(dir, "missing", "c")}
		if err := bad.Save(ctx, 1); err == nil {
			t.Error("Save into a missing directory succeeded")
		}
	})
}

func TestRetryable(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"server shutting down", status.Error(codes.Unavailable, "server shutting down"), true},
		{"too many streams", status.Error(codes.ResourceExhausted, "too many"), true},
		{"stream reset", status.Error(codes.Internal, "stream terminated by RST_STREAM with error code: INTERNAL_ERROR"), true},
		{"ended without a status", io.EOF, true},
		{"bad token", status.Error(codes.Unauthenticated, "no"), false},
		{"resume point expired", status.Error(codes.OutOfRange, "older than retention"), false},
		{"bad filter", status.Error(codes.InvalidArgument, "job_ids"), false},
		{"internal", status.Error(codes.Internal, "internal error"), false},
		{"not a gRPC error", errors.New("disk full"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := client.Retryable(tc.err); got != tc.want {
				t.Errorf("Retryable = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSubscribeStreamStatus: the status function sees each stream go live
// and can end Subscribe when the first connection fails, as klingctl
// listen does.
func TestSubscribeStreamStatus(t *testing.T) {
	t.Run("fail fast when the first connection fails", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		c := dial(t, addr)
		var got []client.StreamStatus
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err = c.Subscribe(ctx, &gatewayv1.SubscribeRequest{}, func(context.Context, *gatewayv1.Event) error { return nil },
			client.WithStreamStatus(func(s client.StreamStatus) error {
				got = append(got, s)
				if s.Ended && !s.EverLive {
					return s.Err
				}
				return nil
			}))
		if status.Code(err) != codes.Unavailable || len(got) != 1 || !got[0].Ended || got[0].WasLive {
			t.Errorf("Subscribe returned %v after statuses %+v; want UNAVAILABLE after one failed stream", err, got)
		}
	})

	t.Run("a run stopped before its first event resumes without a gap", func(t *testing.T) {
		c := dial(t, server.GRPC)
		cursor := client.FileCursor{Path: filepath.Join(t.TempDir(), "cursor")}
		req := &gatewayv1.SubscribeRequest{JobIds: []string{"status-1"}}
		var live client.StreamStatus
		ctx, cancel := context.WithCancel(context.Background())
		err := c.Subscribe(ctx, req, func(context.Context, *gatewayv1.Event) error { return nil },
			client.WithCursorStore(cursor), client.WithStreamStatus(func(s client.StreamStatus) error {
				live = s
				cancel() // stop as soon as the stream is live
				return nil
			}))
		if !errors.Is(err, context.Canceled) || live.Ended || live.EverLive || live.Request.GetStart() != nil {
			t.Fatalf("Subscribe returned %v with status %+v; want one first live stream started now", err, live)
		}
		saved, ok, err := cursor.Load(context.Background())
		if !ok || err != nil || saved != live.Position {
			t.Fatalf("cursor holds %d, %v, %v; want the live position %d", saved, ok, err, live.Position)
		}
		postEvent("status-1") // while nothing subscribes
		var first *gatewayv1.Event
		// Bounded, so a resumed run that never sees the event fails the
		// test instead of hanging it.
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = c.Subscribe(ctx, req, func(_ context.Context, ev *gatewayv1.Event) error {
			first = ev
			return errEnough
		}, client.WithCursorStore(cursor))
		if !errors.Is(err, errEnough) || first.GetJob().GetJobId() != "status-1" || first.GetSequence() <= saved {
			t.Errorf("resumed run got %v (%v), want the event posted in between", first, err)
		}
	})
}
