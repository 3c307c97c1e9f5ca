package normalize

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Sentinel errors returned by [Parse]. Every error Parse returns wraps exactly
// one of them, with a short detail naming the field at fault, so that callers
// can branch with [errors.Is] and still log something actionable.
var (
	// ErrMalformed reports a body that is not a JSON object, is not valid
	// JSON, or carries a value of the wrong type or range in a field this
	// package maps (including the fields that identify the shape).
	ErrMalformed = errors.New("normalize: malformed JSON")
	// ErrUnknownShape reports a valid JSON object that matches none of the
	// three Kling wire formats.
	ErrUnknownShape = errors.New("normalize: unknown payload shape")
)

// Parse detects the wire format of body by its shape and normalizes it into
// an Event.
//
// Only the fields the body determines are set: type, raw_type, occurred_at,
// source_format and job. The caller owns id, sequence, webhook_id,
// received_at, delivery_id and raw_body, because those depend on the
// delivery rather than on its content. An unknown event name or status is
// not an error; it yields EVENT_TYPE_UNSPECIFIED with the original string in
// raw_type, so that no delivery is dropped because Kling added a state.
//
// Errors wrap [ErrMalformed] or [ErrUnknownShape].
func Parse(body []byte) (*gatewayv1.Event, error) {
	top, err := decodeTop(body)
	if err != nil {
		return nil, err
	}
	switch {
	case top.has("event") && top.has("data"):
		return parseKlingEvent(top)
	case top.has("task_id") && top.has("task_status"):
		return parseLegacy(top)
	case top.has("id") && top.has("status"):
		return parseV2(top)
	}
	return nil, fmt.Errorf(`%w: want "event" and "data", "task_id" and "task_status", or "id" and "status"`, ErrUnknownShape)
}

// decodeTop decodes the body as a JSON object, describing what it got
// instead when it is anything else.
func decodeTop(body []byte) (object, error) {
	if k := kind(body); k != '{' {
		if k == 0 {
			return nil, fmt.Errorf("%w: empty body", ErrMalformed)
		}
		if json.Valid(body) {
			return nil, fmt.Errorf("%w: want a JSON object, got %s", ErrMalformed, kindName(k))
		}
	}
	// One copy of the body backs every string the event takes from it,
	// instead of one allocation per field.
	if top, ok := scanObject(string(body)); ok {
		return top, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, describeJSONError(err))
	}
	return objectOfMap(top), nil
}

// describeJSONError turns a decoding error into a detail that points at the
// problem without repeating the body: encoding/json's syntax errors quote at
// most one character, and the offset lets an operator find the spot in the
// stored raw body.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, syn.Error())
	}
	msg := err.Error()
	if len(msg) > 2*maxQuoted {
		msg = msg[:2*maxQuoted] + "..."
	}
	return msg
}

// jobStatusOf maps a status as any of the formats spell it to a JobStatus.
// Matching is case-insensitive and accepts the synonyms the formats (and
// their documentation over time) have used, because a status misread as
// unknown would hide a finished job from consumers that filter on status.
func jobStatusOf(raw string) gatewayv1.JobStatus {
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "submitted", "created", "pending", "queued":
		return gatewayv1.JobStatus_JOB_STATUS_SUBMITTED
	case "processing", "running", "in_progress":
		return gatewayv1.JobStatus_JOB_STATUS_PROCESSING
	case "completed", "succeed", "succeeded", "success":
		return gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED
	case "failed", "error":
		return gatewayv1.JobStatus_JOB_STATUS_FAILED
	case "cancelled", "canceled":
		return gatewayv1.JobStatus_JOB_STATUS_CANCELLED
	}
	return gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED
}

// eventTypeOfStatus derives the event type of a task callback from its
// normalized status. Deriving it from the JobStatus, rather than from a
// second string table, guarantees that type and job.status never disagree.
func eventTypeOfStatus(s gatewayv1.JobStatus) gatewayv1.EventType {
	switch s {
	case gatewayv1.JobStatus_JOB_STATUS_SUBMITTED:
		return gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED
	case gatewayv1.JobStatus_JOB_STATUS_PROCESSING:
		return gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING
	case gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED:
		return gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED
	case gatewayv1.JobStatus_JOB_STATUS_FAILED:
		return gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED
	case gatewayv1.JobStatus_JOB_STATUS_CANCELLED:
		return gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED
	}
	return gatewayv1.EventType_EVENT_TYPE_UNSPECIFIED
}

