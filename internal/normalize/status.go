package normalize

import (
	"strings"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// This file maps the formats' status words and event names to the enums,
// and derives what a job makes from what it returned.

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

// statusEventTypes pairs each job status a task callback can report with
// the event type it makes. eventTypeOfStatus and its inverse both read it,
// so the two directions cannot disagree.
var statusEventTypes = [...]struct {
	status gatewayv1.JobStatus
	typ    gatewayv1.EventType
}{
	{gatewayv1.JobStatus_JOB_STATUS_SUBMITTED, gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED},
	{gatewayv1.JobStatus_JOB_STATUS_PROCESSING, gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING},
	{gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED, gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED},
	{gatewayv1.JobStatus_JOB_STATUS_FAILED, gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED},
	{gatewayv1.JobStatus_JOB_STATUS_CANCELLED, gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED},
}

// eventTypeOfStatus derives the event type of a task callback from its
// normalized status. Deriving it from the JobStatus, rather than from a
// second string table, guarantees that type and job.status never disagree.
func eventTypeOfStatus(s gatewayv1.JobStatus) gatewayv1.EventType {
	for _, p := range statusEventTypes {
		if p.status == s {
			return p.typ
		}
	}
	return gatewayv1.EventType_EVENT_TYPE_UNSPECIFIED
}

// statusOfEventType is the inverse of eventTypeOfStatus. It fills in
// job.status for signed events whose data carries no status, since the
// event name alone says where the job stands.
func statusOfEventType(t gatewayv1.EventType) gatewayv1.JobStatus {
	for _, p := range statusEventTypes {
		if p.typ == t {
			return p.status
		}
	}
	return gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED
}

// eventNameKinds maps the prefix of a signed event's name to what the job
// makes. Event types keep their `video.*` names for every kind, so
// "audio.completed" is EVENT_TYPE_VIDEO_COMPLETED with kind JOB_KIND_AUDIO.
var eventNameKinds = map[string]gatewayv1.JobKind{
	"video":    gatewayv1.JobKind_JOB_KIND_VIDEO,
	"image":    gatewayv1.JobKind_JOB_KIND_IMAGE,
	"audio":    gatewayv1.JobKind_JOB_KIND_AUDIO,
	"voice":    gatewayv1.JobKind_JOB_KIND_VOICE,
	"element":  gatewayv1.JobKind_JOB_KIND_ELEMENT,
	"subtitle": gatewayv1.JobKind_JOB_KIND_SUBTITLE,
}

// eventNameStates maps the part of a signed event's name after the dot to
// the event type it means.
var eventNameStates = map[string]gatewayv1.EventType{
	"created":    gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED,
	"processing": gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING,
	"completed":  gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED,
	"failed":     gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED,
	"cancelled":  gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED,
}

// eventTypeOfName maps a signed event's name, e.g. "audio.completed", to
// an EventType and the job kind its prefix names, case-insensitively for
// the same reason as jobStatusOf. A name with an unknown prefix or state is
// EVENT_TYPE_UNSPECIFIED; a known prefix still gives the kind.
func eventTypeOfName(name string) (gatewayv1.EventType, gatewayv1.JobKind) {
	prefix, state, _ := strings.Cut(strings.ToLower(strings.TrimSpace(name)), ".")
	k, ok := eventNameKinds[prefix]
	if !ok {
		return gatewayv1.EventType_EVENT_TYPE_UNSPECIFIED, gatewayv1.JobKind_JOB_KIND_UNSPECIFIED
	}
	return eventNameStates[state], k
}

// kindOfOutputs derives what a job makes from what it returned, most
// specific first: a subtitling task also returns a video, a video-to-audio
// task returns its video as well as the audio, and an element carries
// images. Nothing returned yet (a status-only callback, Kling's console
// test with empty outputs) tells nothing.
func kindOfOutputs(job *gatewayv1.Job) gatewayv1.JobKind {
	switch {
	case len(job.GetSubtitles()) > 0:
		return gatewayv1.JobKind_JOB_KIND_SUBTITLE
	case len(job.GetElements()) > 0:
		return gatewayv1.JobKind_JOB_KIND_ELEMENT
	case len(job.GetVoices()) > 0:
		return gatewayv1.JobKind_JOB_KIND_VOICE
	case len(job.GetAudios()) > 0:
		return gatewayv1.JobKind_JOB_KIND_AUDIO
	case len(job.GetVideos()) > 0:
		return gatewayv1.JobKind_JOB_KIND_VIDEO
	case len(job.GetImages()) > 0, job.GetImageResultType() != "":
		return gatewayv1.JobKind_JOB_KIND_IMAGE
	}
	return gatewayv1.JobKind_JOB_KIND_UNSPECIFIED
}
