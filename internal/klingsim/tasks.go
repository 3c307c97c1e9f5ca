// Package klingsim simulates Kling for development, demos and tests: it
// serves the task query API (both auth styles, both API generations),
// creates tasks on request or at a rate, moves them through submitted →
// processing → succeeded/failed with realistic outputs, and posts Standard
// Webhooks-signed callbacks (legacy and new shape) to a callback URL,
// dropping, duplicating, delaying or reordering a configured share of them.
// It is meant for loopback only.
package klingsim

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/klingfan/klingfan/internal/klingapi"
)

// Task statuses as the legacy API spells them; the new API says
// "succeeded" where the legacy one says "succeed".
const (
	StatusSubmitted  = "submitted"
	StatusProcessing = "processing"
	StatusSucceed    = "succeed"
	StatusFailed     = "failed"
)

// task is one simulated task. Times are Unix milliseconds.
type task struct {
	id       string
	external string
	family   klingapi.Family
	v2       bool
	status   string
	msg      string
	created  int64
	updated  int64
	units    string
}

// publicStatus is the status in the task's own API generation.
func (t *task) publicStatus() string {
	if t.v2 && t.status == StatusSucceed {
		return "succeeded"
	}
	return t.status
}

const cdn = "https://cdn.klingai.com/bs2/upload-kling-api/klingsim/"

// body renders the task in its callback (and query answer) shape.
func (t *task) body() []byte {
	var v any
	if t.v2 {
		v = t.v2Body()
	} else {
		v = t.legacyBody()
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("klingsim: encode task: %v", err)) // static types: cannot fail
	}
	return b
}

func (t *task) legacyBody() map[string]any {
	m := map[string]any{
		"task_id":         t.id,
		"task_status":     t.status,
		"task_status_msg": t.msg,
		"created_at":      t.created,
		"updated_at":      t.updated,
		"task_info":       map[string]any{"external_task_id": t.external},
	}
	if t.status != StatusSucceed {
		return m
	}
	m["final_unit_deduction"] = t.units
	res := map[string]any{}
	switch t.family.Group {
	case "images":
		res["images"] = []map[string]any{{"index": 0, "url": cdn + t.id + "-0.png"}, {"index": 1, "url": cdn + t.id + "-1.png"}}
	case "audio":
		res["audios"] = []map[string]any{{"id": t.id + "-a0", "url_mp3": cdn + t.id + ".mp3", "url_wav": cdn + t.id + ".wav", "duration_mp3": "5.0", "duration_wav": "5.0"}}
	default:
		res["videos"] = []map[string]any{{"id": t.id + "-v0", "url": cdn + t.id + ".mp4", "duration": "5.1"}}
	}
	m["task_result"] = res
	return m
}

func (t *task) v2Body() map[string]any {
	m := map[string]any{
		"id":          t.id,
		"status":      t.publicStatus(),
		"message":     t.msg,
		"create_time": t.created,
		"update_time": t.updated,
		"external_id": t.external,
	}
	if t.status != StatusSucceed {
		return m
	}
	typ, ext := "video", ".mp4"
	switch t.family.Group {
	case "images":
		typ, ext = "image", ".png"
	case "audio":
		typ, ext = "audio", ".mp3"
	}
	out := map[string]any{"type": typ, "id": t.id + "-o0", "url": cdn + t.id + ext, "watermark_url": cdn + t.id + "-wm" + ext}
	if typ != "image" {
		out["duration"] = "5.1"
	}
	m["outputs"] = []map[string]any{out}
	m["billing"] = []map[string]any{{"type": "units", "amount": t.units}}
	return m
}

// unixMilli is t in Unix milliseconds.
func unixMilli(t time.Time) int64 { return t.UnixMilli() }
