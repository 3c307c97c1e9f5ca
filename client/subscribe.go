package client

import (
	"context"
	"errors"
	"fmt"
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

// Load implements [CursorStore]; a missing file means no cursor.
func (f FileCursor) Load(context.Context) (uint64, bool, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("client: read cursor: %w", err)
	}
	seq, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("client: cursor file %s: %w", f.Path, err)
	}
	return seq, true, nil
}

// Save implements [CursorStore].
func (f FileCursor) Save(_ context.Context, seq uint64) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), "."+filepath.Base(f.Path)+".*")
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
	return nil
}

// A SubscribeOption configures [Client.Subscribe].
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	cursor  CursorStore
	backoff Backoff
}

// WithCursorStore makes Subscribe resume after the cursor saved in cs (it
// overrides the request's start) and save the sequence of every event the
// handler completes.
func WithCursorStore(cs CursorStore) SubscribeOption {
	return func(o *subscribeOptions) { o.cursor = cs }
}

// WithSubscribeBackoff sets the reconnect backoff; [DefaultBackoff] by
// default.
func WithSubscribeBackoff(b Backoff) SubscribeOption {
	return func(o *subscribeOptions) { o.backoff = b }
}

// Subscribe streams the events req selects to h, one at a time in sequence
// order, until ctx ends (it then returns ctx's error), h fails (it returns
// h's error, and the failed event is not marked handled) or the server
// refuses the request. When the stream breaks it reconnects with jittered
// backoff and resumes after the last event h completed, or, before any,
// after the position the server reported when the stream went live, so no
// event is missed and none handled twice within one call.
func (c *Client) Subscribe(ctx context.Context, req *gatewayv1.SubscribeRequest, h Handler, opts ...SubscribeOption) error {
	o := subscribeOptions{backoff: DefaultBackoff}
	for _, opt := range opts {
		opt(&o)
	}
	req = proto.CloneOf(req)
	if o.cursor != nil {
		seq, ok, err := o.cursor.Load(ctx)
		if err != nil {
			return err
		}
		if ok {
			req.Start = &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: seq}
		}
	}
	failures := 0
	for {
		progressed, err := c.subscribeOnce(ctx, req, h, o.cursor)
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
		if progressed {
			failures = 0
		}
		failures++
		if err := sleep(ctx, o.backoff.Delay(failures)); err != nil {
			return err
		}
	}
}

// handlerError carries a handler's failure out of the stream loop.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }

// subscribeOnce runs one stream, moving req's start forward as events are
// handled; progressed reports whether the stream went live.
func (c *Client) subscribeOnce(ctx context.Context, req *gatewayv1.SubscribeRequest, h Handler, cursor CursorStore) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.events.Subscribe(ctx, req)
	if err != nil {
		return false, err
	}
	md, err := stream.Header()
	if err != nil {
		return false, err
	}
	if _, ok := req.GetStart().(*gatewayv1.SubscribeRequest_AfterSequence); !ok {
		// Resume after the head the stream went live at, so events
		// appended while reconnecting are not lost.
		if head, ok := headSequence(md); ok {
			req.Start = &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: head}
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return true, err
		}
		ev := resp.GetEvent()
		if err := h(ctx, ev); err != nil {
			return true, &handlerError{err: err}
		}
		req.Start = &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: ev.GetSequence()}
		if cursor != nil {
			if err := cursor.Save(ctx, ev.GetSequence()); err != nil {
				return true, &handlerError{err: err}
			}
		}
	}
}

func headSequence(md metadata.MD) (uint64, bool) {
	v := md.Get(headSequenceHeader)
	if len(v) != 1 {
		return 0, false
	}
	seq, err := strconv.ParseUint(v[0], 10, 64)
	return seq, err == nil
}
