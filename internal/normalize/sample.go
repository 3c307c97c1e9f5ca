package normalize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/jobstate"
)

// Sample returns a realistic payload in the given wire format for an event of
// type typ about job jobID that happened at now, as Kling would send it. It
// backs WebhookService.SendTestEvent and `klingctl example`, so that test
// traffic exercises the same parsing path as real deliveries and operators
// can see what each format looks like.
//
// The payload is compact JSON with a stable key order, so the same arguments
// always produce the same bytes (and the same delivery digest). Times are
// truncated to the millisecond, the precision of the task callback formats,
// and [Parse] of the result yields typ, jobID, the matching job status and
// that time. now must lie after the Unix epoch and before year 10000, the
// range every format can carry. EVENT_TYPE_UNSPECIFIED and unknown formats
// or types are rejected, because there is no payload Kling would send for
// them.
func Sample(format gatewayv1.SourceFormat, typ gatewayv1.EventType, jobID string, now time.Time) ([]byte, error) {
	return SampleKind(format, gatewayv1.JobKind_JOB_KIND_VIDEO, typ, jobID, now)
}

// SampleKind is Sample for a job that makes kind: a completed sample
// carries that kind's outputs (audio tracks, a voice, an element, subtitle
// files) as Kling's pages show them in format. Subtitles come only from the
// solutions API, in the new callback shape, and are refused in the legacy
// one, so a sample never shows a payload Kling would not send. (Custom
// voices and elements are legacy-shape families; the new shape's output
// list documents them too.)
func SampleKind(format gatewayv1.SourceFormat, kind gatewayv1.JobKind, typ gatewayv1.EventType, jobID string, now time.Time) ([]byte, error) {
	if _, ok := sampleKinds[kind]; !ok {
		return nil, fmt.Errorf("normalize: no sample for job kind %v", kind)
	}
	if format == gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY && !sampleKinds[kind].legacy {
		return nil, fmt.Errorf("normalize: Kling sends %s tasks only in the new callback shape", sampleKinds[kind].prefix)
	}
	if typ == gatewayv1.EventType_EVENT_TYPE_UNSPECIFIED || statusOfEventType(typ) == gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED {
		return nil, fmt.Errorf("normalize: no sample for event type %v", typ)
	}
	ms := now.UnixMilli()
	if ms <= 0 || now.UTC().Year() > 9999 {
		return nil, fmt.Errorf("normalize: sample time %s is out of range", now.UTC().Format(time.RFC3339))
	}
	s := sampleJob{typ: typ, kind: kind, jobID: jobID, now: time.UnixMilli(ms).UTC()}
	var payload any
	switch format {
	case gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT:
		payload = s.klingEvent()
	case gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY:
		payload = s.legacy()
	case gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2:
		payload = s.v2()
	default:
		return nil, fmt.Errorf("normalize: no sample for source format %v", format)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Kling does not HTML-escape its URLs; neither should a faithful sample.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(payload); err != nil {
		return nil, fmt.Errorf("normalize: encoding sample: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Fixed sample content. The values mirror what Kling returns for a
// text-to-video task, so that a consumer tested against samples also copes
// with real traffic.
const (
	samplePrompt     = "A corgi surfing a turquoise wave at golden hour, cinematic, slow motion"
	sampleModel      = "kling-v2-1-master"
	sampleDuration   = "5.1"
	sampleFailureMsg = "Failure to pass the risk control system"
	sampleCancelMsg  = "Task cancelled by user"
	sampleCDN        = "https://cdn.klingai.com/bs2/upload-kling-api/7265158418/"
	sampleUnits      = "1"
)

// sampleJob holds the inputs of one Sample call and derives the values the
// three formats share, so that they describe the same job consistently.
type sampleJob struct {
	typ   gatewayv1.EventType
	kind  gatewayv1.JobKind
	jobID string
	now   time.Time
}

// completed reports whether the sample carries outputs.
func (s sampleJob) completed() bool {
	return s.typ == gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED
}

// created is when the sampled task was submitted: a realistic time before
// now for each stage, so samples show plausible created/updated pairs.
func (s sampleJob) created() time.Time {
	switch s.typ {
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING:
		return s.now.Add(-12 * time.Second)
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED:
		return s.now.Add(-94*time.Second - 651*time.Millisecond)
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED:
		return s.now.Add(-31*time.Second - 207*time.Millisecond)
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED:
		return s.now.Add(-20 * time.Second)
	}
	return s.now
}

// asset returns a CDN URL for one of the job's files; the job id is escaped
// because callers may pass arbitrary test ids.
func (s sampleJob) asset(suffix string) string {
	return sampleCDN + sampleKinds[s.kind].dir + "/" + url.PathEscape(s.jobID) + suffix
}

// videoID is the id Kling gives the generated video: distinct from the task
// id, so consumers do not conflate the two.
func (s sampleJob) videoID() string {
	return s.jobID + "-v0"
}

// message is the human-readable status text for the sampled stage.
func (s sampleJob) message() string {
	switch s.typ {
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED:
		return sampleFailureMsg
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED:
		return sampleCancelMsg
	}
	return ""
}

// rfc3339Millis is the signed-event time layout: RFC 3339 in UTC with
// milliseconds, the precision every format shares.
const rfc3339Millis = "2006-01-02T15:04:05.000Z07:00"

type klingEventPayload struct {
	Event     string         `json:"event"`
	Timestamp string         `json:"timestamp"`
	Data      klingEventData `json:"data"`
}

type klingEventData struct {
	JobID        string      `json:"job_id"`
	Status       string      `json:"status"`
	VideoURL     string      `json:"video_url,omitempty"`
	ThumbnailURL string      `json:"thumbnail_url,omitempty"`
	Duration     json.Number `json:"duration,omitempty"`
	Prompt       string      `json:"prompt"`
	Model        string      `json:"model"`
	CreatedAt    string      `json:"created_at"`
	CompletedAt  string      `json:"completed_at,omitempty"`
	Error        string      `json:"error,omitempty"`
	Progress     int         `json:"progress"`
}

func (s sampleJob) klingEvent() klingEventPayload {
	d := klingEventData{
		JobID:     s.jobID,
		Prompt:    samplePrompt,
		Model:     sampleModel,
		CreatedAt: s.created().Format(rfc3339Millis),
		Error:     s.message(),
	}
	var state string
	switch s.typ {
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED:
		state, d.Status = "created", "pending"
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING:
		state, d.Status, d.Progress = "processing", "processing", 45
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED:
		state, d.Status, d.Progress = "completed", "completed", 100
		// The signed format has a place for a video only; other kinds
		// say what they made through the event name's prefix.
		if s.kind == gatewayv1.JobKind_JOB_KIND_VIDEO {
			d.VideoURL = s.asset(".mp4")
			d.ThumbnailURL = s.asset(".jpg")
			d.Duration = sampleDuration
		}
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED:
		state, d.Status = "failed", "failed"
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED:
		state, d.Status = "cancelled", "cancelled"
	}
	name := sampleKinds[s.kind].prefix + "." + state
	if jobstate.Terminal(statusOfEventType(s.typ)) {
		d.CompletedAt = s.now.Format(rfc3339Millis)
	}
	return klingEventPayload{Event: name, Timestamp: s.now.Format(rfc3339Millis), Data: d}
}

type legacyPayload struct {
	TaskID                string                  `json:"task_id"`
	TaskStatus            string                  `json:"task_status"`
	TaskStatusMsg         string                  `json:"task_status_msg"`
	TaskInfo              legacyTaskInfo          `json:"task_info"`
	CreatedAt             int64                   `json:"created_at"`
	UpdatedAt             int64                   `json:"updated_at"`
	FinalUnitDeduction    string                  `json:"final_unit_deduction,omitempty"`
	FinalBalanceDeduction *legacyBalanceDeduction `json:"final_balance_deduction,omitempty"`
	TaskResult            *legacyTaskResult       `json:"task_result,omitempty"`
}

type legacyTaskInfo struct {
	ExternalTaskID string `json:"external_task_id,omitempty"`
}

type legacyTaskResult struct {
	Videos   []legacyVideo   `json:"videos,omitempty"`
	Images   []legacyImage   `json:"images,omitempty"`
	Audios   []legacyAudio   `json:"audios,omitempty"`
	Voices   []legacyVoice   `json:"voices,omitempty"`
	Elements []legacyElement `json:"elements,omitempty"`
}

type legacyVideo struct {
	ID       string `json:"id"`
	URL      string `json:"url"`
	Duration string `json:"duration"`
}

// callbackStatus returns the status string a task callback uses for the
// sampled type; the two callback formats differ only in "succeed" versus
// "succeeded". "cancelled" is not documented by Kling for callbacks but is
// what the gateway accepts, so samples use it.
func (s sampleJob) callbackStatus(succeeded string) string {
	switch s.typ {
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED:
		return "submitted"
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING:
		return "processing"
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED:
		return succeeded
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED:
		return "failed"
	}
	return "cancelled"
}

func (s sampleJob) legacy() legacyPayload {
	p := legacyPayload{
		TaskID:        s.jobID,
		TaskStatus:    s.callbackStatus("succeed"),
		TaskStatusMsg: s.message(),
		CreatedAt:     s.created().UnixMilli(),
		UpdatedAt:     s.now.UnixMilli(),
	}
	if s.completed() {
		p.FinalUnitDeduction = sampleUnits
		p.FinalBalanceDeduction = &legacyBalanceDeduction{Quota: sampleCharge.Amount, ListPrice: sampleCharge.ListPrice}
		p.TaskResult = s.legacyResult()
	}
	return p
}

type v2Payload struct {
	ID         string     `json:"id"`
	Status     string     `json:"status"`
	Message    string     `json:"message"`
	CreateTime int64      `json:"create_time"`
	UpdateTime int64      `json:"update_time"`
	Outputs    []any      `json:"outputs,omitempty"`
	Billing    []v2Charge `json:"billing,omitempty"`
}

func (s sampleJob) v2() v2Payload {
	p := v2Payload{
		ID:         s.jobID,
		Status:     s.callbackStatus("succeeded"),
		Message:    s.message(),
		CreateTime: s.created().UnixMilli(),
		UpdateTime: s.now.UnixMilli(),
	}
	if s.completed() {
		p.Outputs = s.v2Outputs()
		c := sampleCharge
		c.PackageType = sampleKinds[s.kind].pkg
		p.Billing = []v2Charge{c}
	}
	return p
}
