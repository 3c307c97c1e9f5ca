package normalize_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/normalize"
)

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("x", 500)
	tests := []struct {
		name string
		body string
		want error
	}{
		{"empty body", ``, normalize.ErrMalformed},
		{"whitespace only", " \n\t ", normalize.ErrMalformed},
		{"not JSON", `task_id=1&task_status=succeed`, normalize.ErrMalformed},
		{"truncated object", `{"id":"1","status":"succ`, normalize.ErrMalformed},
		{"trailing garbage", `{"id":"1","status":"succeeded"} x`, normalize.ErrMalformed},
		{"two objects", `{"id":"1","status":"succeeded"}{}`, normalize.ErrMalformed},
		{"JSON array", `[{"id":"1","status":"succeeded"}]`, normalize.ErrMalformed},
		{"JSON string", `"video.completed"`, normalize.ErrMalformed},
		{"JSON null", `null`, normalize.ErrMalformed},
		{"JSON number", `42`, normalize.ErrMalformed},
		{"empty object", `{}`, normalize.ErrUnknownShape},
		{"unrelated object", `{"hello":"world"}`, normalize.ErrUnknownShape},
		{"event without data", `{"event":"video.completed","timestamp":"2026-06-10T08:39:54Z"}`, normalize.ErrUnknownShape},
		{"task_id without task_status", `{"task_id":"abc","created_at":1781080794151}`, normalize.ErrUnknownShape},
		{"id without status", `{"id":"abc","message":"hi"}`, normalize.ErrUnknownShape},
		{"event not a string", `{"event":5,"data":{}}`, normalize.ErrMalformed},
		{"event null", `{"event":null,"data":{}}`, normalize.ErrMalformed},
		{"data not an object", `{"event":"video.completed","data":"x"}`, normalize.ErrMalformed},
		{"data null", `{"event":"video.completed","data":null}`, normalize.ErrMalformed},
		{"task_status number", `{"task_id":"abc","task_status":5}`, normalize.ErrMalformed},
		{"task_id boolean", `{"task_id":true,"task_status":"succeed"}`, normalize.ErrMalformed},
		{"task_id null", `{"task_id":null,"task_status":"succeed"}`, normalize.ErrMalformed},
		{"task_id fractional", `{"task_id":1.5,"task_status":"succeed"}`, normalize.ErrMalformed},
		{"status object", `{"id":"abc","status":{"code":3}}`, normalize.ErrMalformed},
		{"id array", `{"id":["abc"],"status":"succeeded"}`, normalize.ErrMalformed},
		{"bad RFC 3339 timestamp", `{"event":"video.completed","timestamp":"10/06/2026 08:39","data":{}}`, normalize.ErrMalformed},
		{"RFC 3339 without zone", `{"event":"video.completed","timestamp":"2026-06-10T08:39:54","data":{}}`, normalize.ErrMalformed},
		{"RFC 3339 year zero", `{"event":"video.completed","timestamp":"0000-01-01T00:00:00Z","data":{}}`, normalize.ErrMalformed},
		{"bad completed_at", `{"event":"video.completed","data":{"completed_at":"yesterday"}}`, normalize.ErrMalformed},
		{"timestamp number", `{"event":"video.completed","timestamp":1781080794,"data":{}}`, normalize.ErrMalformed},
		{"bad duration string", `{"task_id":"a","task_status":"succeed","task_result":{"videos":[{"url":"u","duration":"abc"}]}}`, normalize.ErrMalformed},
		{"negative duration", `{"task_id":"a","task_status":"succeed","task_result":{"videos":[{"url":"u","duration":"-5.1"}]}}`, normalize.ErrMalformed},
		{"negative duration number", `{"id":"a","status":"succeeded","outputs":[{"type":"video","duration":-1}]}`, normalize.ErrMalformed},
		{"absurd duration", `{"id":"a","status":"succeeded","outputs":[{"type":"video","duration":"86400.001"}]}`, normalize.ErrMalformed},
		{"huge duration", `{"id":"a","status":"succeeded","outputs":[{"type":"video","duration":1e300}]}`, normalize.ErrMalformed},
		{"NaN duration", `{"id":"a","status":"succeeded","outputs":[{"type":"video","duration":"NaN"}]}`, normalize.ErrMalformed},
		{"hex duration", `{"id":"a","status":"succeeded","outputs":[{"type":"video","duration":"0x10"}]}`, normalize.ErrMalformed},
		{"duration boolean", `{"event":"video.completed","data":{"duration":true}}`, normalize.ErrMalformed},
		{"parent video duration", `{"task_id":"a","task_status":"succeed","task_info":{"parent_video":{"duration":"five"}}}`, normalize.ErrMalformed},
		{"ms timestamp string", `{"task_id":"a","task_status":"succeed","updated_at":"today"}`, normalize.ErrMalformed},
		{"ms timestamp fractional", `{"task_id":"a","task_status":"succeed","updated_at":1781080794151.5}`, normalize.ErrMalformed},
		{"ms timestamp overflow", `{"id":"a","status":"succeeded","update_time":99999999999999999999}`, normalize.ErrMalformed},
		{"ms timestamp beyond year 9999", `{"id":"a","status":"succeeded","update_time":253402300800000}`, normalize.ErrMalformed},
		{"outputs not an array", `{"id":"a","status":"succeeded","outputs":{"type":"video"}}`, normalize.ErrMalformed},
		{"output not an object", `{"id":"a","status":"succeeded","outputs":["video"]}`, normalize.ErrMalformed},
		{"output type number", `{"id":"a","status":"succeeded","outputs":[{"type":1}]}`, normalize.ErrMalformed},
		{"videos not an array", `{"task_id":"a","task_status":"succeed","task_result":{"videos":"none"}}`, normalize.ErrMalformed},
		{"task_result string", `{"task_id":"a","task_status":"succeed","task_result":"done"}`, normalize.ErrMalformed},
		{"task_info array", `{"task_id":"a","task_status":"succeed","task_info":[]}`, normalize.ErrMalformed},
		{"image index negative", `{"task_id":"a","task_status":"succeed","task_result":{"images":[{"index":-1,"url":"u"}]}}`, normalize.ErrMalformed},
		{"image index huge", `{"task_id":"a","task_status":"succeed","task_result":{"images":[{"index":4294967296,"url":"u"}]}}`, normalize.ErrMalformed},
		{"units boolean", `{"task_id":"a","task_status":"succeed","final_unit_deduction":true}`, normalize.ErrMalformed},
		{"units overflow", `{"task_id":"a","task_status":"succeed","final_unit_deduction":1e999}`, normalize.ErrMalformed},
		{"progress string", `{"event":"video.processing","data":{"progress":"half"}}`, normalize.ErrMalformed},
		{"error object", `{"event":"video.failed","data":{"error":{"code":1}}}`, normalize.ErrMalformed},
		{"job id over the bound", `{"id":"` + strings.Repeat("j", normalize.MaxIDBytes+1) + `","status":"succeeded"}`, normalize.ErrMalformed},
		{"numeric job id over the bound", `{"task_id":` + strings.Repeat("9", normalize.MaxIDBytes+1) + `,"task_status":"succeed"}`, normalize.ErrMalformed},
		{"long bad timestamp", `{"event":"video.completed","timestamp":"` + long + `","data":{}}`, normalize.ErrMalformed},
		{"long bad duration", `{"id":"a","status":"succeeded","outputs":[{"type":"video","duration":"` + long + `"}]}`, normalize.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := normalize.Parse([]byte(tt.body))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse() error = %v, want %v", err, tt.want)
			}
			if ev != nil {
				t.Errorf("Parse() returned an event with an error: %v", ev)
			}
			if !strings.HasPrefix(err.Error(), "normalize: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if len(err.Error()) > 200 || strings.Contains(err.Error(), strings.Repeat("x", 65)) {
				t.Errorf("error repeats too much of the body: %q", err)
			}
			other := normalize.ErrUnknownShape
			if errors.Is(tt.want, normalize.ErrUnknownShape) {
				other = normalize.ErrMalformed
			}
			if errors.Is(err, other) {
				t.Errorf("error %q wraps both sentinels", err)
			}
		})
	}
}

