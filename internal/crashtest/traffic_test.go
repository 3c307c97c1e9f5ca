//go:build unix

package crashtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/verify"
)

// delivery is one callback as Kling would send it: its body never changes,
// so a re-send is byte-identical and must be recognised as a duplicate.
type delivery struct {
	job  string
	body []byte
	// ackRun is the server run that first answered 200; 0 while unacknowledged.
	ackRun int
	// ackedAt is when that happened.
	ackedAt time.Time
}

// ledger is what the senders know: every delivery made and which ones the
// server promised to keep.
type ledger struct {
	mu        sync.Mutex
	all       map[string]*delivery
	order     []string // job ids in creation order
	ackedJobs []string // job ids in first-acknowledgement order
	next      int
}

func newLedger() *ledger { return &ledger{all: make(map[string]*delivery)} }

// create makes a new unique delivery.
func (l *ledger) create() *delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	job := fmt.Sprintf("crash-%d", l.next)
	body := fmt.Sprintf(`{"event":"video.completed","timestamp":%q,"data":{"job_id":%q,"status":"completed"}}`,
		time.Now().UTC().Format(time.RFC3339), job)
	d := &delivery{job: job, body: []byte(body)}
	l.all[job] = d
	l.order = append(l.order, job)
	return d
}

// ack records a 200 for d and reports whether it was the first.
func (l *ledger) ack(d *delivery, run int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d.ackRun != 0 {
		return false
	}
	d.ackRun, d.ackedAt = run, time.Now()
	l.ackedJobs = append(l.ackedJobs, d.job)
	return true
}

// randomAcked picks an already acknowledged delivery, for Kling-style
// repeats of something that succeeded.
func (l *ledger) randomAcked(rng *rand.Rand) (*delivery, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ackedJobs) == 0 {
		return nil, false
	}
	return l.all[l.ackedJobs[rng.IntN(len(l.ackedJobs))]], true
}

func (l *ledger) counts() (made, acked int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.order), len(l.ackedJobs)
}

// unacked returns the deliveries that never got a 200.
func (l *ledger) unacked() []*delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*delivery
	for _, job := range l.order {
		if d := l.all[job]; d.ackRun == 0 {
			out = append(out, d)
		}
	}
	return out
}

func (l *ledger) get(job string) (*delivery, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.all[job]
	return d, ok
}

// senderStats counts what the senders saw.
type senderStats struct {
	attempts   atomic.Int64
	ok         atomic.Int64
	connErrors atomic.Int64
	unavail    atomic.Int64 // 503
	limited    atomic.Int64 // 429
	repeats    atomic.Int64 // re-sends of already acknowledged deliveries
	rejected   atomic.Int64 // any other status: a test failure
}

// senders posts deliveries to whichever server run is current, retrying
// each until it is acknowledged, as Kling does.
type senders struct {
	t       *testing.T
	c       *cluster
	ledger  *ledger
	stats   senderStats
	client  *http.Client
	posting atomic.Bool // false: finish the delivery in hand, then stop
	// maxDeliveries bounds how many distinct deliveries are made.
	maxDeliveries int
	wg            sync.WaitGroup
	errs          atomic.Int64
}

func newSenders(t *testing.T, c *cluster, l *ledger, maxDeliveries int) *senders {
	tr := &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second}
	s := &senders{t: t, c: c, ledger: l, maxDeliveries: maxDeliveries,
		client: &http.Client{Timeout: 15 * time.Second, Transport: tr}}
	s.posting.Store(true)
	return s
}

// start launches n sender goroutines; seed makes their choices repeatable.
func (s *senders) start(ctx context.Context, n int, seed uint64) {
	for i := range n {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(ctx, rand.New(rand.NewPCG(seed, uint64(i)+1)))
		}()
	}
}

func (s *senders) run(ctx context.Context, rng *rand.Rand) {
	for ctx.Err() == nil && s.posting.Load() {
		// One in twenty posts repeats an acknowledged delivery, as a
		// sender that never saw our 200 would.
		if rng.IntN(20) == 0 {
			if d, ok := s.ledger.randomAcked(rng); ok {
				s.stats.repeats.Add(1)
				s.deliver(ctx, d, rng)
				continue
			}
		}
		if made, _ := s.ledger.counts(); made >= s.maxDeliveries {
			return
		}
		s.deliver(ctx, s.ledger.create(), rng)
	}
}

// deliver posts d until the server answers 200 or ctx ends.
func (s *senders) deliver(ctx context.Context, d *delivery, rng *rand.Rand) {
	sig := verify.SignKling([]byte(webhookSecret), d.body)
	for ctx.Err() == nil {
		p := s.c.current()
		status, retryAfter, err := s.post(ctx, p.httpURL, d.body, sig)
		s.stats.attempts.Add(1)
		wait := time.Duration(10+rng.IntN(40)) * time.Millisecond
		switch {
		case errors.Is(err, errBadAck):
			s.stats.rejected.Add(1)
			if s.errs.Add(1) <= 10 {
				s.t.Errorf("crashtest: run %d, %s: %v", p.run, d.job, err)
			}
			return
		case err != nil:
			s.stats.connErrors.Add(1)
		case status == http.StatusOK:
			s.stats.ok.Add(1)
			s.ledger.ack(d, p.run)
			return
		case status == http.StatusServiceUnavailable:
			s.stats.unavail.Add(1)
		case status == http.StatusTooManyRequests:
			s.stats.limited.Add(1)
			wait = max(wait, min(retryAfter, time.Second))
		default:
			s.stats.rejected.Add(1)
			if s.errs.Add(1) <= 10 {
				s.t.Errorf("crashtest: run %d answered %s with %d", p.run, d.job, status)
			}
			return
		}
		// Back off a little while the server is down or starting.
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// errBadAck is a 200 whose body is not {"received": true}.
var errBadAck = errors.New(`200 without {"received": true}`)

// post sends one delivery and returns the status and Retry-After; a
// non-nil error means no answer was read.
func (s *senders) post(ctx context.Context, base string, body []byte, sig string) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webhooks/klingai", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(verify.HeaderKlingSignature, sig)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return 0, 0, err // the answer was cut off: Kling would retry
	}
	if resp.StatusCode == http.StatusOK {
		var ans struct {
			Received bool `json:"received"`
		}
		if json.Unmarshal(raw, &ans) != nil || !ans.Received {
			return resp.StatusCode, 0, fmt.Errorf("%w: %q", errBadAck, raw)
		}
	}
	secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	return resp.StatusCode, time.Duration(secs) * time.Second, nil
}

// stop asks the senders to finish the delivery in hand and waits for them.
func (s *senders) stop(timeout time.Duration) bool {
	s.posting.Store(false)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}
