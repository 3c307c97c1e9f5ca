package klingapi

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/klingfan/klingfan/internal/klingfamily"
)

// BenchmarkDecodeListPage measures what checking each task's shape costs a
// listing page against decoding the same identifying fields into a fixed
// struct (what the client did before it checked shapes): a page of 500
// copies of the avatar corpus task.
func BenchmarkDecodeListPage(b *testing.B) {
	raw, err := os.ReadFile("../../testdata/kling/queries/videos_avatar_image2video.get.succeed.json")
	if err != nil {
		b.Fatal(err)
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		b.Fatal(err)
	}
	page := []byte("[")
	for i := range 500 {
		if i > 0 {
			page = append(page, ',')
		}
		page = append(page, env.Data...)
	}
	page = append(page, ']')
	b.Run("checked", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			if _, err := decodeTaskList(page, klingfamily.Legacy, "videos/avatar/image2video", "GET", "data"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fixed-struct", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			var raws []json.RawMessage
			if err := json.Unmarshal(page, &raws); err != nil {
				b.Fatal(err)
			}
			for _, r := range raws {
				var f struct {
					TaskID     string `json:"task_id"`
					TaskStatus string `json:"task_status"`
					UpdatedAt  int64  `json:"updated_at"`
					TaskInfo   struct {
						ExternalTaskID string `json:"external_task_id"`
					} `json:"task_info"`
				}
				if err := json.Unmarshal(r, &f); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
