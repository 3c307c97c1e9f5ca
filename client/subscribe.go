package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// headSequenceHeader is the Subscribe response header that marks a stream
// live; its value is the sequence the stream starts after.
const headSequenceHeader = "klingfan-head-sequence"

// A CursorStore keeps the sequence of the last event a subscriber handled,
// so that a restarted process resumes after it.
type CursorStore interface {
	// Load returns the saved sequence, or ok false when none was saved.
	Load(ctx context.Context) (seq uint64, ok bool, err error)
	// Save records seq as handled.
	Save(ctx context.Context, seq uint64) error
}

// FileCursor is a [CursorStore] in one file holding the sequence in
// decimal. Save writes a temporary file in the same directory, syncs it and
// renames it over the old one, so a crash leaves the old cursor or the new
// one, never a torn file.
type FileCursor struct {
	// Path is the cursor file; its directory must exist.
	Path string
}

// Load implements [CursorStore]; a missing or empty file means no cursor
// (a first run).
func (f FileCursor) Load(context.Context) (uint64, bool, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("client: read cursor: %w", err)
	}
	text := strings.TrimSpace(string(b))
	if text == "" {
		return 0, false, nil
	}
	seq, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("client: cursor file %s: %q is not a sequence number", f.Path, text)
	}
	return seq, true, nil
}

