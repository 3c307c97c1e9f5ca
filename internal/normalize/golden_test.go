package normalize_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/normalize"
)

// update regenerates the golden files: go test ./internal/normalize -update.
var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current Parse output")

const goldenSuffix = ".golden.json"

// payloadFiles lists the sample payloads under testdata, i.e. every JSON
// file that is not itself a golden.
func payloadFiles(tb testing.TB) []string {
	tb.Helper()
	all, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var payloads []string
	for _, p := range all {
		if !strings.HasSuffix(p, goldenSuffix) {
			payloads = append(payloads, p)
		}
	}
	if len(payloads) == 0 {
		tb.Fatal("no payloads under testdata")
	}
	return payloads
}

func goldenPath(payload string) string {
	return strings.TrimSuffix(payload, ".json") + goldenSuffix
}

// marshalGolden renders an Event as indented protojson. protojson output is
// deliberately unstable in its whitespace, so it is re-indented with
// encoding/json to keep regenerated goldens diff-free.
func marshalGolden(tb testing.TB, ev *gatewayv1.Event) []byte {
	tb.Helper()
	raw, err := protojson.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		tb.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func TestParseGolden(t *testing.T) {
	for _, path := range payloadFiles(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := normalize.Parse(body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if *update {
				if err := os.WriteFile(goldenPath(path), marshalGolden(t, got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := readGolden(t, goldenPath(path))
			if !proto.Equal(got, want) {
				t.Errorf("Parse(%s) mismatch\n got: %s\nwant: %s\n(run with -update if the change is intended)",
					path, marshalGolden(t, got), marshalGolden(t, want))
			}
		})
	}
}

func readGolden(tb testing.TB, path string) *gatewayv1.Event {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run with -update to create it)", err)
	}
	want := &gatewayv1.Event{}
	if err := protojson.Unmarshal(raw, want); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return want
}

// TestGoldenHasPayload catches goldens left behind by a renamed or deleted
// payload, which would otherwise silently stop being checked.
func TestGoldenHasPayload(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join("testdata", "*"+goldenSuffix))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldens {
		payload := strings.TrimSuffix(g, goldenSuffix) + ".json"
		if _, err := os.Stat(payload); err != nil {
			t.Errorf("%s has no payload %s", g, payload)
		}
	}
}

// TestGoldenCoverage pins the promise that every format is covered for every
// status, so that deleting a payload is a deliberate act.
func TestGoldenCoverage(t *testing.T) {
	for _, name := range []string{
		"kling_event_created", "kling_event_processing", "kling_event_completed",
		"kling_event_failed", "kling_event_cancelled", "kling_event_unknown_event",
		"legacy_submitted", "legacy_processing", "legacy_succeed", "legacy_failed",
		"legacy_cancelled", "legacy_unknown_status",
		"v2_submitted", "v2_processing", "v2_succeeded_video", "v2_succeeded_image",
		"v2_failed", "v2_cancelled", "v2_unknown_status", "v2_published_example",
		// Every task family and output kind, in both shapes where both exist.
		"legacy_text_to_audio_succeed", "legacy_video_to_audio_succeed", "v2_audio_succeeded",
		"v2_voice_succeeded", "v2_element_materials_succeeded", "v2_element_references_succeeded",
		"v2_subtitle_succeeded", "legacy_omni_image_series_succeed", "legacy_omni_image_single_succeed",
		"v2_image_group_succeeded", "legacy_virtual_try_on_succeed", "legacy_lip_sync_succeed",
		"legacy_effects_succeed", "legacy_succeed_extend", "v2_console_test", "v2_unknown_output",
		"legacy_unknown_result", "kling_event_audio_completed", "kling_event_image_processing",
	} {
		for _, p := range []string{name + ".json", name + goldenSuffix} {
			if _, err := os.Stat(filepath.Join("testdata", p)); err != nil {
				t.Errorf("missing testdata/%s", p)
			}
		}
	}
}

// TestPublishedExample checks Kling's published example body field by field,
// independently of the golden files, since it is the one payload whose
// meaning is documented by Kling itself.
func TestPublishedExample(t *testing.T) {
	body := []byte(`{"id":"1234567890","status":"succeeded","message":"","create_time":1781080778802,"update_time":1781080794151}`)
	ev, err := normalize.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	job := ev.GetJob()
	switch {
	case ev.GetSourceFormat() != gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2:
		t.Errorf("source_format = %v", ev.GetSourceFormat())
	case ev.GetType() != gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED:
		t.Errorf("type = %v", ev.GetType())
	case ev.GetRawType() != "succeeded":
		t.Errorf("raw_type = %q", ev.GetRawType())
	case job.GetJobId() != "1234567890":
		t.Errorf("job_id = %q", job.GetJobId())
	case job.GetStatus() != gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED:
		t.Errorf("status = %v", job.GetStatus())
	case ev.GetOccurredAt().AsTime().UnixMilli() != 1781080794151:
		t.Errorf("occurred_at = %v", ev.GetOccurredAt().AsTime())
	case job.GetCreatedAt().AsTime().UnixMilli() != 1781080778802:
		t.Errorf("created_at = %v", job.GetCreatedAt().AsTime())
	case job.GetCompletedAt().AsTime().UnixMilli() != 1781080794151:
		t.Errorf("completed_at = %v", job.GetCompletedAt().AsTime())
	case ev.GetId() != "" || ev.GetDeliveryId() != "" || ev.GetReceivedAt() != nil || ev.GetRawBody() != nil:
		t.Errorf("Parse set caller-owned fields: %v", ev)
	}
}
