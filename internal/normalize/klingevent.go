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

// parseKlingEvent normalizes a signed JSON event. The optional "signature"
// body member is ignored on purpose: the X-Kling-Signature header is the
// authority, checked before parsing. The format has no place for unknown
// outputs, so r is not used.
func parseKlingEvent(top object, _ *report) (*gatewayv1.Event, error) {
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

	typ, jobKind := eventTypeOfName(name)
	ev := &gatewayv1.Event{
		Type:         typ,
		RawType:      name,
		OccurredAt:   occurred,
		SourceFormat: gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT,
	}
	job := &gatewayv1.Job{Kind: jobKind}
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
