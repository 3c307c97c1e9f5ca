package normalize_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/normalize"
)

// FuzzParse checks that no input makes Parse or Normalize panic or yield an
// event that cannot be stored, that every error of Parse wraps
// one of the sentinels, and that a nil error always comes with an event that
// names its source format and can be marshaled, since the caller stores it
// as is. The seed corpus is every file under testdata, so the checks also
// run over the golden payloads in a plain `go test`.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		if info, err := os.Stat(p); err != nil || info.IsDir() {
			continue
		}
		body, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"event":"video.completed","data":{"duration":"1e999"}}`,
		`{"task_id":1,"task_status":"succeed","task_result":{"images":[{"index":3}],"videos":[{"duration":-0}]}}`,
		`{"id":"x","status":"succeeded","outputs":[{"type":"image"},{"type":"video","duration":"86400"}]}`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		// Normalize keeps what Parse refuses (unreadable and unknown
		// members, as unmapped JSON): what it keeps must marshal too.
		if out, err := normalize.Normalize(body); err == nil {
			if _, err := proto.Marshal(out.Event); err != nil {
				t.Fatalf("normalized event does not marshal: %v", err)
			}
		}
		ev, err := normalize.Parse(body)
		if err != nil {
			if ev != nil {
				t.Fatalf("event %v returned with error %v", ev, err)
			}
			if !errors.Is(err, normalize.ErrMalformed) && !errors.Is(err, normalize.ErrUnknownShape) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if ev == nil {
			t.Fatal("nil event with nil error")
		}
		if ev.GetSourceFormat() == gatewayv1.SourceFormat_SOURCE_FORMAT_UNSPECIFIED {
			t.Fatalf("source_format unset: %v", ev)
		}
		if ev.GetJob() == nil {
			t.Fatalf("job unset: %v", ev)
		}
		if p := ev.GetJob().GetProgressPercent(); p < 0 || p > 100 {
			t.Fatalf("progress %d out of range", p)
		}
		videos := append([]*gatewayv1.Video{ev.GetJob().GetParentVideo()}, ev.GetJob().GetVideos()...)
		for _, v := range videos {
			if d := v.GetDuration(); d != nil && (d.CheckValid() != nil || d.AsDuration() < 0) {
				t.Fatalf("invalid duration %v", d)
			}
		}
		if _, err := proto.Marshal(ev); err != nil {
			t.Fatalf("event does not marshal: %v", err)
		}
	})
}
