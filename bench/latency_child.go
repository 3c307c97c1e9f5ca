package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// LatencyClientsCommand is the hidden klingbench subcommand that holds the
// latency scenario's subscribers in a child process, so that the figure
// (and the CPU the harness process reports) is the server's: 1,000
// subscribers reading 100,000 events/s in the server's own process took
// about a third of its CPU.
const LatencyClientsCommand = "latency-clients"

// childDrainTimeout bounds how long the child waits, after the parent has
// sent its last probe, for every subscriber to read every event.
const childDrainTimeout = 30 * time.Second

// latencyChildResult is what the child reports on its stdout, one JSON
// line, once every subscriber has read every probe or the drain timeout
// passed.
type latencyChildResult struct {
	Connections int         `json:"connections"`
	Latency     Percentiles `json:"latency"`
	// Received counts every event read, warm-up included; Missing is the
	// (probe, subscriber) pairs never read; OutOfOrder counts events whose
	// sequence was not above the subscriber's previous one, and Duplicates
	// probes a subscriber read twice.
	Received   int64 `json:"received"`
	Missing    int64 `json:"missing"`
	OutOfOrder int64 `json:"out_of_order"`
	Duplicates int64 `json:"duplicates"`
	// LastArrival is the Unix time (ns) of the last measured delivery.
	LastArrival int64   `json:"last_arrival"`
	Resumes     int64   `json:"resumes"`
	StreamError string  `json:"stream_error,omitempty"`
	GaveUp      string  `json:"gave_up,omitempty"`
	Cores       float64 `json:"cores"`
}

// subscriberLog is one child subscriber's record, written only by its own
// drain goroutine.
type subscriberLog struct {
	samples []int64
	seen    []bool // by probe index
	lastSeq uint64
	distinct,
	outOfOrder,
	duplicates int64
}

// RunLatencyClients is the child side of the latency scenario: it opens n
// Subscribe streams (perConn per connection, each with -filter when set),
// prints "ready", waits for "go" on stdin, records every event's latency
// and checks that each subscriber reads each of -total probes once and in
// sequence order; after "sent" it waits for the stragglers and prints its
// latencyChildResult.
func RunLatencyClients(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(LatencyClientsCommand, flag.ContinueOnError)
	addr := fs.String("addr", "", "gRPC address of the server")
	n := fs.Int("n", 1, "subscribers")
	perConn := fs.Int("per-conn", streamsPerConn, "streams per connection")
	filter := fs.String("filter", "", "CEL filter of every stream")
	total := fs.Int("total", 0, "probes the parent sends, warm-up included")
	warm := fs.Int("warm", 0, "warm-up probes, not measured")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" || *n < 1 || *perConn < 1 || *total < 1 || *warm < 0 || *warm >= *total {
		return errors.New("bench: latency-clients needs -addr, -n >= 1, -per-conn >= 1 and 0 <= -warm < -total")
	}
	logs := make([]subscriberLog, *n)
	for i := range logs {
		logs[i] = subscriberLog{samples: make([]int64, 0, *total-*warm), seen: make([]bool, *total)}
	}
	var lastArrival atomic.Int64
	req := everyEvent
	if *filter != "" {
		req = func(int) *gatewayv1.SubscribeRequest { return &gatewayv1.SubscribeRequest{Filter: *filter} }
	}
	sub, err := startSubscribers(ctx, *addr, *n, *perConn, req, func(i int, f frame, at int64) {
		l := &logs[i]
		if f.seq <= l.lastSeq {
			l.outOfOrder++
		}
		l.lastSeq = f.seq
		if f.probe < 0 || f.probe >= len(l.seen) {
			return
		}
		if l.seen[f.probe] {
			l.duplicates++
			return
		}
		l.seen[f.probe] = true
		l.distinct++
		if f.probe >= *warm {
			l.samples = append(l.samples, at-f.sentAt)
			lastArrival.Store(at)
		}
	})
	if err != nil {
		return err
	}
	defer sub.close()
	fmt.Fprintf(stdout, "ready %d\n", *n)

	lines := bufio.NewScanner(stdin)
	if !lines.Scan() || lines.Text() != "go" {
		return errors.New("bench: latency-clients: parent went away before go")
	}
	cpu := startCPU()
	if !lines.Scan() || lines.Text() != "sent" {
		return errors.New("bench: latency-clients: parent went away before sent")
	}
	want := int64(*total) * int64(*n)
	_ = waitFor(ctx, childDrainTimeout, func() bool { return sub.received.Load() >= want })
	res := latencyChildResult{Connections: len(sub.conns), Cores: cpu.cores()}
	// Stop the drainers before reading what they recorded.
	sub.close()
	if err := sub.err(); err != nil {
		res.GaveUp = err.Error()
	}
	var all []int64
	for i := range logs {
		l := &logs[i]
		all = append(all, l.samples...)
		res.Missing += int64(*total) - l.distinct
		res.OutOfOrder += l.outOfOrder
		res.Duplicates += l.duplicates
	}
	res.Latency = percentiles(all)
	res.Received = sub.received.Load()
	res.LastArrival = lastArrival.Load()
	res.Resumes = sub.resumes.Load()
	res.StreamError = sub.streamErr()
	return json.NewEncoder(stdout).Encode(res)
}

