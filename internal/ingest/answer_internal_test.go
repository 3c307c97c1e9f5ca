package ingest

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The pre-encoded success answer is byte for byte what writeJSON would
// write, so senders see no difference.
func TestReceivedAnswerIsWriteJSONs(t *testing.T) {
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(receivedBody{Received: true}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(receivedAnswer, want.Bytes()) {
		t.Errorf("receivedAnswer = %q, writeJSON writes %q", receivedAnswer, want.Bytes())
	}
}
