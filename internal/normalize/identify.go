package normalize

import (
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Identify reads only what identifies a delivery: its format, its event
// name or status, and its job id. Ingest uses it when Parse refuses a
// well-formed payload of a known shape over a field that does not identify
// it (a duration it cannot read, say), so that a verified delivery is kept,
// with its raw body, rather than answered 400 and lost: senders do not
// retry a 4xx. It fails, like Parse, on malformed JSON, an unknown shape or
// an identifying field of the wrong kind.
func Identify(body []byte) (*gatewayv1.Event, error) {
	top, err := decodeTop(body)
	if err != nil {
		return nil, err
	}
	switch {
	case top.has("event") && top.has("data"):
		name, err := top.requiredStr(root, "event")
		if err != nil {
			return nil, err
		}
		typ := eventTypeOfName(name)
		job := &gatewayv1.Job{Status: statusOfEventType(typ)}
		if data, err := top.object(root, "data"); err == nil {
			job.JobId, _ = data.id(at("data"), "job_id")
		}
		return &gatewayv1.Event{Type: typ, RawType: name, SourceFormat: gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT, Job: job}, nil
	case top.has("task_id") && top.has("task_status"):
		return identifyCallback(top, gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY, "task_status", "task_id")
	case top.has("id") && top.has("status"):
		return identifyCallback(top, gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2, "status", "id")
	}
	_, err = Parse(body) // the unknown-shape error, worded in one place
	return nil, err
}

func identifyCallback(top object, format gatewayv1.SourceFormat, statusKey, idKey string) (*gatewayv1.Event, error) {
	status, job, err := callbackJob(top, statusKey, idKey)
	if err != nil {
		return nil, err
	}
	return &gatewayv1.Event{Type: eventTypeOfStatus(job.Status), RawType: status, SourceFormat: format, Job: job}, nil
}

// callbackJob reads what identifies a task callback in either shape: its
// status and its task id. Parse and Identify share it, so the two can never
// disagree on what a callback is.
func callbackJob(top object, statusKey, idKey string) (string, *gatewayv1.Job, error) {
	status, err := top.requiredStr(root, statusKey)
	if err != nil {
		return "", nil, err
	}
	id, err := top.requiredID(root, idKey)
	if err != nil {
		return "", nil, err
	}
	return status, &gatewayv1.Job{JobId: id, RawStatus: status, Status: jobStatusOf(status)}, nil
}