// latencyChild is the parent's handle on a running latency-clients child.
type latencyChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	cancel context.CancelFunc
}

// startLatencyChild re-executes this binary as latency-clients and
// returns once its n streams are live.
func startLatencyChild(ctx context.Context, addr string, n, total, warm int, filter string) (*latencyChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	cmd := exec.CommandContext(cctx, exe, LatencyClientsCommand, //nolint:gosec // G204: this very binary, with arguments the harness built
		"-addr", addr, "-n", strconv.Itoa(n), "-per-conn", strconv.Itoa(streamsPerConn),
		"-total", strconv.Itoa(total), "-warm", strconv.Itoa(warm), "-filter", filter)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("bench: start latency clients: %w", err)
	}
	c := &latencyChild{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(out), cancel: cancel}
	line, err := c.stdout.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		c.close()
		return nil, fmt.Errorf("bench: latency clients did not get ready: %q: %w", line, err)
	}
	return c, nil
}

// say writes one control line to the child.
func (c *latencyChild) say(word string) error {
	_, err := io.WriteString(c.stdin, word+"\n")
	return err
}

// result tells the child the probes are sent and reads its report.
func (c *latencyChild) result() (latencyChildResult, error) {
	var res latencyChildResult
	if err := c.say("sent"); err != nil {
		return res, err
	}
	line, err := c.stdout.ReadBytes('\n')
	if err != nil {
		return res, fmt.Errorf("bench: latency clients ended without a result: %w", err)
	}
	if err := json.Unmarshal(line, &res); err != nil {
		return res, fmt.Errorf("bench: latency clients' result: %w", err)
	}
	return res, nil
}

// close ends the child and waits for it; safe after result.
func (c *latencyChild) close() {
	c.stdin.Close()
	_ = c.cmd.Wait()
	c.cancel()
}

// measured ends a latency point that started its CPU meter with cpu (and
// cpuTime at cpuAt) and sent its first measured probe at firstSend: it
// collects the child's result, stops the profile and returns the figures
// the child and the meter measured. The caller adds what only it knows.
func (r *runner) measured(c *latencyChild, cpu cpuMeter, cpuAt time.Duration, stop func(), n, total, warm int, firstSend int64) (LatencyResult, error) {
	got, err := c.result()
	cores, others, used := cpu.cores(), cpu.others(), cpuTime()-cpuAt
	stop()
	if err != nil {
		return LatencyResult{}, err
	}
	if got.GaveUp != "" {
		return LatencyResult{}, errors.New(got.GaveUp)
	}
	window := time.Duration(got.LastArrival - firstSend)
	return LatencyResult{
		Subscribers:             n,
		Connections:             got.Connections,
		Rate:                    r.cfg.Rate,
		Events:                  total - warm,
		Latency:                 got.Latency,
		DeliveriesPerSecond:     float64(int64(float64(got.Latency.Count) / window.Seconds())),
		Missing:                 got.Missing,
		OutOfOrder:              got.OutOfOrder,
		Duplicates:              got.Duplicates,
		Resumes:                 got.Resumes,
		StreamError:             got.StreamError,
		Cores:                   cores,
		ClientCores:             got.Cores,
		OtherCores:              max(0, round2(others-got.Cores)),
		ServerMicrosPerDelivery: perDelivery(used, got.Received),
	}, nil
}
