package normalize_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/normalize"
)

var (
	allFormats = []gatewayv1.SourceFormat{
		gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT,
		gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY,
		gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2,
	}
	allTypes = []struct {
		typ    gatewayv1.EventType
		status gatewayv1.JobStatus
	}{
		{gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED, gatewayv1.JobStatus_JOB_STATUS_SUBMITTED},
		{gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING, gatewayv1.JobStatus_JOB_STATUS_PROCESSING},
		{gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED},
		{gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED, gatewayv1.JobStatus_JOB_STATUS_FAILED},
		{gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED, gatewayv1.JobStatus_JOB_STATUS_CANCELLED},
	}
)

func TestSampleRoundTrip(t *testing.T) {
	now := time.Date(2026, 6, 10, 16, 39, 54, 151_987_654, time.FixedZone("CST", 8*3600))
	wantTime := time.UnixMilli(now.UnixMilli())
	for _, format := range allFormats {
		for _, tt := range allTypes {
			for _, jobID := range []string{"860123456789012345", "CjhMbGdXnAEAAAAAAfgVZQ", `odd/"id"<&>`} {
				name := format.String() + "/" + tt.typ.String() + "/" + jobID
				t.Run(name, func(t *testing.T) {
					body, err := normalize.Sample(format, tt.typ, jobID, now)
					if err != nil {
						t.Fatalf("Sample: %v", err)
					}
					var compact bytes.Buffer
					if err := json.Compact(&compact, body); err != nil {
						t.Fatalf("Sample produced invalid JSON: %v\n%s", err, body)
					}
					if !bytes.Equal(compact.Bytes(), body) {
						t.Errorf("Sample is not compact JSON:\n%s", body)
					}
					again, _ := normalize.Sample(format, tt.typ, jobID, now)
					if !bytes.Equal(again, body) {
						t.Errorf("Sample is not deterministic:\n%s\n%s", body, again)
					}

					ev, err := normalize.Parse(body)
					if err != nil {
						t.Fatalf("Parse(Sample): %v\n%s", err, body)
					}
					switch {
					case ev.GetSourceFormat() != format:
						t.Errorf("source_format = %v, want %v", ev.GetSourceFormat(), format)
					case ev.GetType() != tt.typ:
						t.Errorf("type = %v, want %v", ev.GetType(), tt.typ)
					case ev.GetJob().GetJobId() != jobID:
						t.Errorf("job_id = %q, want %q", ev.GetJob().GetJobId(), jobID)
					case ev.GetJob().GetStatus() != tt.status:
						t.Errorf("status = %v, want %v", ev.GetJob().GetStatus(), tt.status)
					case !ev.GetOccurredAt().AsTime().Equal(wantTime):
						t.Errorf("occurred_at = %v, want %v", ev.GetOccurredAt().AsTime(), wantTime)
					}
					if tt.typ == gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED {
						videos := ev.GetJob().GetVideos()
						if len(videos) != 1 || videos[0].GetUrl() == "" || videos[0].GetDuration().AsDuration() != 5100*time.Millisecond {
							t.Errorf("completed sample should carry one 5.1s video, got %v", videos)
						}
					}
				})
			}
		}
	}
}

func TestSampleErrors(t *testing.T) {
	now := time.Date(2026, 6, 10, 8, 39, 54, 0, time.UTC)
	tests := []struct {
		name   string
		format gatewayv1.SourceFormat
		typ    gatewayv1.EventType
		now    time.Time
	}{
		{"unspecified type", gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2, gatewayv1.EventType_EVENT_TYPE_UNSPECIFIED, now},
		{"unknown type", gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2, gatewayv1.EventType(42), now},
		{"unspecified format", gatewayv1.SourceFormat_SOURCE_FORMAT_UNSPECIFIED, gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, now},
		{"unknown format", gatewayv1.SourceFormat(9), gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, now},
		{"zero time", gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT, gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, time.Time{}},
		{"Unix epoch", gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY, gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, time.Unix(0, 0)},
		{"year 10000", gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT, gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := normalize.Sample(tt.format, tt.typ, "job", tt.now)
			if err == nil {
				t.Fatalf("Sample succeeded: %s", body)
			}
			if body != nil {
				t.Errorf("Sample returned a body with an error")
			}
			if errors.Is(err, normalize.ErrMalformed) || errors.Is(err, normalize.ErrUnknownShape) {
				t.Errorf("Sample error %v wraps a Parse sentinel", err)
			}
		})
	}
}

// ExampleSample shows the payload `klingctl example` prints.
func ExampleSample() {
	now := time.Date(2026, 6, 10, 8, 39, 54, 151_000_000, time.UTC)
	body, err := normalize.Sample(gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2,
		gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED, "1234567890", now)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(body))
	// Output:
	// {"id":"1234567890","status":"failed","message":"Failure to pass the risk control system","create_time":1781080762944,"update_time":1781080794151}
}

// TestSampleKinds checks that a sample exists for every job kind in every
// shape Kling sends it in, that a completed one normalizes fully with that
// kind and with outputs in the kind's field, and that the legacy shape is
// refused for the kinds Kling sends only in the new one.
func TestSampleKinds(t *testing.T) {
	now := time.Date(2026, 11, 28, 1, 2, 3, 0, time.UTC)
	outputs := map[gatewayv1.JobKind]func(*gatewayv1.Job) int{
		gatewayv1.JobKind_JOB_KIND_VIDEO:    func(j *gatewayv1.Job) int { return len(j.GetVideos()) },
		gatewayv1.JobKind_JOB_KIND_IMAGE:    func(j *gatewayv1.Job) int { return len(j.GetImages()) },
		gatewayv1.JobKind_JOB_KIND_AUDIO:    func(j *gatewayv1.Job) int { return len(j.GetAudios()) },
		gatewayv1.JobKind_JOB_KIND_VOICE:    func(j *gatewayv1.Job) int { return len(j.GetVoices()) },
		gatewayv1.JobKind_JOB_KIND_ELEMENT:  func(j *gatewayv1.Job) int { return len(j.GetElements()) },
		gatewayv1.JobKind_JOB_KIND_SUBTITLE: func(j *gatewayv1.Job) int { return len(j.GetSubtitles()) },
	}
	legacyOnlyV2 := map[gatewayv1.JobKind]bool{gatewayv1.JobKind_JOB_KIND_SUBTITLE: true}
	for kind, count := range outputs {
		for _, format := range []gatewayv1.SourceFormat{
			gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT,
			gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY,
			gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2,
		} {
			t.Run(kind.String()+"/"+format.String(), func(t *testing.T) {
				body, err := normalize.SampleKind(format, kind, gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, "job-1", now)
				if format == gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY && legacyOnlyV2[kind] {
					if err == nil {
						t.Fatalf("legacy sample of %v: %s, want refused", kind, body)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				out, err := normalize.Normalize(body)
				if err != nil || out.Incomplete != nil {
					t.Fatalf("Normalize: %v, incomplete %v", err, out.Incomplete)
				}
				job := out.Event.GetJob()
				if job.GetKind() != kind {
					t.Errorf("kind = %v, want %v in %s", job.GetKind(), kind, body)
				}
				if format != gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT && count(job) == 0 {
					t.Errorf("no %v outputs in %s", kind, body)
				}
				if format != gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT && len(job.GetBilling()) == 0 {
					t.Errorf("no billing in %s", body)
				}
			})
		}
	}
}
