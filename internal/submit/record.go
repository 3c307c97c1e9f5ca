package submit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klingfan/klingfan/internal/store"
)

// BucketName is the key-value bucket of create records (one per request
// id) and token budgets; store's asset table lists it.
const BucketName = store.CreatesBucketName

// Key prefixes in the bucket.
const (
	requestPrefix = "req."
	budgetPrefix  = "budget."
)

// maxRawKey is the longest name whose key token is its own encoding; longer
// ones are hashed, so keys stay short whatever a caller puts in an id.
const maxRawKey = 48

// keyToken encodes an id as one key token.
func keyToken(id string) string {
	if len(id) > maxRawKey {
		sum := sha256.Sum256([]byte(id))
		return "=" + base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// Record states.
const (
	// statePending: a create is claimed and its call to Kling may be in
	// flight until Deadline. Past it, the claim's owner is presumed dead
	// (or its call failed without an answer) and the next attempt resolves
	// the request by looking the external id up at Kling.
	statePending = "pending"
	// stateCreated: Kling created the task and its event is logged.
	stateCreated = "created"
)

// record is one request id's entry. It is written with compare-and-set
// before Kling is called and completed after, so the request id creates at
// most one Kling task across replicas and restarts.
type record struct {
	State       string    `json:"state"`
	RequestID   string    `json:"request_id"`
	Fingerprint string    `json:"fingerprint"`
	Endpoint    string    `json:"endpoint"`
	WebhookID   string    `json:"webhook_id"`
	ExternalID  string    `json:"external_id"`
	Token       string    `json:"token,omitempty"`
	Deadline    time.Time `json:"deadline,omitzero"`
	// TaskID and Sequence are set once created: Kling's task id and the log
	// sequence of the job's created event.
	TaskID   string `json:"task_id,omitempty"`
	Sequence uint64 `json:"sequence,omitempty"`
}

// OpenBucket ensures the create-record bucket (store.Assets' row for
// BucketName): records live as long as the log keeps events, so a request
// id is recognised as long as its job is.
func OpenBucket(ctx context.Context, st *store.Store) (jetstream.KeyValue, error) {
	kv, err := st.EnsureBucket(ctx, BucketName)
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	return kv, nil
}

// load reads the record of a request id; rev 0 means none.
func (s *Submitter) load(ctx context.Context, key string) (*record, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("submit: read %s: %w", key, classify(err))
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("submit: decode %s: %w", key, err)
	}
	return &r, e.Revision(), nil
}

// store writes r at key if the key is still at rev (0: absent). It reports
// false when another writer changed the key first.
func (s *Submitter) store(ctx context.Context, key string, r *record, rev uint64) (uint64, bool, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return 0, false, fmt.Errorf("submit: encode %s: %w", key, err)
	}
	var newRev uint64
	if rev == 0 {
		newRev, err = s.kv.Create(ctx, key, data)
	} else {
		newRev, err = s.kv.Update(ctx, key, data, rev)
	}
	if lostRace(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("submit: write %s: %w", key, classify(err))
	}
	return newRev, true, nil
}

// remove deletes the record at key if it is still at rev.
func (s *Submitter) remove(ctx context.Context, key string, rev uint64) error {
	err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if err != nil && !lostRace(err) {
		return fmt.Errorf("submit: delete %s: %w", key, classify(err))
	}
	return nil
}

// lostRace reports whether a compare-and-set write failed because another
// writer changed the key first.
func lostRace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// classify marks connection-class failures with ErrUnavailable.
func classify(err error) error {
	for _, target := range []error{context.DeadlineExceeded, nats.ErrTimeout, nats.ErrNoResponders,
		nats.ErrConnectionClosed, nats.ErrConnectionDraining, nats.ErrDisconnected, jetstream.ErrNoStreamResponse,
		jetstream.ErrJetStreamNotEnabled, jetstream.ErrBucketNotFound} {
		if errors.Is(err, target) {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 503 {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}
