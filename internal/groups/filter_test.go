package groups_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

// postKind delivers one signed seed-shape event about job, whose kind the
// gateway reads from the event name ("audio.completed": JOB_KIND_AUDIO).
func (h *harness) postKind(kind, job, model string) {
	h.t.Helper()
	body := fmt.Appendf(nil, `{"event":"%s.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":%q,"model":%q,"status":"completed","progress":100}}`, kind, job, model)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	hdr := http.Header{"X-Kling-Signature": {"sha256=" + hex.EncodeToString(mac.Sum(nil))}}
	if code, out := h.srv.Post(h.t, "/webhooks/klingai", hdr, body); code != http.StatusOK {
		h.t.Fatalf("post %s: status %d: %s", job, code, out)
	}
}

// TestGroupFilters: a group with job_kinds and a group with a CEL filter
// each receive exactly the matching events, and the events they reject
// are settled without a member, so neither group is left with pending or
// unacknowledged events.
func TestGroupFilters(t *testing.T) {
	h := start(t, "")
	cases := []struct {
		name string
		cg   *gatewayv1.ConsumerGroup
		want []string
	}{
		{"by kind", &gatewayv1.ConsumerGroup{JobKinds: []gatewayv1.JobKind{gatewayv1.JobKind_JOB_KIND_AUDIO}}, []string{"audio-1", "audio-2"}},
		{"by expression", &gatewayv1.ConsumerGroup{Filter: `event.job.model == "kling-v2-master" && event.job.kind == JOB_KIND_VIDEO`}, []string{"video-master"}},
		{"kind and expression", &gatewayv1.ConsumerGroup{
			JobKinds: []gatewayv1.JobKind{gatewayv1.JobKind_JOB_KIND_AUDIO},
			Filter:   `event.job.job_id.endsWith("-2")`,
		}, []string{"audio-2"}},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		ids[i] = fmt.Sprintf("filtered-%d", i)
		got := h.create(tc.cg, ids[i])
		if !slices.Equal(got.GetJobKinds(), tc.cg.GetJobKinds()) || got.GetFilter() != tc.cg.GetFilter() {
			t.Fatalf("%s: created %v, want the kinds and filter kept", tc.name, got)
		}
	}
	h.postKind("video", "video-1", "kling-v1")
	h.postKind("audio", "audio-1", "kling-audio-v1")
	h.postKind("video", "video-master", "kling-v2-master")
	h.postKind("audio", "audio-2", "kling-v2-master")
	h.postKind("image", "image-1", "kling-v2-master")

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			stream := h.consume(ctx, ids[i], 10)
			var got []string
			for len(got) < len(tc.want) {
				resp, err := stream.Recv()
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				got = append(got, resp.GetEvent().GetJob().GetJobId())
				if _, err := h.groups.AckEvents(ctx, &gatewayv1.AckEventsRequest{ConsumerGroupId: ids[i], AckIds: []string{resp.GetAckId()}}); err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("received %v, want %v", got, tc.want)
			}
			// Every event was pulled and settled, the rejected ones by the
			// member itself: nothing is left that could still be delivered.
			var last *gatewayv1.ConsumerGroup
			apptest.Eventually(t, 20*time.Second, "no pending or unacknowledged events", func() bool {
				resp, err := h.groups.GetConsumerGroup(ctx, &gatewayv1.GetConsumerGroupRequest{Id: ids[i]})
				if err != nil {
					t.Fatal(err)
				}
				last = resp.GetConsumerGroup()
				return last.GetPending() == 0 && last.GetAckPending() == 0
			})
			if last.GetRedelivered() != 0 || last.GetDeadLettered() != 0 {
				t.Errorf("redelivered %d, dead-lettered %d; want none", last.GetRedelivered(), last.GetDeadLettered())
			}
		})
	}
}