// TestParseErrorNamesField checks that errors point at the offending field,
// which is what makes a rejected delivery debuggable from the log alone.
func TestParseErrorNamesField(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{`{"task_id":"a","task_status":5}`, "task_status must be a string"},
		{`{"event":"video.completed","timestamp":"nope","data":{}}`, "timestamp is not an RFC 3339 timestamp"},
		{`{"task_id":"a","task_status":"succeed","task_result":{"videos":[{},{"duration":"abc"}]}}`, "task_result.videos[1].duration"},
		{`{"id":"a","status":"succeeded","outputs":[{"type":"image"},{"type":"video","duration":"-2"}]}`, "outputs[1].duration must not be negative"},
		{`{"event":"video.completed","data":{"completed_at":"x"}}`, "data.completed_at"},
	}
	for _, tt := range tests {
		_, err := normalize.Parse([]byte(tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%s) error = %v, want it to mention %q", tt.body, err, tt.want)
		}
	}
}

func TestParseDurations(t *testing.T) {
	tests := []struct {
		name string
		json string // the JSON value of the duration member
		want time.Duration
		set  bool
	}{
		{"decimal string", `"5.1"`, 5100 * time.Millisecond, true},
		{"decimal number", `5.1`, 5100 * time.Millisecond, true},
		{"integer string", `"10"`, 10 * time.Second, true},
		{"integer number", `10`, 10 * time.Second, true},
		{"float noise", `"10.041000000000001"`, 10041 * time.Millisecond, true},
		{"rounds half up", `"0.0005"`, time.Millisecond, true},
		{"rounds down", `"5.1234"`, 5123 * time.Millisecond, true},
		{"rounds to a second", `"0.9999"`, time.Second, true},
		{"zero", `0`, 0, true},
		{"negative zero", `"-0.0"`, 0, true},
		{"exponent", `5.1e0`, 5100 * time.Millisecond, true},
		{"quoted exponent", `"1e1"`, 10 * time.Second, true},
		{"tiny exponent", `1e-400`, 0, true},
		{"padded string", `" 5.1 "`, 5100 * time.Millisecond, true},
		{"exactly a day", `86400`, 24 * time.Hour, true},
		{"empty string", `""`, 0, false},
		{"null", `null`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, body := range []string{
				`{"task_id":"a","task_status":"succeed","task_result":{"videos":[{"url":"u","duration":` + tt.json + `}]}}`,
				`{"id":"a","status":"succeeded","outputs":[{"type":"video","url":"u","duration":` + tt.json + `}]}`,
				`{"event":"video.completed","data":{"video_url":"u","duration":` + tt.json + `}}`,
			} {
				ev, err := normalize.Parse([]byte(body))
				if err != nil {
					t.Fatalf("Parse(%s): %v", body, err)
				}
				videos := ev.GetJob().GetVideos()
				if len(videos) != 1 {
					t.Fatalf("Parse(%s): %d videos, want 1", body, len(videos))
				}
				d := videos[0].GetDuration()
				if (d != nil) != tt.set {
					t.Fatalf("Parse(%s): duration set = %v, want %v", body, d != nil, tt.set)
				}
				if d != nil && d.AsDuration() != tt.want {
					t.Errorf("Parse(%s): duration = %v, want %v", body, d.AsDuration(), tt.want)
				}
			}
		})
	}
}

