package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/klingfan/klingfan/internal/config"
)

// StreamClientsCommand is the hidden klingbench subcommand that holds the
// memory scenario's idle streams in a child process.
const StreamClientsCommand = "stream-clients"

// streamsPerMemoryConn is how many idle streams share one connection:
// half of the server's per-connection stream limit (1,000).
const streamsPerMemoryConn = 500

// MemoryResult is the server-side memory cost of idle subscribed streams.
//
// The server runs in the harness process and the clients in a child
// process (klingbench re-executes itself with StreamClientsCommand), so
// the harness's resident set grows only by what the server holds for the
// streams: the two sides never share a heap. The figures are deltas
// between a settled server before and after the streams opened, each
// taken after runtime.GC and debug.FreeOSMemory.
type MemoryResult struct {
	Streams     int `json:"streams"`
	Connections int `json:"connections"`
	// ClientProcesses is how many child processes held the streams.
	ClientProcesses int     `json:"client_processes"`
	OpenSeconds     float64 `json:"open_seconds"`
	// ServerSubscribers is the server's own count of open subscriptions
	// (klingfan_hub_subscribers), to prove the streams were all live.
	ServerSubscribers int64 `json:"server_subscribers"`
	RSSBefore         int64 `json:"rss_before_bytes"`
	RSSAfter          int64 `json:"rss_after_bytes"`
	// Per stream, in bytes: resident set, live heap objects, goroutine
	// stacks, and goroutines.
	RSSPerStream        float64 `json:"rss_per_stream_bytes"`
	HeapPerStream       float64 `json:"heap_per_stream_bytes"`
	StackPerStream      float64 `json:"stack_per_stream_bytes"`
	GoroutinesPerStream float64 `json:"goroutines_per_stream"`
	// ObjectsPerStream is the live heap objects per stream: what each
	// Subscribe allocated up front and still holds.
	ObjectsPerStream float64 `json:"objects_per_stream"`
	// ClientRSS is the child processes' resident set, for scale.
	ClientRSS int64 `json:"client_rss_bytes"`
	// Bare is the same streams on a bare grpc-go server, measured after.
	Bare *BareStreamsResult `json:"bare_grpc,omitempty"`
}

type memSnapshot struct {
	rss, heap, stacks, goroutines, objects int64
}

// settledMemory collects garbage, returns free pages to the OS and reads
// the process's memory.
func settledMemory() (memSnapshot, error) {
	for range 2 {
		runtime.GC()
		debug.FreeOSMemory()
		time.Sleep(200 * time.Millisecond) // let background goroutines go idle between collections
	}
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/gc/heap/objects:objects"},
	}
	metrics.Read(samples)
	rss, err := vmRSS("self")
	if err != nil {
		return memSnapshot{}, fmt.Errorf("bench: read VmRSS: %w", err)
	}
	return memSnapshot{
		rss:        rss,
		heap:       int64(samples[0].Value.Uint64()),
		stacks:     int64(samples[1].Value.Uint64()),
		goroutines: int64(samples[2].Value.Uint64()),
		objects:    int64(samples[3].Value.Uint64()),
	}, nil
}

// runMemory opens r.cfg.Streams idle streams from a child process against
// a fresh server and measures what the server holds for them.
func (r *runner) runMemory(ctx context.Context) (*MemoryResult, error) {
	n, conns := r.cfg.Streams, max(1, r.cfg.Streams/streamsPerMemoryConn)
	r.logf("memory: %d idle streams over %d connections from a child process", n, conns)
	dir, err := newDataDir()
	if err != nil {
		return nil, err
	}
	defer r.removeDir(dir)
	// --max-streams above the run's streams: the run measures memory, not
	// the default cap (10,000).
	srv, err := startServer(ctx, dir, r.log, func(c *config.Config) { c.MaxStreams = max(maxStreams, n+1000) })
	if err != nil {
		return nil, err
	}
	defer srv.stopLogged()

	before, err := settledMemory()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	clients, err := startStreamClients(ctx, srv.grpcAddr, n, conns)
	defer clients.stop()
	if err != nil {
		return nil, err
	}
	opened := time.Since(start)
	res := &MemoryResult{Streams: n, Connections: conns, ClientProcesses: len(clients.cmds), OpenSeconds: round2(opened.Seconds())}
	res.ServerSubscribers, err = scrapeGauge(ctx, srv.httpURL, "klingfan_hub_subscribers")
	if err != nil {
		return nil, err
	}
	if res.ServerSubscribers != int64(n) {
		return nil, fmt.Errorf("bench: server reports %d subscriptions, want %d", res.ServerSubscribers, n)
	}
	after, err := settledMemory()
	if err != nil {
		return nil, err
	}
	r.heapProfile("memory")
	res.ClientRSS = clients.rss()
	res.RSSBefore, res.RSSAfter = before.rss, after.rss
	per := func(a, b int64) float64 { return float64(int64(float64(b-a) / float64(n))) }
	res.RSSPerStream = per(before.rss, after.rss)
	res.HeapPerStream = per(before.heap, after.heap)
	res.StackPerStream = per(before.stacks, after.stacks)
	res.GoroutinesPerStream = round2(float64(after.goroutines-before.goroutines) / float64(n))
	res.ObjectsPerStream = round2(float64(after.objects-before.objects) / float64(n))
	r.logf("  opened in %.1fs; server RSS %+.1f MiB = %.1f KiB/stream (heap %.0f B in %.1f objects, stacks %.1f KiB, %.2f goroutines); client RSS %.0f MiB",
		res.OpenSeconds, float64(after.rss-before.rss)/(1<<20), res.RSSPerStream/1024, res.HeapPerStream, res.ObjectsPerStream, res.StackPerStream/1024,
		res.GoroutinesPerStream, float64(res.ClientRSS)/(1<<20))
	clients.stop()
	if err := srv.stop(); err != nil {
		return nil, err
	}
	settle()
	if res.Bare, err = r.runBareStreams(ctx, n, conns); err != nil {
		return nil, err
	}
	return res, nil
}

// scrapeGauge reads one unlabelled gauge from the server's /metrics.
func scrapeGauge(ctx context.Context, base, name string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("bench: metric %s not found", name)
}

// RunStreamClients is the child side of the memory scenario: it opens n
// Subscribe streams over conns connections, prints "ready" once all are
// live, and holds them idle until its stdin closes.
func RunStreamClients(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(StreamClientsCommand, flag.ContinueOnError)
	addr := fs.String("addr", "", "gRPC address of the server")
	n := fs.Int("n", 10_000, "streams")
	conns := fs.Int("conns", 10, "connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" || *n < 1 || *conns < 1 {
		return errors.New("bench: stream-clients needs -addr, -n >= 1 and -conns >= 1")
	}
	cs, err := dialConns(ctx, *addr, *conns)
	if err != nil {
		return err
	}
	defer closeConns(cs)
	streams, _, err := openStreams(ctx, cs, *n, everyEvent)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ready %d\n", len(streams))
	_, _ = io.Copy(io.Discard, stdin)
	return nil
}
