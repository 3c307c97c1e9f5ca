package normalize

import (
	"strconv"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// This file reads the signed JSON events:
// {"event": "video.completed", "timestamp": ..., "data": {...}}.

// identifyKlingEvent reads a signed event's name and job id. The name's
// prefix gives the job kind, which costs nothing more to read.
func identifyKlingEvent(top object) (*gatewayv1.Event, error) {
	name, err := top.requiredStr(root, "event")
	if err != nil {
		return nil, err
	}
	typ, k := eventTypeOfName(name)
	job := &gatewayv1.Job{Status: statusOfEventType(typ), Kind: k}
	if data, err := top.object(root, "data"); err == nil {
		job.JobId, _ = data.id(at("data"), "job_id")
	}
	return &gatewayv1.Event{Type: typ, RawType: name, SourceFormat: gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT, Job: job}, nil
}

// parseKlingEvent normalizes a signed JSON event. Only the event name and
// a data member that is not an object can fail it; every other member
// degrades on its own, as in the callbacks: an unreadable value is left
// unset and kept, with any member this package does not know, in the job's
// unmapped_json. The optional "signature" body member is ignored on
// purpose: the X-Kling-Signature header is the authority, checked before
// parsing, and the raw body keeps it.
func parseKlingEvent(top object, r *report) (*gatewayv1.Event, error) {
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
	typ, jobKind := eventTypeOfName(name)
	ev := &gatewayv1.Event{
		Type:         typ,
		RawType:      name,
		SourceFormat: gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT,
	}
	job := &gatewayv1.Job{Kind: jobKind}
	ev.Job = job

	head := members{o: top, path: root, r: r}
	head.take("event")
	head.take("signature")
	readMember(&head, object.rfc3339, "timestamp", &ev.OccurredAt)

	m := members{o: data, path: at("data"), r: r}
	m.id("job_id", &job.JobId)
	if !readMember(&m, object.str, "status", &job.RawStatus) || absent(data.get("status")) {
		job.Status = statusOfEventType(ev.Type)
	} else {
		job.Status = jobStatusOf(job.RawStatus)
	}
	m.str("error", &job.StatusMessage)
	m.str("prompt", &job.Prompt)
	m.str("model", &job.Model)
	readMember(&m, object.rfc3339, "created_at", &job.CreatedAt)
	readMember(&m, object.rfc3339, "completed_at", &job.CompletedAt)
	readMember(&m, progress, "progress", &job.ProgressPercent)

	video := &gatewayv1.Video{}
	m.str("video_url", &video.Url)
	m.str("thumbnail_url", &video.ThumbnailUrl)
	m.duration("duration", &video.Duration)
	if video.Url != "" || video.ThumbnailUrl != "" || video.Duration != nil {
		job.Videos = []*gatewayv1.Video{video}
	}
	head.nest("data", &m)
	job.UnmappedJson = head.unmapped()
	if job.Kind == gatewayv1.JobKind_JOB_KIND_UNSPECIFIED {
		job.Kind = kindOfOutputs(job)
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