// Save implements [CursorStore]. It syncs the directory after the rename
// too, so the new cursor survives a power loss; a file system that cannot
// sync a directory has still renamed the file, so that is not an error.
func (f FileCursor) Save(_ context.Context, seq uint64) error {
	dir := filepath.Dir(f.Path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".*")
	if err != nil {
		return fmt.Errorf("client: save cursor: %w", err)
	}
	_, werr := tmp.WriteString(strconv.FormatUint(seq, 10) + "\n")
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("client: save cursor: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("client: save cursor: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// A SubscribeOption configures [Client.Subscribe].
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	cursor  CursorStore
	backoff Backoff
	status  func(StreamStatus) error
}

// WithCursorStore makes Subscribe resume after the cursor saved in cs (it
// overrides the request's start) and save the sequence of every event the
// handler completes. When cs holds no cursor yet, Subscribe also saves the
// position the first stream went live at, so a process stopped before its
// first event still resumes without a gap.
func WithCursorStore(cs CursorStore) SubscribeOption {
	return func(o *subscribeOptions) { o.cursor = cs }
}

// WithSubscribeBackoff sets the reconnect backoff; [DefaultBackoff] by
// default.
func WithSubscribeBackoff(b Backoff) SubscribeOption {
	return func(o *subscribeOptions) { o.backoff = b }
}

// WithStreamStatus calls f, on the goroutine that called Subscribe, each
// time a stream goes live and each time one ends with an error worth
// reconnecting after, so a program can tell its user what it is doing.
// When f returns an error, Subscribe stops and returns it; for an ended
// stream that means not reconnecting: a command-line tool, for example,
// fails when its very first connection does ([StreamStatus.EverLive]
// false).
func WithStreamStatus(f func(StreamStatus) error) SubscribeOption {
	return func(o *subscribeOptions) { o.status = f }
}

// StreamStatus is a change in the connection of [Client.Subscribe], as
// reported to the function given with [WithStreamStatus].
type StreamStatus struct {
	// Ended is false when a stream went live (the server sends its
	// events from Position on) and true when one ended with Err.
	Ended bool
	// Request is the request the stream was opened with; its Start says
	// where the stream began (a reconnect resumes after a sequence).
	Request *gatewayv1.SubscribeRequest
	// Position is, for a live stream, the sequence it starts after.
	Position uint64
	// EverLive reports whether a stream of this call had gone live
	// before: on a live stream, true means it is a reconnect; on an ended
	// one, the stream that ended counts.
	EverLive bool
	// WasLive reports, for an ended stream, whether it had gone live;
	// false means the server could not be reached or refused the stream.
	WasLive bool
	// Err is why the stream ended: a gRPC status, or io.EOF when the
	// server closed it without one.
	Err error
}

// Subscribe streams the events req selects to h, one at a time in sequence
// order, until ctx ends (it then returns ctx's error), h fails (it returns
// h's error, and the failed event is not marked handled) or the server
// refuses the request. When the stream breaks it reconnects with jittered
// backoff and resumes after the last event h completed, or, before any,
// after the position the server reported when the stream went live, so no
// event is missed and none handled twice within one call.
func (c *Client) Subscribe(ctx context.Context, req *gatewayv1.SubscribeRequest, h Handler, opts ...SubscribeOption) error {
	s := &subscriber{c: c, h: h, o: subscribeOptions{backoff: DefaultBackoff}, req: proto.CloneOf(req)}
	for _, opt := range opts {
		opt(&s.o)
	}
	if s.o.cursor != nil {
		seq, ok, err := s.o.cursor.Load(ctx)
		if err != nil {
			return err
		}
		if ok {
			s.req.Start = &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: seq}
			s.saved = true
		}
	}
	failures := 0
	for {
		live, err := s.stream(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var he *handlerError
		if errors.As(err, &he) {
			return he.err
		}
		if !Retryable(err) {
			return err
		}
		if err == nil {
			err = io.EOF
		}
		if s.o.status != nil {
			if serr := s.o.status(StreamStatus{Ended: true, Request: proto.CloneOf(s.req), EverLive: s.everLive, WasLive: live, Err: err}); serr != nil {
				return serr
			}
		}
		if live {
			failures = 0
		}
		failures++
		if err := sleep(ctx, s.o.backoff.Delay(failures)); err != nil {
			return err
		}
		// Connect now rather than after gRPC's own backoff: this loop
		// paces the attempts.
		c.conn.ResetConnectBackoff()
	}
}

// subscriber is one Subscribe call: the request, moved forward as events
// are handled, and what the status function is told.
type subscriber struct {
	c   *Client
	h   Handler
	o   subscribeOptions
	req *gatewayv1.SubscribeRequest
	// everLive is set once a stream went live; saved once the cursor
	// store holds a position for this subscription.
	everLive, saved bool
}

// handlerError carries a handler's failure out of the stream loop.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }

// stream runs one stream, moving the request's start forward as events are
// handled; live reports whether it went live.
func (s *subscriber) stream(ctx context.Context) (live bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.c.events.Subscribe(ctx, s.req)
	if err != nil {
		return false, err
	}
	md, err := stream.Header()
	if err != nil {
		// The stream's status is the better error; Recv returns it.
		if _, rerr := stream.Recv(); rerr != nil {
			return false, rerr
		}
		return false, err
	}
	if head, ok := headSequence(md); ok {
		live = true
		if err := s.wentLive(ctx, head); err != nil {
			return live, err
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return live, err
		}
		ev := resp.GetEvent()
		if !live {
			// A server that sent no position went live all the same.
			live = true
			if err := s.wentLive(ctx, ev.GetSequence()-1); err != nil {
				return live, err
			}
		}
		if err := s.h(ctx, ev); err != nil {
			return live, &handlerError{err: err}
		}
		s.req.Start = &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: ev.GetSequence()}
		if s.o.cursor != nil {
			if err := s.o.cursor.Save(ctx, ev.GetSequence()); err != nil {
				return live, &handlerError{err: err}
			}
			s.saved = true
		}
	}
}

// wentLive records that a stream went live at position: a reconnect
// resumes after it until an event is handled, and a cursor store that held
// nothing holds it from now on.
func (s *subscriber) wentLive(ctx context.Context, position uint64) error {
	if s.o.status != nil {
		if err := s.o.status(StreamStatus{Request: proto.CloneOf(s.req), Position: position, EverLive: s.everLive}); err != nil {
			return &handlerError{err: err}
		}
	}
	s.everLive = true
	s.req.Start = &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: position}
	if s.o.cursor != nil && !s.saved {
		if err := s.o.cursor.Save(ctx, position); err != nil {
			return &handlerError{err: err}
		}
		s.saved = true
	}
	return nil
}

func headSequence(md metadata.MD) (uint64, bool) {
	v := md.Get(headSequenceHeader)
	if len(v) != 1 {
		return 0, false
	}
	seq, err := strconv.ParseUint(v[0], 10, 64)
	return seq, err == nil
}
