package jobstate_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/jobstate"
)

var t0 = time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)

// event builds an event for job "j" at seq whose sender time is t0+at.
func event(seq uint64, status gatewayv1.JobStatus, at time.Duration, edit ...func(*gatewayv1.Job)) *gatewayv1.Event {
	job := &gatewayv1.Job{JobId: "j", Status: status, RawStatus: status.String(), UpdatedAt: timestamppb.New(t0.Add(at))}
	for _, e := range edit {
		e(job)
	}
	return &gatewayv1.Event{
		Sequence: seq, WebhookId: "w", Type: gatewayv1.EventType(status), Job: job,
		ReceivedAt: timestamppb.New(t0.Add(time.Duration(seq) * time.Second)),
	}
}

const (
	submitted  = gatewayv1.JobStatus_JOB_STATUS_SUBMITTED
	processing = gatewayv1.JobStatus_JOB_STATUS_PROCESSING
	succeeded  = gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED
	failed     = gatewayv1.JobStatus_JOB_STATUS_FAILED
	unknown    = gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED
)

func withVideo(j *gatewayv1.Job) {
	j.Videos = []*gatewayv1.Video{{Url: "https://cdn.example/v.mp4", Duration: durationpb.New(5 * time.Second)}}
}
func withModel(j *gatewayv1.Job)   { j.Model = "kling-v2-master"; j.UnitsDeducted = "5" }
func withoutTime(j *gatewayv1.Job) { j.UpdatedAt = nil }