func TestParseRFC3339(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2026-06-10T08:39:54Z", time.Date(2026, 6, 10, 8, 39, 54, 0, time.UTC)},
		{"2026-06-10T08:39:54.151Z", time.Date(2026, 6, 10, 8, 39, 54, 151_000_000, time.UTC)},
		{"2026-06-10T08:39:54.151234567Z", time.Date(2026, 6, 10, 8, 39, 54, 151_234_567, time.UTC)},
		{"2026-06-10T16:39:54.5+08:00", time.Date(2026, 6, 10, 8, 39, 54, 500_000_000, time.UTC)},
		{"2026-06-10T03:39:54-05:00", time.Date(2026, 6, 10, 8, 39, 54, 0, time.UTC)},
	}
	for _, tt := range tests {
		body := `{"event":"video.completed","timestamp":"` + tt.in + `","data":{"created_at":"` + tt.in + `"}}`
		ev, err := normalize.Parse([]byte(body))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := ev.GetOccurredAt().AsTime(); !got.Equal(tt.want) {
			t.Errorf("occurred_at for %q = %v, want %v", tt.in, got, tt.want)
		}
		if got := ev.GetJob().GetCreatedAt().AsTime(); !got.Equal(tt.want) {
			t.Errorf("created_at for %q = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseStatuses(t *testing.T) {
	const (
		created    = gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED
		processing = gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING
		completed  = gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED
		failed     = gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED
		cancelled  = gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED
		unknown    = gatewayv1.EventType_EVENT_TYPE_UNSPECIFIED
	)
	tests := []struct {
		status string
		typ    gatewayv1.EventType
		job    gatewayv1.JobStatus
	}{
		{"submitted", created, gatewayv1.JobStatus_JOB_STATUS_SUBMITTED},
		{"Queued", created, gatewayv1.JobStatus_JOB_STATUS_SUBMITTED},
		{"processing", processing, gatewayv1.JobStatus_JOB_STATUS_PROCESSING},
		{"IN_PROGRESS", processing, gatewayv1.JobStatus_JOB_STATUS_PROCESSING},
		{"succeed", completed, gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED},
		{"succeeded", completed, gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED},
		{"Success", completed, gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED},
		{"failed", failed, gatewayv1.JobStatus_JOB_STATUS_FAILED},
		{"error", failed, gatewayv1.JobStatus_JOB_STATUS_FAILED},
		{"cancelled", cancelled, gatewayv1.JobStatus_JOB_STATUS_CANCELLED},
		{"canceled", cancelled, gatewayv1.JobStatus_JOB_STATUS_CANCELLED},
		{"expired", unknown, gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED},
		{"", unknown, gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED},
	}
	for _, tt := range tests {
		for _, body := range []string{
			`{"task_id":"a","task_status":"` + tt.status + `"}`,
			`{"id":"a","status":"` + tt.status + `"}`,
		} {
			ev, err := normalize.Parse([]byte(body))
			if err != nil {
				t.Fatalf("Parse(%s): %v", body, err)
			}
			if ev.GetType() != tt.typ || ev.GetJob().GetStatus() != tt.job {
				t.Errorf("Parse(%s) = %v/%v, want %v/%v", body, ev.GetType(), ev.GetJob().GetStatus(), tt.typ, tt.job)
			}
			if ev.GetRawType() != tt.status || ev.GetJob().GetRawStatus() != tt.status {
				t.Errorf("Parse(%s) raw = %q/%q, want %q", body, ev.GetRawType(), ev.GetJob().GetRawStatus(), tt.status)
			}
			// No update time in these bodies, so no completion time either.
			if ev.GetJob().GetCompletedAt() != nil {
				t.Errorf("Parse(%s) set completed_at without an update time", body)
			}
		}
	}
}

func TestParseCompletedAtOnlyWhenTerminal(t *testing.T) {
	for status, terminal := range map[string]bool{"submitted": false, "processing": false, "succeeded": true, "failed": true, "canceled": true, "expired": false} {
		ev, err := normalize.Parse([]byte(`{"id":"a","status":"` + status + `","create_time":1781080778802,"update_time":1781080794151}`))
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.GetJob().GetCompletedAt() != nil; got != terminal {
			t.Errorf("status %q: completed_at set = %v, want %v", status, got, terminal)
		}
	}
}

func TestParseOccurredAtFallsBackToCreated(t *testing.T) {
	ev, err := normalize.Parse([]byte(`{"task_id":"a","task_status":"submitted","created_at":1781080778802}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.GetOccurredAt().AsTime().UnixMilli(); got != 1781080778802 {
		t.Errorf("occurred_at = %d, want created_at", got)
	}
	ev, err = normalize.Parse([]byte(`{"task_id":"a","task_status":"submitted","created_at":0,"updated_at":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetOccurredAt() != nil || ev.GetJob().GetCreatedAt() != nil {
		t.Errorf("zero and null timestamps should be unset: %v", ev)
	}
}

func TestParseKlingEventStatusFromType(t *testing.T) {
	for name, want := range map[string]gatewayv1.JobStatus{
		"video.created":    gatewayv1.JobStatus_JOB_STATUS_SUBMITTED,
		"video.processing": gatewayv1.JobStatus_JOB_STATUS_PROCESSING,
		"video.completed":  gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED,
		"video.failed":     gatewayv1.JobStatus_JOB_STATUS_FAILED,
		"video.cancelled":  gatewayv1.JobStatus_JOB_STATUS_CANCELLED,
		"video.deleted":    gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED,
	} {
		ev, err := normalize.Parse([]byte(`{"event":"` + name + `","data":{"job_id":"j","status":null}}`))
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.GetJob().GetStatus(); got != want {
			t.Errorf("%s without data.status: status = %v, want %v", name, got, want)
		}
	}
	// An explicit status wins over the event name.
	ev, err := normalize.Parse([]byte(`{"event":"video.completed","data":{"status":"failed"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetJob().GetStatus() != gatewayv1.JobStatus_JOB_STATUS_FAILED {
		t.Errorf("status = %v, want the explicit FAILED", ev.GetJob().GetStatus())
	}
}

func TestParseProgress(t *testing.T) {
	for in, want := range map[string]int32{
		`0`: 0, `45`: 45, `99.9`: 99, `100`: 100, `150`: 100, `-3`: 0, `"60"`: 60, `1e400`: 100, `-1e400`: 0, `null`: 0,
	} {
		ev, err := normalize.Parse([]byte(`{"event":"video.processing","data":{"progress":` + in + `}}`))
		if err != nil {
			t.Fatalf("progress %s: %v", in, err)
		}
		if got := ev.GetJob().GetProgressPercent(); got != want {
			t.Errorf("progress %s = %d, want %d", in, got, want)
		}
	}
}

func TestParseNumericIDs(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"task_id":798237451983716352123,"task_status":"succeed"}`, "798237451983716352123"},
		{`{"id":1234567890,"status":"succeeded"}`, "1234567890"},
		{`{"event":"video.created","data":{"job_id":-7}}`, "-7"},
		{`{"id":"  keep as sent ","status":"succeeded"}`, "  keep as sent "},
	}
	for _, tt := range tests {
		ev, err := normalize.Parse([]byte(tt.body))
		if err != nil {
			t.Fatalf("Parse(%s): %v", tt.body, err)
		}
		if got := ev.GetJob().GetJobId(); got != tt.want {
			t.Errorf("Parse(%s) job_id = %q, want %q", tt.body, got, tt.want)
		}
	}
}

func TestParseUnitsDeducted(t *testing.T) {
	for in, want := range map[string]string{
		`"1"`: "1", `"0.25"`: "0.25", `1.5`: "1.5", `2`: "2", `1.5e1`: "15", `null`: "", `""`: "",
	} {
		ev, err := normalize.Parse([]byte(`{"task_id":"a","task_status":"succeed","final_unit_deduction":` + in + `}`))
		if err != nil {
			t.Fatalf("units %s: %v", in, err)
		}
		if got := ev.GetJob().GetUnitsDeducted(); got != want {
			t.Errorf("units %s = %q, want %q", in, got, want)
		}
	}
}

// TestParseDetectionOrder pins the documented precedence for bodies that
// carry the identifying keys of more than one format.
func TestParseDetectionOrder(t *testing.T) {
	tests := []struct {
		body string
		want gatewayv1.SourceFormat
	}{
		{`{"event":"video.created","data":{},"task_id":"a","task_status":"x","id":"b","status":"y"}`, gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT},
		{`{"task_id":"a","task_status":"x","id":"b","status":"y"}`, gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY},
		{`{"event":"video.created","id":"b","status":"y"}`, gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2},
	}
	for _, tt := range tests {
		ev, err := normalize.Parse([]byte(tt.body))
		if err != nil {
			t.Fatalf("Parse(%s): %v", tt.body, err)
		}
		if ev.GetSourceFormat() != tt.want {
			t.Errorf("Parse(%s) source_format = %v, want %v", tt.body, ev.GetSourceFormat(), tt.want)
		}
	}
}

// TestParseKeysAreCaseSensitive guards against encoding/json's
// case-insensitive struct matching creeping in: Kling's keys are exact.
func TestParseKeysAreCaseSensitive(t *testing.T) {
	_, err := normalize.Parse([]byte(`{"Task_ID":"a","TASK_STATUS":"succeed"}`))
	if !errors.Is(err, normalize.ErrUnknownShape) {
		t.Errorf("error = %v, want ErrUnknownShape", err)
	}
}

func TestParseInvalidUTF8(t *testing.T) {
	ev, err := normalize.Parse([]byte("{\"id\":\"a\xffb\",\"status\":\"succeeded\"}"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.GetJob().GetJobId(); got != "a\uFFFDb" {
		t.Errorf("job_id = %q, want invalid bytes replaced so the event stays marshalable", got)
	}
}
