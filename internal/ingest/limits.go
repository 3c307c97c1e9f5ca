package ingest

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limits holds one token bucket per registration, so one noisy or hostile
// sender cannot starve the others. Buckets are created on first use and
// live as long as the process; their number is bounded by the number of
// registrations, because unknown ids are refused before a bucket is made.
type limits struct {
	perSecond rate.Limit
	burst     int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter // guarded by mu
}

func newLimits(perSecond float64, burst int) *limits {
	if perSecond <= 0 {
		return nil
	}
	if burst < 1 {
		burst = max(1, int(perSecond))
	}
	return &limits{perSecond: rate.Limit(perSecond), burst: burst, buckets: make(map[string]*rate.Limiter)}
}

// bucket returns webhookID's bucket, creating it on first use.
func (l *limits) bucket(webhookID string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[webhookID]
	if !ok {
		b = rate.NewLimiter(l.perSecond, l.burst)
		l.buckets[webhookID] = b
	}
	return b
}

// check reports whether webhookID has a token left at now, without taking
// it; when none is left it reports how long until one is. The token is
// taken by charge once the delivery turns out to be new, so duplicates
// cost nothing. Deliveries in flight together may overdraw the bucket by
// their number, which the next ones repay.
func (l *limits) check(webhookID string, now time.Time) (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	b := l.bucket(webhookID)
	if b.TokensAt(now) >= 1 {
		return 0, true
	}
	r := b.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return max(wait, time.Second), false
}

// charge takes a token for a delivery that was logged.
func (l *limits) charge(webhookID string, now time.Time) {
	if l == nil {
		return
	}
	l.bucket(webhookID).ReserveN(now, 1)
}