func TestFold(t *testing.T) {
	tests := []struct {
		name     string
		events   []*gatewayv1.Event
		status   gatewayv1.JobStatus
		outcomes []jobstate.Outcome
		check    func(t *testing.T, st *gatewayv1.JobState)
	}{
		{
			name:     "in order",
			events:   []*gatewayv1.Event{event(1, submitted, 0), event(2, processing, time.Second), event(3, succeeded, 2*time.Second, withVideo)},
			status:   succeeded,
			outcomes: []jobstate.Outcome{jobstate.Applied, jobstate.Applied, jobstate.Applied},
		},
		{
			name:     "older processing after succeeded is recorded, not applied",
			events:   []*gatewayv1.Event{event(1, succeeded, 2*time.Second, withVideo), event(2, processing, time.Second)},
			status:   succeeded,
			outcomes: []jobstate.Outcome{jobstate.Applied, jobstate.Recorded},
			check: func(t *testing.T, st *gatewayv1.JobState) {
				if st.GetLastSequence() != 2 || st.GetEventCount() != 2 {
					t.Errorf("last_sequence %d, event_count %d; want 2, 2", st.GetLastSequence(), st.GetEventCount())
				}
				if st.GetLastEventType() != gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED {
					t.Errorf("last_event_type %s", st.GetLastEventType())
				}
			},
		},
		{
			name:     "terminal is final even for a newer delivery",
			events:   []*gatewayv1.Event{event(1, failed, time.Second), event(2, processing, time.Hour), event(3, succeeded, time.Hour)},
			status:   failed,
			outcomes: []jobstate.Outcome{jobstate.Applied, jobstate.Recorded, jobstate.Recorded},
		},
		{
			name:     "stale non-terminal delivery does not go back",
			events:   []*gatewayv1.Event{event(1, processing, 2*time.Second), event(2, submitted, time.Second)},
			status:   processing,
			outcomes: []jobstate.Outcome{jobstate.Applied, jobstate.Recorded},
		},
		{
			name:     "terminal lands on a non-terminal state whatever its time",
			events:   []*gatewayv1.Event{event(1, processing, time.Hour), event(2, succeeded, time.Second)},
			status:   succeeded,
			outcomes: []jobstate.Outcome{jobstate.Applied, jobstate.Applied},
		},
		{
			name:     "no update time: log order decides",
			events:   []*gatewayv1.Event{event(1, processing, time.Hour), event(2, submitted, 0, withoutTime)},
			status:   submitted,
			outcomes: []jobstate.Outcome{jobstate.Applied, jobstate.Applied},
		},
		{
			name:     "replayed sequence is skipped",
			events:   []*gatewayv1.Event{event(1, submitted, 0), event(2, processing, time.Second), event(2, processing, time.Second), event(1, submitted, 0)},
			status:   processing,
			outcomes: []jobstate.Outcome{jobstate.Applied, jobstate.Applied, jobstate.Skipped, jobstate.Skipped},
			check: func(t *testing.T, st *gatewayv1.JobState) {
				if st.GetEventCount() != 2 {
					t.Errorf("event_count %d, want 2", st.GetEventCount())
				}
			},
		},
		{
			name:     "fields an event omits keep earlier values",
			events:   []*gatewayv1.Event{event(1, submitted, 0, withModel), event(2, succeeded, time.Second, withVideo)},
			status:   succeeded,
			outcomes: []jobstate.Outcome{jobstate.Applied, jobstate.Applied},
			check: func(t *testing.T, st *gatewayv1.JobState) {
				if st.GetJob().GetModel() != "kling-v2-master" || st.GetJob().GetUnitsDeducted() != "5" || len(st.GetJob().GetVideos()) != 1 {
					t.Errorf("merged job %v", st.GetJob())
				}
				if st.GetFirstSeenTime().AsTime() != t0.Add(time.Second) || st.GetUpdateTime().AsTime() != t0.Add(2*time.Second) {
					t.Errorf("first seen %v, update time %v", st.GetFirstSeenTime().AsTime(), st.GetUpdateTime().AsTime())
				}
			},
		},
		{
			name:     "outputs survive a later event without them",
			events:   []*gatewayv1.Event{event(1, processing, 0, withVideo), event(2, processing, time.Second)},
			status:   processing,
			outcomes: []jobstate.Outcome{jobstate.Applied, jobstate.Applied},
			check: func(t *testing.T, st *gatewayv1.JobState) {
				if len(st.GetJob().GetVideos()) != 1 {
					t.Errorf("videos lost: %v", st.GetJob())
				}
			},
		},
		{
			name:     "unknown status keeps the known one",
			events:   []*gatewayv1.Event{event(1, processing, 0), event(2, unknown, time.Second)},
			status:   processing,
			outcomes: []jobstate.Outcome{jobstate.Applied, jobstate.Applied},
			check: func(t *testing.T, st *gatewayv1.JobState) {
				if st.GetJob().GetRawStatus() != processing.String() {
					t.Errorf("raw status %q belongs to another status", st.GetJob().GetRawStatus())
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st *gatewayv1.JobState
			for i, ev := range tt.events {
				prev := st
				var got jobstate.Outcome
				st, got = jobstate.Fold(st, ev)
				if got != tt.outcomes[i] {
					t.Errorf("event %d (seq %d, %s): outcome %d, want %d", i, ev.GetSequence(), ev.GetJob().GetStatus(), got, tt.outcomes[i])
				}
				if prev != nil && got == jobstate.Skipped && st != prev {
					t.Errorf("event %d: a skipped event produced a new state", i)
				}
			}
			if st.GetJob().GetStatus() != tt.status {
				t.Errorf("status %s, want %s", st.GetJob().GetStatus(), tt.status)
			}
			if tt.check != nil {
				tt.check(t, st)
			}
		})
	}
}

// Folding never modifies the previous state, so a caller's copy (the one
// read from the bucket) stays what it read; nor does anything done to the
// new state afterwards by the next fold, though the two share the
// sub-messages neither changes.
func TestFoldLeavesPreviousStateAlone(t *testing.T) {
	withEndpoint := func(j *gatewayv1.Job) { j.CreateEndpoint = "/v1/videos/text2video" }
	tests := []struct {
		name   string
		before []*gatewayv1.Event
		next   *gatewayv1.Event
		want   jobstate.Outcome
	}{
		{"applied", []*gatewayv1.Event{event(1, processing, 0)}, event(2, succeeded, time.Second, withVideo), jobstate.Applied},
		{"recorded after the outcome", []*gatewayv1.Event{event(1, succeeded, 0, withVideo)}, event(2, processing, time.Second), jobstate.Recorded},
		{"recorded, stale", []*gatewayv1.Event{event(1, processing, time.Second)}, event(2, processing, 0), jobstate.Recorded},
		{"recorded with the create path", []*gatewayv1.Event{event(1, succeeded, 0, withVideo)}, event(2, succeeded, time.Second, withEndpoint), jobstate.Recorded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st *gatewayv1.JobState
			for _, ev := range tt.before {
				st, _ = jobstate.Fold(st, ev)
			}
			before := st.String()
			next, outcome := jobstate.Fold(st, tt.next)
			if outcome != tt.want {
				t.Fatalf("outcome %v, want %v", outcome, tt.want)
			}
			afterOne := next.String()
			jobstate.Fold(next, event(3, failed, 2*time.Second, withEndpoint))
			if st.String() != before {
				t.Errorf("previous state changed:\n%s\n%s", before, st.String())
			}
			if next.String() != afterOne {
				t.Errorf("state changed by the next fold:\n%s\n%s", afterOne, next.String())
			}
			if next.GetLastSequence() != 2 || next.GetEventCount() != st.GetEventCount()+1 {
				t.Errorf("next state counts %d events through %d, want %d through 2", next.GetEventCount(), next.GetLastSequence(), st.GetEventCount()+1)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		name string
		job  *gatewayv1.Job
		want time.Duration
		ok   bool
	}{
		{"created to completed", &gatewayv1.Job{CreatedAt: timestamppb.New(t0), CompletedAt: timestamppb.New(t0.Add(90 * time.Second))}, 90 * time.Second, true},
		{"created to updated", &gatewayv1.Job{CreatedAt: timestamppb.New(t0), UpdatedAt: timestamppb.New(t0.Add(time.Minute))}, time.Minute, true},
		{"first seen to last update", &gatewayv1.Job{}, 3 * time.Second, true},
		{"end before start", &gatewayv1.Job{CreatedAt: timestamppb.New(t0.Add(time.Hour))}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &gatewayv1.JobState{Job: tt.job, FirstSeenTime: timestamppb.New(t0), UpdateTime: timestamppb.New(t0.Add(3 * time.Second))}
			got, ok := jobstate.Duration(st)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Errorf("Duration = %s, %v; want %s, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// BenchmarkFold folds one more event into a job's state: one that changes
// the job and one that only counts (the job is finished).
func BenchmarkFold(b *testing.B) {
	running, _ := jobstate.Fold(nil, event(1, processing, 0, withVideo, withModel))
	done, _ := jobstate.Fold(running, event(2, succeeded, time.Second, withVideo, withModel))
	for _, bm := range []struct {
		name string
		prev *gatewayv1.JobState
		ev   *gatewayv1.Event
	}{
		{"applied", running, event(2, succeeded, time.Second, withVideo, withModel)},
		{"recorded", done, event(3, succeeded, 2*time.Second, withVideo, withModel)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				jobstate.Fold(bm.prev, bm.ev)
			}
		})
	}
}
