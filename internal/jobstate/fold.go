// Package jobstate folds a job's events, in log order, into its current
// state ([gatewayv1.JobState]). It is pure (no I/O, no clock) so that every
// reader of the log folds the same way: the server's job projection
// (internal/jobs), `klingctl wait` and the public client's WaitJob.
package jobstate

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Outcome says what Fold did with an event.
type Outcome int

const (
	// Skipped means the event was folded before (its sequence is not above
	// the state's last_sequence): nothing changed and nothing is written.
	Skipped Outcome = iota
	// Recorded means the event was counted (last_sequence, event_count,
	// update_time) but did not change the job: the state is terminal or
	// the delivery is stale.
	Recorded
	// Applied means the event changed the job.
	Applied
)

// Terminal reports whether s is a final status: succeeded, failed or
// cancelled. It is the one answer to "is this job finished": the fold, the
// outcome guard, normalization's completion time, the reconciler and the
// Go client's Wait all ask it.
func Terminal(s gatewayv1.JobStatus) bool {
	switch s {
	case gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED, gatewayv1.JobStatus_JOB_STATUS_FAILED, gatewayv1.JobStatus_JOB_STATUS_CANCELLED:
		return true
	}
	return false
}

// Fold returns the state after ev, following the rules documented on
// kling.gateway.v1.JobState. prev may be nil (the job's first event) and is
// never modified. ev must carry its log sequence and a job id; the caller
// keys states by (webhook, job id).
func Fold(prev *gatewayv1.JobState, ev *gatewayv1.Event) (*gatewayv1.JobState, Outcome) {
	if prev != nil && ev.GetSequence() <= prev.GetLastSequence() {
		return prev, Skipped
	}
	var next *gatewayv1.JobState
	if prev == nil {
		next = &gatewayv1.JobState{
			JobId:         ev.GetJob().GetJobId(),
			WebhookId:     ev.GetWebhookId(),
			FirstSeenTime: ev.GetReceivedAt(),
		}
	} else {
		next = successor(prev)
	}
	next.LastSequence = ev.GetSequence()
	next.EventCount++
	next.UpdateTime = ev.GetReceivedAt()

	if prev != nil && !changes(prev.GetJob(), ev) {
		keepCreateEndpoint(next, ev)
		return next, Recorded
	}
	next.Job = merge(next.GetJob(), ev.GetJob())
	next.LastEventType = ev.GetType()
	return next, Applied
}

// successor returns a copy of prev that shares prev's sub-messages (the
// job, the times) rather than copying them: the fold never modifies one in
// place but replaces it (merge builds a new job, keepCreateEndpoint clones
// it first), and a deep copy per event was most of what folding a job that
// changes no more (a terminal one, a stale delivery) cost.
func successor(prev *gatewayv1.JobState) *gatewayv1.JobState {
	next := new(gatewayv1.JobState)
	dst := next.ProtoReflect()
	src := prev.ProtoReflect()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	dst.SetUnknown(src.GetUnknown())
	return next
}

// keepCreateEndpoint takes the create path from an event that does not
// otherwise change the job. CreateJob logs it with Kling's answer, which a
// fast callback can overtake; the path says where the job lives, not how
// far it got, so it must not be lost to a newer or terminal state.
func keepCreateEndpoint(st *gatewayv1.JobState, ev *gatewayv1.Event) {
	if ep := ev.GetJob().GetCreateEndpoint(); ep != "" && st.GetJob().GetCreateEndpoint() == "" {
		if st.Job == nil {
			st.Job = &gatewayv1.Job{}
		} else {
			st.Job = proto.CloneOf(st.Job)
		}
		st.Job.CreateEndpoint = ep
	}
}

// changes reports whether ev may change a job whose current value is cur.
func changes(cur *gatewayv1.Job, ev *gatewayv1.Event) bool {
	if cur == nil {
		return true
	}
	if Terminal(cur.GetStatus()) {
		return false
	}
	if Terminal(ev.GetJob().GetStatus()) {
		return true
	}
	have, got := cur.GetUpdatedAt(), updateTime(ev)
	if have == nil || got == nil {
		return true // nothing to compare: the log order decides
	}
	return !got.AsTime().Before(have.AsTime())
}

// updateTime is when the sender says the delivery's state was current.
func updateTime(ev *gatewayv1.Event) *timestamppb.Timestamp {
	if t := ev.GetJob().GetUpdatedAt(); t != nil {
		return t
	}
	return ev.GetOccurredAt()
}

// merge returns the job of ev with every field ev leaves empty taken from
// cur: outputs, charges, model and prompt usually arrive on one event and
// are absent from the next. It works on every field of Job through
// reflection, so fields added to the contract later merge the same way.
func merge(cur, update *gatewayv1.Job) *gatewayv1.Job {
	out := proto.CloneOf(update)
	if out == nil {
		out = &gatewayv1.Job{}
	}
	if cur == nil {
		return out
	}
	dst, src := out.ProtoReflect(), cur.ProtoReflect()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !dst.Has(fd) {
			dst.Set(fd, v)
		}
		return true
	})
	// A delivery with an unknown status says nothing about where the job
	// is: keep the raw status next to the status it belongs to.
	if update.GetStatus() == gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED && cur.GetStatus() != gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED {
		out.RawStatus = cur.GetRawStatus()
	}
	return out
}

// Duration is how long a finished job took: from created_at (or, when the
// sender never said, when klingfan first saw it) to completed_at (or the
// last update). ok is false when the times are missing or out of order.
func Duration(st *gatewayv1.JobState) (time.Duration, bool) {
	start := st.GetJob().GetCreatedAt()
	if start == nil {
		start = st.GetFirstSeenTime()
	}
	end := st.GetJob().GetCompletedAt()
	if end == nil {
		end = st.GetJob().GetUpdatedAt()
	}
	if end == nil {
		end = st.GetUpdateTime()
	}
	if start == nil || end == nil {
		return 0, false
	}
	d := end.AsTime().Sub(start.AsTime())
	return d, d >= 0
}
