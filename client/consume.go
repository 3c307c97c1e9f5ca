package client

import (
	"context"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// A ConsumeOption configures [Client.Consume].
type ConsumeOption func(*consumeOptions)

type consumeOptions struct {
	concurrency int
	maxInFlight int
	retry       Backoff
	reconnect   Backoff
}

// WithConcurrency runs up to n handlers at once (default 1). Events of one
// job may then be handled concurrently.
func WithConcurrency(n int) ConsumeOption {
	return func(o *consumeOptions) { o.concurrency = max(n, 1) }
}

// WithMaxInFlight sets how many unacknowledged events the server hands
// this member at once (default twice the concurrency, so the next event is
// ready when a handler finishes). At most 1,000.
func WithMaxInFlight(n int) ConsumeOption {
	return func(o *consumeOptions) { o.maxInFlight = n }
}

// WithRetryBackoff sets how long a failed event waits before it is
// delivered again, by delivery attempt; 1s doubling to 1m by default. The
// group's max_deliveries still bounds the attempts: after it the event goes
// to the group's dead letters.
func WithRetryBackoff(b Backoff) ConsumeOption {
	return func(o *consumeOptions) { o.retry = b }
}

// WithConsumeReconnectBackoff sets the reconnect backoff; [DefaultBackoff]
// by default.
func WithConsumeReconnectBackoff(b Backoff) ConsumeOption {
	return func(o *consumeOptions) { o.reconnect = b }
}

// maxAckBatch is the most ack ids sent in one AckEvents call.
const maxAckBatch = 500

// settlement is a handler's verdict on one delivery.
type settlement struct {
	ackID string
	delay time.Duration
	nack  bool
}

// Consume joins consumer group groupID and hands each event the group gives
// this member to h: when h returns nil the event is acknowledged (done for
// the whole group); when it fails the event is rejected and delivered again,
// to any member, after the retry backoff. It reconnects with jittered
// backoff when the stream breaks and returns when ctx ends (ctx's error) or
// the server refuses (an unknown group, a token without the subscribe
// scope). Acknowledgements are batched; those pending when ctx ends are
// still sent.
func (c *Client) Consume(ctx context.Context, groupID string, h Handler, opts ...ConsumeOption) error {
	o := consumeOptions{concurrency: 1, retry: Backoff{Min: time.Second, Max: time.Minute}, reconnect: DefaultBackoff}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxInFlight <= 0 {
		o.maxInFlight = min(2*o.concurrency, 1000)
	}

	work := make(chan *gatewayv1.ConsumeResponse)
	settle := make(chan settlement, o.maxInFlight)
	var workers sync.WaitGroup
	for range o.concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for d := range work {
				s := settlement{ackID: d.GetAckId()}
				if err := h(ctx, d.GetEvent()); err != nil {
					s.nack, s.delay = true, o.retry.Delay(int(d.GetDeliveryAttempt()))
				}
				settle <- s
			}
		}()
	}
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		c.ackLoop(groupID, settle)
	}()
	defer func() {
		close(work)
		workers.Wait()
		close(settle)
		<-ackerDone
	}()

	failures := 0
	for {
		live, err := c.consumeOnce(ctx, groupID, o.maxInFlight, work)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !Retryable(err) {
			return err
		}
		if live {
			failures = 0
		}
		failures++
		if err := sleep(ctx, o.reconnect.Delay(failures)); err != nil {
			return err
		}
	}
}

// consumeOnce runs one Consume stream, passing deliveries to work.
func (c *Client) consumeOnce(ctx context.Context, groupID string, maxInFlight int, work chan<- *gatewayv1.ConsumeResponse) (live bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.groups.Consume(ctx, &gatewayv1.ConsumeRequest{ConsumerGroupId: groupID, MaxInFlight: int32(maxInFlight)})
	if err != nil {
		return false, err
	}
	if _, err := stream.Header(); err != nil {
		return false, err
	}
	for {
		d, err := stream.Recv()
		if err != nil {
			return true, err
		}
		select {
		case work <- d:
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

// ackLoop sends settlements until settle is closed, batching acks. It
// uses its own context: acks for handled events are worth sending even
// while Consume is returning.
func (c *Client) ackLoop(groupID string, settle <-chan settlement) {
	var acks []string
	flush := func() {
		if len(acks) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A lost ack is not lost work: the event comes back after the
		// group's ack_wait and is handled again.
		_, _ = c.groups.AckEvents(ctx, &gatewayv1.AckEventsRequest{ConsumerGroupId: groupID, AckIds: acks})
		acks = acks[:0]
	}
	for {
		s, ok := <-settle
		if !ok {
			flush()
			return
		}
		for more := true; more; {
			if s.nack {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, _ = c.groups.AckEvents(ctx, &gatewayv1.AckEventsRequest{ConsumerGroupId: groupID, NackIds: []string{s.ackID}, NackDelay: durationpb.New(s.delay)})
				cancel()
			} else {
				acks = append(acks, s.ackID)
			}
			if len(acks) >= maxAckBatch {
				flush()
			}
			// Take whatever else is ready into the same batch.
			select {
			case s, ok = <-settle:
				if !ok {
					flush()
					return
				}
			default:
				more = false
			}
		}
		flush()
	}
}
