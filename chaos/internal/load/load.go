// Package load sends distinct signed deliveries to the klingfan replicas at
// a steady rate, the way Kling would: each delivery is a video.completed
// callback for its own job, signed with the shared secret, retried with the
// identical body through the other replica when an attempt fails. Every
// attempt is recorded with its time and outcome, so a run can say what
// klingfan answered during each fault.
package load

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/klingfan/klingfan/chaos/internal/checker"
)

// Outcome classifies one attempt.
type Outcome int

// The outcomes of an attempt.
const (
	OK          Outcome = iota // 2xx: klingfan says the delivery is durable
	Unavailable                // 503: klingfan says it could not log it
	Timeout                    // no answer within the client's timeout
	ConnError                  // refused, reset or closed before an answer
	Other                      // any other status
)

// Attempt is one POST of a delivery.
type Attempt struct {
	Delivery   int
	Replica    int
	Start, End time.Time
	Outcome    Outcome
	Status     int
}

// Config configures a load.
type Config struct {
	// URLs are the replicas' HTTP base URLs.
	URLs []string
	// Client sends the requests; its Timeout bounds an attempt.
	Client *http.Client
	// Secret signs the deliveries (X-Kling-Signature).
	Secret string
	// JobPrefix starts every job id, so runs do not collide.
	JobPrefix string
	// Max bounds the number of deliveries; Rate is how many start per
	// second.
	Max  int
	Rate float64
	// Attempts bounds the attempts per delivery.
	Attempts int
	// Workers bounds the deliveries in flight.
	Workers int
}

// Load is a running load.
type Load struct {
	cfg    Config
	stop   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sent     []checker.Delivery // guarded by mu
	acked    []bool             // guarded by mu, by delivery
	attempts []Attempt          // guarded by mu
}

// Start starts sending until Stop, Max deliveries or ctx's end.
func Start(ctx context.Context, cfg Config) *Load {
	ctx, cancel := context.WithCancel(ctx)
	l := &Load{cfg: cfg, stop: make(chan struct{}), cancel: cancel}
	next := make(chan int)
	l.wg.Go(func() {
		defer close(next)
		lim := rate.NewLimiter(rate.Limit(cfg.Rate), 1)
		for i := range cfg.Max {
			if lim.Wait(ctx) != nil {
				return
			}
			select {
			case next <- i:
			case <-l.stop:
				return
			case <-ctx.Done():
				return
			}
		}
	})
	for range cfg.Workers {
		l.wg.Go(func() {
			for i := range next {
				l.deliver(ctx, i)
			}
		})
	}
	return l
}

// Stop sends no new delivery, lets those in flight finish (each within its
// attempts), and waits for them.
func (l *Load) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	l.cancel()
}

func (l *Load) deliver(ctx context.Context, i int) {
	d := checker.Delivery{Job: fmt.Sprintf("%s-%06d", l.cfg.JobPrefix, i)}
	d.Body = fmt.Appendf(nil, `{"event":"video.completed","timestamp":%q,"data":{"job_id":%q,"status":"completed","video_url":"https://example.com/chaos/%d.mp4","duration":5}}`,
		time.Now().UTC().Format(time.RFC3339Nano), d.Job, i)
	l.mu.Lock()
	l.sent = append(l.sent, d)
	idx := len(l.sent) - 1
	l.acked = append(l.acked, false)
	l.mu.Unlock()
	for n := range l.cfg.Attempts {
		replica := (i + n) % len(l.cfg.URLs) // a retry goes to the other replica
		a := l.post(ctx, i, replica, d.Body)
		l.mu.Lock()
		l.attempts = append(l.attempts, a)
		if a.Outcome == OK {
			l.acked[idx] = true
		}
		l.mu.Unlock()
		if a.Outcome == OK || ctx.Err() != nil {
			return
		}
		select {
		case <-time.After(250 * time.Millisecond): // a sender's retry delay
		case <-ctx.Done():
			return
		}
	}
}

func (l *Load) post(ctx context.Context, i, replica int, body []byte) Attempt {
	a := Attempt{Delivery: i, Replica: replica, Start: time.Now()}
	defer func() { a.End = time.Now() }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.cfg.URLs[replica]+"/webhooks/klingai", bytes.NewReader(body))
	if err != nil {
		a.Outcome = Other
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Kling-Signature", Sign(l.cfg.Secret, body))
	resp, err := l.cfg.Client.Do(req)
	a.End = time.Now()
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			a.Outcome = Timeout
		} else {
			a.Outcome = ConnError
		}
		return a
	}
	resp.Body.Close()
	a.Status = resp.StatusCode
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		a.Outcome = OK
	case resp.StatusCode == http.StatusServiceUnavailable:
		a.Outcome = Unavailable
	default:
		a.Outcome = Other
	}
	return a
}

// Sign returns the X-Kling-Signature header for body. It is written here
// rather than taken from klingfan's verifier, so a bug there cannot make
// the load agree with it.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Acknowledged returns the deliveries at least one attempt of which was
// answered 2xx.
func (l *Load) Acknowledged() []checker.Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []checker.Delivery
	for i, d := range l.sent {
		if l.acked[i] {
			out = append(out, d)
		}
	}
	return out
}

// Sent is the number of deliveries started.
func (l *Load) Sent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sent)
}

// Attempts returns every attempt so far.
func (l *Load) Attempts() []Attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Attempt(nil), l.attempts...)
}