// statusOfEventType is the inverse of eventTypeOfStatus. It fills in
// job.status for signed events whose data carries no status, since the
// event name alone says where the job stands.
func statusOfEventType(t gatewayv1.EventType) gatewayv1.JobStatus {
	switch t {
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED:
		return gatewayv1.JobStatus_JOB_STATUS_SUBMITTED
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING:
		return gatewayv1.JobStatus_JOB_STATUS_PROCESSING
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED:
		return gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED:
		return gatewayv1.JobStatus_JOB_STATUS_FAILED
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED:
		return gatewayv1.JobStatus_JOB_STATUS_CANCELLED
	}
	return gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED
}

// eventTypeOfName maps a signed event's name, e.g. "video.completed", to an
// EventType, case-insensitively for the same reason as jobStatusOf.
func eventTypeOfName(name string) gatewayv1.EventType {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "video.created":
		return gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED
	case "video.processing":
		return gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING
	case "video.completed":
		return gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED
	case "video.failed":
		return gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED
	case "video.cancelled":
		return gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED
	}
	return gatewayv1.EventType_EVENT_TYPE_UNSPECIFIED
}

// isTerminal reports whether a job in status s will not change again, which
// is when a callback's update time is also its completion time.
func isTerminal(s gatewayv1.JobStatus) bool {
	switch s {
	case gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED,
		gatewayv1.JobStatus_JOB_STATUS_FAILED,
		gatewayv1.JobStatus_JOB_STATUS_CANCELLED:
		return true
	}
	return false
}

// parseKlingEvent normalizes a signed JSON event:
// {"event": "video.completed", "timestamp": ..., "data": {...}}.
// The optional "signature" body member is ignored on purpose: the
// X-Kling-Signature header is the authority, checked before parsing.
func parseKlingEvent(top object) (*gatewayv1.Event, error) {
	name, err := top.requiredStr(root, "event")
	if err != nil {
		return nil, err
	}
	if k := kind(top.get("data")); k != '{' {
		return nil, malformed("data", "must be an object, got %s", kindName(k))
	}
	data, err := top.object(root, "data")
	if err != nil {
		return nil, err
	}
	occurred, err := top.rfc3339(root, "timestamp")
	if err != nil {
		return nil, err
	}

	ev := &gatewayv1.Event{
		Type:         eventTypeOfName(name),
		RawType:      name,
		OccurredAt:   occurred,
		SourceFormat: gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT,
	}
	job := &gatewayv1.Job{}
	ev.Job = job

	p := at("data")
	if job.JobId, err = data.id(p, "job_id"); err != nil {
		return nil, err
	}
	if job.RawStatus, err = data.str(p, "status"); err != nil {
		return nil, err
	}
	if !absent(data.get("status")) {
		job.Status = jobStatusOf(job.RawStatus)
	} else {
		job.Status = statusOfEventType(ev.Type)
	}
	if job.StatusMessage, err = data.str(p, "error"); err != nil {
		return nil, err
	}
	if job.Prompt, err = data.str(p, "prompt"); err != nil {
		return nil, err
	}
	if job.Model, err = data.str(p, "model"); err != nil {
		return nil, err
	}
	if job.CreatedAt, err = data.rfc3339(p, "created_at"); err != nil {
		return nil, err
	}
	if job.CompletedAt, err = data.rfc3339(p, "completed_at"); err != nil {
		return nil, err
	}
	if job.ProgressPercent, err = progress(data, p, "progress"); err != nil {
		return nil, err
	}

	video := &gatewayv1.Video{}
	if video.Url, err = data.str(p, "video_url"); err != nil {
		return nil, err
	}
	if video.ThumbnailUrl, err = data.str(p, "thumbnail_url"); err != nil {
		return nil, err
	}
	// The duration is validated even without a video, so a broken sender
	// is noticed on every event rather than only on completion.
	if video.Duration, err = data.duration(p, "duration"); err != nil {
		return nil, err
	}
	if video.Url != "" {
		job.Videos = []*gatewayv1.Video{video}
	}
	return ev, nil
}

