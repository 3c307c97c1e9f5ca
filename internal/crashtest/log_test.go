//go:build unix

package crashtest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// authCtx adds the admin bearer token to outgoing gRPC calls.
func authCtx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+adminToken)
}

func dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
}

// listAll reads the whole log with ListEvents, 1,000 at a time.
func listAll(ctx context.Context, addr string) ([]*gatewayv1.Event, error) {
	conn, err := dial(addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := gatewayv1.NewEventServiceClient(conn)
	var (
		all   []*gatewayv1.Event
		token string
	)
	for page := 0; ; page++ {
		if page > 100000 {
			return nil, errors.New("ListEvents: more than 100,000 pages")
		}
		resp, err := client.ListEvents(authCtx(ctx), &gatewayv1.ListEventsRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			return nil, fmt.Errorf("ListEvents page %d: %w", page, err)
		}
		all = append(all, resp.GetEvents()...)
		token = resp.GetNextPageToken()
		if token == "" {
			return all, nil
		}
	}
}

// tally checks what a reader saw: sequences strictly increasing, each
// job (delivery) at most once.
type tally struct {
	last     uint64
	n        int
	count    map[string]int
	seqOf    map[string][]uint64
	problems []string
}

func newTally() *tally {
	return &tally{count: make(map[string]int), seqOf: make(map[string][]uint64)}
}

func (t *tally) observe(ev *gatewayv1.Event) {
	seq, job := ev.GetSequence(), ev.GetJob().GetJobId()
	if seq <= t.last {
		t.problem("sequence %d (%s) after %d", seq, job, t.last)
	}
	t.last = max(t.last, seq)
	t.n++
	t.count[job]++
	t.seqOf[job] = append(t.seqOf[job], seq)
}

func (t *tally) problem(format string, args ...any) {
	if len(t.problems) < 20 {
		t.problems = append(t.problems, fmt.Sprintf(format, args...))
	}
}

// compare returns what is wrong with t against the ledger: acknowledged
// deliveries missing or seen twice, and events nobody sent. logSeq, when
// not nil, gives each job's sequence in the log, for the report.
func (t *tally) compare(l *ledger, logSeq map[string][]uint64) []string {
	out := append([]string(nil), t.problems...)
	var dups, unknown []string
	for job, n := range t.count {
		if _, ok := l.get(job); !ok {
			unknown = append(unknown, fmt.Sprintf("%s at sequence %v", job, t.seqOf[job]))
		}
		if n > 1 {
			d, _ := l.get(job)
			run := 0
			if d != nil {
				run = d.ackRun
			}
			dups = append(dups, fmt.Sprintf("%s ×%d at sequences %v (first acked by run %d)", job, n, t.seqOf[job], run))
		}
	}
	var lost []string
	l.mu.Lock()
	for _, job := range l.ackedJobs {
		if t.count[job] == 0 {
			d := l.all[job]
			where := ""
			if logSeq != nil {
				where = fmt.Sprintf(", log sequence %v", logSeq[job])
			}
			lost = append(lost, fmt.Sprintf("%s (acked by run %d at %s%s)", job, d.ackRun, d.ackedAt.Format("15:04:05.000"), where))
		}
	}
	acked := len(l.ackedJobs)
	l.mu.Unlock()
	add := func(what string, list []string) {
		if len(list) == 0 {
			return
		}
		sort.Strings(list)
		out = append(out, fmt.Sprintf("%d %s: %s", len(list), what, strings.Join(list[:min(20, len(list))], "; ")))
	}
	add("acknowledged deliveries lost", lost)
	add("deliveries duplicated", dups)
	add("events no one sent", unknown)
	if len(lost) == 0 && len(unknown) == 0 && len(t.count) != acked {
		out = append(out, fmt.Sprintf("%d distinct events, %d acknowledged", len(t.count), acked))
	}
	return out
}

// follower is a subscriber that stays on through the crashes: after each
// broken stream it resumes with after_sequence set to the last sequence it
// processed. A churning follower also hangs up by itself at random moments,
// so resumes land in the middle of live traffic, not only after restarts.
type follower struct {
	name  string
	churn *rand.Rand // nil: never hangs up by itself

	mu         sync.Mutex
	tally      *tally
	reconnects int // streams broken by the server going away
	hangups    int // streams this follower ended itself
	lastErr    error
}

func newFollower(name string, churn *rand.Rand) *follower {
	return &follower{name: name, churn: churn, tally: newTally()}
}

func (f *follower) run(ctx context.Context, c *cluster) {
	for ctx.Err() == nil {
		sctx, cancel := ctx, context.CancelFunc(func() {})
		if f.churn != nil {
			sctx, cancel = context.WithTimeout(ctx, time.Duration(100+f.churn.IntN(500))*time.Millisecond)
		}
		err := f.follow(sctx, c.current().grpcAddr)
		hungUp := sctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		if hungUp {
			f.hangups++
		} else {
			f.reconnects++
			f.lastErr = err
		}
		f.mu.Unlock()
		if hungUp {
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // back off while the server is down
		}
	}
}

func (f *follower) follow(ctx context.Context, addr string) error {
	conn, err := dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	f.mu.Lock()
	req := &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: f.tally.last}}
	if f.tally.last == 0 {
		req.Start = &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true}
	}
	f.mu.Unlock()
	stream, err := gatewayv1.NewEventServiceClient(conn).Subscribe(authCtx(ctx), req)
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.tally.observe(resp.GetEvent())
		f.mu.Unlock()
	}
}

// position is the last sequence the follower processed.
func (f *follower) position() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tally.last
}

// readStream subscribes with req and feeds events to t until stop says so.
func readStream(ctx context.Context, addr string, req *gatewayv1.SubscribeRequest, t *tally, stop func() bool) error {
	conn, err := dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // disconnects
	stream, err := gatewayv1.NewEventServiceClient(conn).Subscribe(authCtx(ctx), req)
	if err != nil {
		return err
	}
	for !stop() {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("after %d events: %w", t.n, err)
		}
		t.observe(resp.GetEvent())
	}
	return nil
}

// resumeHalfway reads the log from the beginning, disconnects after half
// of total events, and resumes after the last sequence it saw until it has
// total distinct events.
func resumeHalfway(ctx context.Context, addr string, total int) (*tally, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := newTally()
	first := &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true}}
	if err := readStream(ctx, addr, first, t, func() bool { return t.n >= total/2 }); err != nil {
		return t, 0, fmt.Errorf("first half: %w", err)
	}
	cut := t.last
	second := &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: cut}}
	if err := readStream(ctx, addr, second, t, func() bool { return len(t.count) >= total }); err != nil {
		return t, cut, fmt.Errorf("resumed after %d: %w", cut, err)
	}
	return t, cut, nil
}
