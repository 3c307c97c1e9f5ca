package store

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// subjectPrefix starts every event subject. The rest is
// "<webhook_id>.<job token>.<event id>", which lets JetStream filter by
// webhook and job on the server and find an event by id without an index.
const subjectPrefix = "klingfan.events."

// maxFilterSubjects caps the number of filter subjects pushed down to a
// consumer. Beyond it, creating the consumer and matching every message
// against the filters costs more than letting the caller filter.
const maxFilterSubjects = 256

// noJobToken stands for an event without a job id. It cannot collide with an
// encoded job id, whose base64 form is never a single character.
const noJobToken = "_"

// maxRawJobID is the longest job id whose token is its own encoding.
// Longer ones are hashed, so a subject stays far below NATS's control-line
// limit whatever a sender puts in a job id (an over-long subject makes the
// server drop the connection).
const maxRawJobID = 48

// hashedJobPrefix starts the token of a hashed job id; it is outside the
// base64url alphabet, so it cannot collide with an encoded one.
const hashedJobPrefix = "~"

// jobToken encodes a job id as a subject token. Kling's job ids are opaque
// and may contain dots or other characters that are special in subjects, so
// they are base64url-encoded (alphabet A-Z a-z 0-9 - _) rather than used
// raw; ids longer than maxRawJobID are replaced by a digest.
func jobToken(jobID string) string {
	if jobID == "" {
		return noJobToken
	}
	if len(jobID) > maxRawJobID {
		sum := sha256.Sum256([]byte(jobID))
		return hashedJobPrefix + base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return base64.RawURLEncoding.EncodeToString([]byte(jobID))
}

// validToken reports whether t can be used verbatim as one subject token:
// non-empty, without the separator, wildcards, whitespace or control
// characters.
func validToken(t string) bool {
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case c == '.' || c == '*' || c == '>' || c == ' ' || c == 0x7f:
			return false
		case c < 0x20:
			return false
		}
	}
	return true
}

// eventSubject returns the subject ev is stored on.
func eventSubject(ev *gatewayv1.Event) string {
	jt := jobToken(ev.GetJob().GetJobId())
	var b strings.Builder
	b.Grow(len(subjectPrefix) + len(ev.GetWebhookId()) + len(jt) + len(ev.GetId()) + 2)
	b.WriteString(subjectPrefix)
	b.WriteString(ev.GetWebhookId())
	b.WriteByte('.')
	b.WriteString(jt)
	b.WriteByte('.')
	b.WriteString(ev.GetId())
	return b.String()
}

// idSubject returns the wildcard subject matching every event with id.
func idSubject(id string) string {
	return subjectPrefix + "*.*." + id
}

// filterSubjects turns webhook and job id filters into consumer filter
// subjects: the cartesian product "klingfan.events.<w|*>.<jobtok|*>.*".
// It returns nil, meaning "read unfiltered", when there is nothing to filter,
// when the product exceeds maxFilterSubjects, or when a webhook id could not
// appear in a subject (the caller's own filter then rejects everything, as
// it must). The subjects never overlap, which JetStream requires: values are
// de-duplicated and a wildcard is used only for an unfiltered dimension.
func filterSubjects(webhookIDs, jobIDs []string) []string {
	if len(webhookIDs) == 0 && len(jobIDs) == 0 {
		return nil
	}
	ws := uniq(webhookIDs, func(w string) string { return w })
	for _, w := range ws {
		if !validToken(w) {
			return nil
		}
	}
	js := uniq(jobIDs, jobToken)
	if len(ws) == 0 {
		ws = []string{"*"}
	}
	if len(js) == 0 {
		js = []string{"*"}
	}
	if len(ws)*len(js) > maxFilterSubjects {
		return nil
	}
	out := make([]string, 0, len(ws)*len(js))
	for _, w := range ws {
		for _, j := range js {
			out = append(out, subjectPrefix+w+"."+j+".*")
		}
	}
	return out
}

// uniq maps values through f and drops repeats, keeping first-seen order.
func uniq(values []string, f func(string) string) []string {
	if len(values) == 0 {
		return nil
	}
	seen := make(map[string]struct{}, len(values))
	out := make([]string, 0, len(values))
	for _, v := range values {
		m := f(v)
		if _, dup := seen[m]; dup {
			continue
		}
		seen[m] = struct{}{}
		out = append(out, m)
	}
	return out
}
