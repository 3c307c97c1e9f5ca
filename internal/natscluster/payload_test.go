package natscluster_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// On a cluster with NATS's default max_payload (1 MiB) the replica lowers
// its body limit to what it can store: a body over it gets 413, which
// Kling will not retry in vain, instead of a 503 forever; one under it is
// stored.
func TestBodyLimitFollowsMaxPayload(t *testing.T) {
	h := newHarness(t)
	a := h.replica("a")
	body := func(job string, size int) delivery {
		prefix := fmt.Sprintf(`{"event":"video.completed","data":{"job_id":%q,"prompt":"`, job)
		return delivery{job: job, body: []byte(prefix + strings.Repeat("p", size-len(prefix)-3) + `"}}`)}
	}
	if status, err := a.post(body("too-big", 600<<10), secret); err != nil || status != http.StatusRequestEntityTooLarge {
		t.Fatalf("600 KiB body: status %d, err %v; want 413", status, err)
	}
	a.mustPost(t, body("fits", 400<<10))
}
