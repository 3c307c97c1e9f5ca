// Package normalize turns the three JSON bodies Kling posts into one
// [gatewayv1.Event], so that nothing downstream of ingest ever needs to know
// which wire format a delivery used.
//
// Kling reaches the gateway in three shapes, and the body itself is the only
// reliable way to tell them apart (the same registration may receive more
// than one, and headers are stripped by some proxies). [Parse] therefore
// detects the format by shape, in this order:
//
//  1. Signed JSON events: an object with a string "event" and an object
//     "data" ([gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT]).
//  2. Legacy task callbacks: an object with "task_id" and "task_status"
//     ([gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY]).
//  3. New task callbacks: an object with "id" and "status"
//     ([gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2]).
//
// Parsing is deliberately lenient where a lenient reading cannot change the
// meaning (unknown fields are ignored, JSON null is treated as absent, ids may
// be integers, numbers may be quoted) and strict where a guess could: a field
// this package maps that carries the wrong JSON type, a timestamp that is not
// RFC 3339, or a duration that is negative or longer than a day is rejected
// with [ErrMalformed] rather than silently dropped, because the caller keeps
// the raw body and can surface the rejection, whereas a wrong value in a
// normalized event would mislead every subscriber. Unknown event names and
// statuses are not errors: they yield [gatewayv1.EventType_EVENT_TYPE_UNSPECIFIED]
// with the original string kept in raw_type and raw_status.
//
// [Normalize] is what ingest calls: it degrades to [Identify] when a field
// that does not identify the delivery cannot be read, and reports in
// [Outcome.Incomplete] anything the body holds that this package does not
// know (an output type, a task result collection), so that such a delivery
// is kept and counted rather than refused.
//
// Each wire format has one file with its parse and identify
// (klingevent.go, legacy.go, v2.go); the two callback shapes share one
// header table and reader (callback.go) and the output readers
// (outputs.go). object.go reads JSON members, path.go names them in
// errors, numbers.go holds the number syntax.
//
// All functions are pure and safe for concurrent use. No input makes them
// panic, and error messages never quote more than a short prefix of a value,
// so they are safe to log and to return to the sender.
package normalize