// progress reads a 0-100 percentage. Out-of-range values are clamped rather
// than rejected because they are harmless rounding artefacts, and fractions
// are truncated so that a job never looks further along than it is.
func progress(o object, prefix fieldPath, key string) (int32, error) {
	lit, ok, err := o.number(prefix, key)
	if err != nil || !ok {
		return 0, err
	}
	// The literal is valid JSON number syntax, so ParseFloat can only fail
	// by overflowing to an infinity or underflowing to zero, both of which
	// clamp correctly below.
	f, _ := strconv.ParseFloat(lit, 64)
	switch {
	case f <= 0:
		return 0, nil
	case f >= 100:
		return 100, nil
	}
	return int32(f), nil
}

// parseLegacy normalizes a legacy task callback: flat task_id, task_status,
// millisecond timestamps and a task_result with videos and images.
func parseLegacy(top object) (*gatewayv1.Event, error) {
	status, job, err := callbackJob(top, "task_status", "task_id")
	if err != nil {
		return nil, err
	}
	if job.StatusMessage, err = top.str(root, "task_status_msg"); err != nil {
		return nil, err
	}
	if job.CreatedAt, err = top.millis(root, "created_at"); err != nil {
		return nil, err
	}
	if job.UpdatedAt, err = top.millis(root, "updated_at"); err != nil {
		return nil, err
	}
	if job.UnitsDeducted, err = top.decimal(root, "final_unit_deduction"); err != nil {
		return nil, err
	}

	info, err := top.object(root, "task_info")
	if err != nil {
		return nil, err
	}
	if job.ExternalId, err = info.id(at("task_info"), "external_task_id"); err != nil {
		return nil, err
	}
	if raw := info.get("parent_video"); !absent(raw) {
		if job.ParentVideo, err = videoAt(raw, at("task_info.parent_video")); err != nil {
			return nil, err
		}
	}

	result, err := top.object(root, "task_result")
	if err != nil {
		return nil, err
	}
	videos, err := result.array(at("task_result"), "videos")
	if err != nil {
		return nil, err
	}
	for i, raw := range videos {
		v, err := videoAt(raw, elemOf("task_result.videos", i))
		if err != nil {
			return nil, err
		}
		job.Videos = append(job.Videos, v)
	}
	images, err := result.array(at("task_result"), "images")
	if err != nil {
		return nil, err
	}
	for i, raw := range images {
		img, err := legacyImageAt(raw, i)
		if err != nil {
			return nil, err
		}
		job.Images = append(job.Images, img)
	}

	return callbackEvent(gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY, status, job), nil
}

// videoAt decodes a {id, url, watermark_url, duration} video object, the
// element shape shared by legacy task results and their parent_video.
func videoAt(raw string, path fieldPath) (*gatewayv1.Video, error) {
	o, err := decodeObject(raw, path, "")
	if err != nil {
		return nil, err
	}
	return videoOf(o, path)
}

// videoOf reads a video from its decoded object o at path.
func videoOf(o object, path fieldPath) (v *gatewayv1.Video, err error) {
	v = &gatewayv1.Video{}
	if v.Id, err = o.id(path, "id"); err != nil {
		return nil, err
	}
	if v.Url, err = o.str(path, "url"); err != nil {
		return nil, err
	}
	if v.WatermarkUrl, err = o.str(path, "watermark_url"); err != nil {
		return nil, err
	}
	if v.Duration, err = o.duration(path, "duration"); err != nil {
		return nil, err
	}
	return v, nil
}

