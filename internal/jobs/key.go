// Package jobs owns the job projection: the current state of every Kling
// job, folded from the event log into a JetStream key-value bucket, and the
// per-job cost and duration metrics counted as jobs finish.
//
// The projection follows the log through the hub, which the one log tail
// feeds, and never writes a state the log does not already hold. Every write is a compare-and-set guarded by
// the event's sequence (see [jobstate.Fold]), so a replay after a crash, or several
// replicas folding the same log, converge on the same states and count each
// finished job once.
package jobs

import (
	"crypto/sha256"
	"encoding/base64"

	"github.com/klingfan/klingfan/internal/store"
)

// BucketName is the key-value bucket that holds the job states, one key per
// (webhook, job). Operators can inspect it with `nats kv`.
const BucketName = store.JobsBucketName

// kvStream and kvSubjectPrefix are the bucket's underlying stream and
// subjects, which ListJobs and the wildcard GetJob read directly.
const (
	kvStream        = "KV_" + BucketName
	kvSubjectPrefix = "$KV." + BucketName + "."
)

// checkpointKey holds the highest log sequence up to which every event is
// folded. It has no dot, so it never matches a job key's two tokens.
const checkpointKey = "checkpoint"

// maxRawJobID is the longest job id whose key token is its own encoding;
// longer ones are hashed so keys stay short whatever a sender puts in an id.
const maxRawJobID = 48

// hashedPrefix starts the token of a hashed job id. '=' is outside the
// unpadded base64url alphabet but allowed in a key, so the two never collide.
const hashedPrefix = "="

// jobToken encodes a job id as one key token: Kling's ids are opaque and
// may hold dots or characters a key does not allow.
func jobToken(jobID string) string {
	if len(jobID) > maxRawJobID {
		sum := sha256.Sum256([]byte(jobID))
		return hashedPrefix + base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return base64.RawURLEncoding.EncodeToString([]byte(jobID))
}

// stateKey is the key of a job's state: "<webhook_id>.<job token>".
func stateKey(webhookID, jobID string) string {
	return webhookID + "." + jobToken(jobID)
}

// validKeyToken reports whether a webhook id can be one key token; ids that
// cannot never reach the log (the store refuses them), so none has a state.
func validKeyToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '=':
		default:
			return false
		}
	}
	return true
}
