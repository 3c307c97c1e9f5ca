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
// meaning (JSON null is treated as absent, ids may be integers, numbers may
// be quoted) and strict where a guess could: a member this package maps
// that carries the wrong JSON type, a timestamp that is not RFC 3339, or a
// duration that is negative or longer than a day is never guessed at. What
// happens then depends on the caller. [Parse] rejects the body with
// [ErrMalformed]. [Normalize], what ingest calls, degrades per field,
// never per delivery: the member is left unset and kept, with every member
// this package does not know, in the unmapped_json of the output it
// belongs to (or of the job, for the header); an output of a type it does
// not know is kept whole in the job's unmapped_outputs; and
// [Outcome.Incomplete] names each, so that such a delivery is kept and
// counted rather than refused, and its header and other outputs survive.
// Only what identifies a delivery (the event name, task id and status) can
// make [Normalize] fail. Unknown event names and statuses are not errors:
// they yield [gatewayv1.EventType_EVENT_TYPE_UNSPECIFIED] with the original
// string kept in raw_type and raw_status.
//
// Each wire format has one file with its parse and identify
// (klingevent.go, legacy.go, v2.go); the two callback shapes share one
// header table and reader (callback.go) and the output readers
// (outputs.go); fields.go is the reader every object goes through, which
// remembers what it mapped. object.go reads JSON members, path.go names
// them in errors, numbers.go holds the number syntax.
//
// All functions are pure and safe for concurrent use. No input makes them
// panic, and error messages never quote more than a short prefix of a value,
// so they are safe to log and to return to the sender.
package normalize
