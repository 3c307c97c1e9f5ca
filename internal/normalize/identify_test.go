package normalize_test

import (
	"errors"
	"testing"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/normalize"
)

func TestIdentify(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		typ    gatewayv1.EventType
		job    string
		format gatewayv1.SourceFormat
		err    error
	}{
		{"signed event with a bad timestamp", `{"event":"video.completed","timestamp":"yesterday","data":{"job_id":"j1"}}`,
			gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, "j1", gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT, nil},
		{"legacy callback with a bad duration", `{"task_id":"j2","task_status":"failed","task_result":{"videos":[{"duration":"x"}]}}`,
			gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED, "j2", gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY, nil},
		{"v2 callback with bad outputs", `{"id":"j3","status":"processing","outputs":"none"}`,
			gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING, "j3", gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2, nil},
		{"malformed JSON", `{"id":`, 0, "", 0, normalize.ErrMalformed},
		{"unknown shape", `{"hello":1}`, 0, "", 0, normalize.ErrUnknownShape},
		{"status of the wrong kind", `{"id":"j4","status":7}`, 0, "", 0, normalize.ErrMalformed},
		{"event name of the wrong kind", `{"event":7,"data":{}}`, 0, "", 0, normalize.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := normalize.Identify([]byte(tc.body))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetType() != tc.typ || ev.GetJob().GetJobId() != tc.job || ev.GetSourceFormat() != tc.format {
				t.Errorf("Identify = %v", ev)
			}
		})
	}
}
