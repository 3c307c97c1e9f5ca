package app_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

// TestStalledStreamsRSS measures the process's memory while many full-view
// streams from the beginning of a log of large events never read. It is a
// measurement, not a check, so it runs only when asked:
//
//	KLINGFAN_STALL_RSS=before go test -run TestStalledStreamsRSS -v -timeout 20m ./internal/app/
//	KLINGFAN_STALL_RSS=after  go test -run TestStalledStreamsRSS -v -timeout 20m ./internal/app/
//
// "before" turns the catch-up budget and the send deadline off
// (--catch-up-memory 0 --send-deadline 0), which is how the server behaved
// before they existed; "after" keeps the defaults (256 MiB, 30s). Run each
// in its own process: a Go process's resident set does not shrink back
// promptly. KLINGFAN_STALL_STREAMS (1000), KLINGFAN_STALL_EVENTS (2000),
// KLINGFAN_STALL_EVENT_KIB (200) and KLINGFAN_STALL_WATCH (45s) change the
// scale. The clients run in this process too, each stream's transport
// limited to a 64 KiB window, so they add at most streams × 64 KiB in
// either mode.
func TestStalledStreamsRSS(t *testing.T) {
	mode := os.Getenv("KLINGFAN_STALL_RSS")
	if mode != "before" && mode != "after" {
		t.Skip("set KLINGFAN_STALL_RSS=before or after to measure memory under stalled streams")
	}
	streams := envInt(t, "KLINGFAN_STALL_STREAMS", 1000)
	events := envInt(t, "KLINGFAN_STALL_EVENTS", 2000)
	eventKiB := envInt(t, "KLINGFAN_STALL_EVENT_KIB", 200)
	watch := 45 * time.Second
	if v := os.Getenv("KLINGFAN_STALL_WATCH"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		watch = d
	}
	f := startFanout(t, apptest.WithConfig(func(c *config.Config) {
		c.MaxBodyBytes = 1 << 20
		c.IngestRate = 0
		c.MaxStreamsPerToken = streams + 10
		c.MaxStreams = streams + 10
		if mode == "before" {
			c.CatchUpBytes, c.SendDeadline = 0, 0
		}
	}))

	// The bulk rides in a field klingfan does not normalize, so each event
	// holds it once (in its raw body).
	padding := strings.Repeat("x", eventKiB<<10)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(events); i = next.Add(1) {
				body := fmt.Sprintf(`{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"rss-%d","padding":%q}}`, i, padding)
				if status, out := f.srv.Post(t, "/webhooks/klingai", signed([]byte(body)), []byte(body)); status != http.StatusOK {
					t.Errorf("post %d: %d %s", i, status, out)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	base := settledRSS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const perConn = 100
	opened := time.Now()
	for c := 0; c*perConn < streams; c++ {
		conn := f.srv.Dial(t, grpc.WithPerRPCCredentials(apptest.BearerCreds(apptest.AdminToken)),
			grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
		client := gatewayv1.NewEventServiceClient(conn)
		for range min(perConn, streams-c*perConn) {
			s, err := client.Subscribe(ctx, &gatewayv1.SubscribeRequest{
				Start: &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true},
				View:  gatewayv1.EventView_EVENT_VIEW_FULL,
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Header(); err != nil {
				t.Fatal(err)
			}
		}
	}
	openSecs := time.Since(opened).Seconds()

	var peakRSS, peakHeap int64
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var at20 int64
	for end := time.Now().Add(watch); time.Now().Before(end); <-tick.C {
		rss := readRSS(t)
		metrics.Read(sample)
		peakRSS = max(peakRSS, rss)
		peakHeap = max(peakHeap, int64(sample[0].Value.Uint64()))
		if at20 == 0 && time.Since(opened) >= 20*time.Second {
			at20 = rss
		}
		if rss > 12<<30 {
			t.Logf("resident set over 12 GiB: stopping early")
			break
		}
	}
	subs := scrape(t, f.srv, "klingfan_hub_subscribers")
	t.Logf("mode=%s streams=%d events=%d×%dKiB opened in %.1fs; RSS before streams %d MiB, at 20s %d MiB, peak %d MiB over %s; peak live heap %d MiB; subscribers still open %v",
		mode, streams, events, eventKiB, openSecs, base>>20, at20>>20, peakRSS>>20, watch, peakHeap>>20, subs)
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// settledRSS collects garbage, returns free pages and reads the resident set.
func settledRSS(t *testing.T) int64 {
	for range 2 {
		runtime.GC()
		debug.FreeOSMemory()
	}
	return readRSS(t)
}

// readRSS reads this process's VmRSS.
func readRSS(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc: cannot read the resident set")
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
