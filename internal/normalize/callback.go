package normalize

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/jobstate"
)

// This file reads what the two task callback shapes share: a header of
// status, id, message, times and external id under different names.

// callbackHeader names the members that carry the header in one callback
// shape. One table per shape and one reader keep the shapes from drifting.
type callbackHeader struct {
	format                                gatewayv1.SourceFormat
	id, status, message, created, updated string
	// external is the caller's own id, inside the object externalIn, or
	// in the body itself when externalIn is empty.
	externalIn, external string
}

// legacyHeader is the header of the legacy shape (APIs taking model_name,
// top-level callback_url).
var legacyHeader = callbackHeader{
	format:     gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY,
	id:         "task_id",
	status:     "task_status",
	message:    "task_status_msg",
	created:    "created_at",
	updated:    "updated_at",
	externalIn: "task_info",
	external:   "external_task_id",
}

// v2Header is the header of the new shape (APIs with the model version in
// the path, options.callback_url).
var v2Header = callbackHeader{
	format:   gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2,
	id:       "id",
	status:   "status",
	message:  "message",
	created:  "create_time",
	updated:  "update_time",
	external: "external_id",
}

// job reads what identifies a callback: its status and its task id. Parse
// and Identify share it, so the two can never disagree on what a callback
// is.
func (h callbackHeader) job(top object) (string, *gatewayv1.Job, error) {
	status, err := top.requiredStr(root, h.status)
	if err != nil {
		return "", nil, err
	}
	id, err := top.requiredID(root, h.id)
	if err != nil {
		return "", nil, err
	}
	return status, &gatewayv1.Job{JobId: id, RawStatus: status, Status: jobStatusOf(status)}, nil
}

// identify is the format's Identify.
func (h callbackHeader) identify(top object) (*gatewayv1.Event, error) {
	status, job, err := h.job(top)
	if err != nil {
		return nil, err
	}
	return &gatewayv1.Event{Type: eventTypeOfStatus(job.Status), RawType: status, SourceFormat: h.format, Job: job}, nil
}

// read reads the header: what identifies the callback (an error here is
// the only way a callback fails), then its message, millisecond times and
// external id, each of which degrades on its own: an unreadable one is
// left unset, reported, and kept in the unmapped members m collects. The
// caller owns m (on its stack: the header is read for every delivery).
func (h callbackHeader) read(top object, r *report, m *members) (string, *gatewayv1.Job, error) {
	status, job, err := h.job(top)
	if err != nil {
		return "", nil, err
	}
	*m = members{o: top, path: root, r: r}
	m.take(h.id)
	m.take(h.status)
	m.str(h.message, &job.StatusMessage)
	m.millis(h.created, &job.CreatedAt)
	m.millis(h.updated, &job.UpdatedAt)
	if h.externalIn == "" {
		m.id(h.external, &job.ExternalId)
	}
	return status, job, nil
}

// event completes the fields both callback shapes derive the same way: the
// type from the status, the sender's time from the last update (or
// creation, for a first callback without one), the completion time from
// the update time of a terminal status, and the kind from the outputs when
// the parser did not set it.
func (h callbackHeader) event(status string, job *gatewayv1.Job) *gatewayv1.Event {
	occurred := job.UpdatedAt
	if occurred == nil {
		occurred = job.CreatedAt
	}
	if jobstate.Terminal(job.Status) && job.UpdatedAt != nil {
		job.CompletedAt = cloneTimestamp(job.UpdatedAt)
	}
	if job.Kind == gatewayv1.JobKind_JOB_KIND_UNSPECIFIED {
		job.Kind = kindOfOutputs(job)
	}
	return &gatewayv1.Event{
		Type:         eventTypeOfStatus(job.Status),
		RawType:      status,
		OccurredAt:   cloneTimestamp(occurred),
		SourceFormat: h.format,
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

// readWatermark reads `watermark_info.enabled` of the object m reads into
// job, keeping any other member of watermark_info under its key.
func readWatermark(m *members, job *gatewayv1.Job) {
	info, ok := m.object("watermark_info")
	if !ok {
		return
	}
	sub := newMembers(info, at(join(m.path, "watermark_info")), m.r)
	sub.boolean("enabled", &job.WatermarkEnabled)
	m.nest("watermark_info", sub)
}

// event finishes the event of a callback whose header m read: the header
// members nobody mapped go to the job, then the fields derived from the
// header are set.
func (h callbackHeader) finish(status string, job *gatewayv1.Job, m *members) *gatewayv1.Event {
	job.UnmappedJson = m.unmapped()
	return h.event(status, job)
}

// unmappedOutput keeps raw, the output at path, whole.
func unmappedOutput(path, typ, raw, reason string) *gatewayv1.UnmappedOutput {
	return &gatewayv1.UnmappedOutput{Path: path, Type: typ, Json: compact(raw), Reason: reason}
}