// legacyImageAt decodes the i-th legacy {index, url} image. Kling numbers
// images itself; the position is used only when it does not.
func legacyImageAt(raw string, i int) (*gatewayv1.Image, error) {
	path := elemOf("task_result.images", i)
	o, err := decodeObject(raw, path, "")
	if err != nil {
		return nil, err
	}
	img := &gatewayv1.Image{Index: int32(min(i, 1<<31-1))}
	lit, ok, err := o.number(path, "index")
	if err != nil {
		return nil, err
	}
	if ok {
		n, err := smallInt(lit)
		if err != nil {
			return nil, malformed(join(path, "index"), "must be a non-negative integer, got %s", quote(lit))
		}
		img.Index = n
	}
	if img.Id, err = o.id(path, "id"); err != nil {
		return nil, err
	}
	if img.Url, err = o.str(path, "url"); err != nil {
		return nil, err
	}
	if img.WatermarkUrl, err = o.str(path, "watermark_url"); err != nil {
		return nil, err
	}
	return img, nil
}

// smallInt parses a non-negative integer that fits an int32.
func smallInt(lit string) (int32, error) {
	if !isInteger(lit) || strings.HasPrefix(lit, "-") || len(lit) > 10 {
		return 0, ErrMalformed
	}
	var n int64
	for i := 0; i < len(lit); i++ {
		n = n*10 + int64(lit[i]-'0')
	}
	if n > 1<<31-1 {
		return 0, ErrMalformed
	}
	return int32(n), nil
}

// parseV2 normalizes a task callback of the newer model APIs: id, status,
// millisecond create_time/update_time and a typed outputs list.
func parseV2(top object) (*gatewayv1.Event, error) {
	status, job, err := callbackJob(top, "status", "id")
	if err != nil {
		return nil, err
	}
	if job.StatusMessage, err = top.str(root, "message"); err != nil {
		return nil, err
	}
	if job.CreatedAt, err = top.millis(root, "create_time"); err != nil {
		return nil, err
	}
	if job.UpdatedAt, err = top.millis(root, "update_time"); err != nil {
		return nil, err
	}
	if job.ExternalId, err = top.id(root, "external_id"); err != nil {
		return nil, err
	}

	outputs, err := top.array(root, "outputs")
	if err != nil {
		return nil, err
	}
	for i, raw := range outputs {
		path := elemOf("outputs", i)
		o, err := decodeObject(raw, path, "")
		if err != nil {
			return nil, err
		}
		typ, err := o.str(path, "type")
		if err != nil {
			return nil, err
		}
		// Audio, voice and element outputs have no place in Job yet; they
		// survive in the raw body the caller stores with the event.
		switch strings.ToLower(typ) {
		case "video":
			v, err := videoOf(o, path)
			if err != nil {
				return nil, err
			}
			job.Videos = append(job.Videos, v)
		case "image":
			img := &gatewayv1.Image{Index: int32(min(len(job.Images), 1<<31-1))}
			if img.Id, err = o.id(path, "id"); err != nil {
				return nil, err
			}
			if img.Url, err = o.str(path, "url"); err != nil {
				return nil, err
			}
			if img.WatermarkUrl, err = o.str(path, "watermark_url"); err != nil {
				return nil, err
			}
			job.Images = append(job.Images, img)
		}
	}

	return callbackEvent(gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2, status, job), nil
}

// callbackEvent completes the fields both task callback formats derive the
// same way: the type from the status, the sender's time from the last update
// (or creation, for a first callback without one), and the completion time
// from the update time of a terminal status.
func callbackEvent(format gatewayv1.SourceFormat, status string, job *gatewayv1.Job) *gatewayv1.Event {
	occurred := job.UpdatedAt
	if occurred == nil {
		occurred = job.CreatedAt
	}
	if isTerminal(job.Status) && job.UpdatedAt != nil {
		job.CompletedAt = cloneTimestamp(job.UpdatedAt)
	}
	return &gatewayv1.Event{
		Type:         eventTypeOfStatus(job.Status),
		RawType:      status,
		OccurredAt:   cloneTimestamp(occurred),
		SourceFormat: format,
		Job:          job,
	}
}

// cloneTimestamp copies a timestamp so that no two fields of an Event share
// a message, which would surprise a caller that mutates one of them.
func cloneTimestamp(ts *timestamppb.Timestamp) *timestamppb.Timestamp {
	if ts == nil {
		return nil
	}
	return &timestamppb.Timestamp{Seconds: ts.Seconds, Nanos: ts.Nanos}
}