// TestGroupFilterUpdate: job_kinds and filter can be changed through the
// update mask, and members apply the new selection to later events.
func TestGroupFilterUpdate(t *testing.T) {
	h := start(t, "")
	h.create(&gatewayv1.ConsumerGroup{}, "retarget")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := h.groups.UpdateConsumerGroup(ctx, &gatewayv1.UpdateConsumerGroupRequest{
		ConsumerGroup: &gatewayv1.ConsumerGroup{Id: "retarget", JobKinds: []gatewayv1.JobKind{gatewayv1.JobKind_JOB_KIND_IMAGE}, Filter: `event.job.job_id != "image-skip"`},
		UpdateMask:    &fieldmaskpb.FieldMask{Paths: []string{"job_kinds", "filter"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cg := resp.GetConsumerGroup(); len(cg.GetJobKinds()) != 1 || cg.GetFilter() == "" {
		t.Fatalf("updated group %v, want job_kinds and filter set", cg)
	}
	stream := h.consume(ctx, "retarget", 10)
	h.postKind("video", "video-1", "kling-v1")
	h.postKind("image", "image-skip", "kling-v1")
	h.postKind("image", "image-1", "kling-v1")
	got, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if id := got.GetEvent().GetJob().GetJobId(); id != "image-1" {
		t.Errorf("first delivery %q, want image-1 (video-1 and image-skip filtered out)", id)
	}
}

// TestGroupFilterRefused: a group's bad kinds and expressions are refused
// with INVALID_ARGUMENT and the very reason Subscribe gives, with the
// position in the expression, on create and on update alike.
func TestGroupFilterRefused(t *testing.T) {
	h := start(t, "")
	h.create(&gatewayv1.ConsumerGroup{}, "exists")
	events := gatewayv1.NewEventServiceClient(h.srv.DialAdmin(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// subscribeError is what Subscribe says about the same selection.
	subscribeError := func(t *testing.T, kinds []gatewayv1.JobKind, filter string) *status.Status {
		t.Helper()
		stream, err := events.Subscribe(ctx, &gatewayv1.SubscribeRequest{JobKinds: kinds, Filter: filter})
		if err == nil {
			_, err = stream.Recv()
		}
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument {
			t.Fatalf("Subscribe: %v, want INVALID_ARGUMENT", err)
		}
		return st
	}
	for _, tc := range []struct {
		name    string
		kinds   []gatewayv1.JobKind
		filter  string
		wantPos string // a fragment the message must contain
	}{
		{"syntax error", nil, `event.job.model ==`, "line 1, column "},
		{"unknown field", nil, `event.job.colour == "red"`, "line 1, column "},
		{"not boolean", nil, `event.job.model`, "must be a boolean expression"},
		{"too costly", nil, `event.job.images.all(a, event.job.images.all(b, event.job.images.all(c, a.url + b.url == c.url)))`, "too costly"},
		{"unknown kind", []gatewayv1.JobKind{99}, "", "unknown job kind 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := subscribeError(t, tc.kinds, tc.filter)
			if !strings.Contains(want.Message(), tc.wantPos) {
				t.Fatalf("Subscribe said %q, want it to contain %q", want.Message(), tc.wantPos)
			}
			calls := map[string]func() error{
				"create": func() error {
					_, err := h.groups.CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{
						ConsumerGroup: &gatewayv1.ConsumerGroup{JobKinds: tc.kinds, Filter: tc.filter},
					})
					return err
				},
				"update": func() error {
					_, err := h.groups.UpdateConsumerGroup(ctx, &gatewayv1.UpdateConsumerGroupRequest{
						ConsumerGroup: &gatewayv1.ConsumerGroup{Id: "exists", JobKinds: tc.kinds, Filter: tc.filter},
						UpdateMask:    &fieldmaskpb.FieldMask{Paths: []string{"job_kinds", "filter"}},
					})
					return err
				},
			}
			for name, call := range calls {
				st := status.Convert(call())
				if st.Code() != codes.InvalidArgument || st.Message() != "consumer_group."+want.Message() {
					t.Errorf("%s: %s %q, want INVALID_ARGUMENT %q", name, st.Code(), st.Message(), "consumer_group."+want.Message())
				}
			}
		})
	}
	// The refused update left the group as it was.
	got, err := h.groups.GetConsumerGroup(ctx, &gatewayv1.GetConsumerGroupRequest{Id: "exists"})
	if err != nil {
		t.Fatal(err)
	}
	if cg := got.GetConsumerGroup(); len(cg.GetJobKinds()) != 0 || cg.GetFilter() != "" {
		t.Errorf("group after refused updates: %v, want no kinds and no filter", cg)
	}
}
