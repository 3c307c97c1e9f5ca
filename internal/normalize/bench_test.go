package normalize_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/klingfan/klingfan/internal/normalize"
)

// BenchmarkParse measures a typical completed delivery in each format, the
// hot path of ingest.
func BenchmarkParse(b *testing.B) {
	for _, name := range []string{"kling_event_completed", "legacy_succeed", "v2_succeeded_video"} {
		body, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := normalize.Parse(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
