package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/ingest"
	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/store"
	"github.com/klingfan/klingfan/internal/verify"
)

// benchAppender stands in for the log when only the handler's own cost is
// measured: it acknowledges every append at once.
type benchAppender struct{ seq atomic.Uint64 }

func (a *benchAppender) Append(context.Context, *gatewayv1.Event) (uint64, bool, error) {
	return a.seq.Add(1), false, nil
}

func (a *benchAppender) Stored(context.Context, *gatewayv1.Event) (uint64, bool, error) {
	return 0, false, nil
}

// BenchmarkServeHTTP measures one signed delivery through the ingest
// handler (routing, verification, normalization, ids, answer) without the
// network: "log=none" with an appender that acknowledges at once, so the
// figure is the handler's own cost; "log=jetstream" with the real embedded
// store, 16 deliveries in flight, so the figure is the durable append's
// throughput as ingest sees it. Signature verification and normalization
// alone have their own benchmarks in internal/verify and
// internal/normalize. Each delivery has a distinct body, as a distinct
// callback would.
func BenchmarkServeHTTP(b *testing.B) {
	b.Run("log=none", func(b *testing.B) {
		mux := benchHandler(b, &benchAppender{})
		bodies := benchBodies(1024)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			benchPost(b, mux, bodies[i%len(bodies)])
			i++
		}
	})
	b.Run("log=jetstream", func(b *testing.B) {
		st, err := store.Open(context.Background(), store.Config{DataDir: b.TempDir(), Logger: benchLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		mux := benchHandlerOn(b, st, st)
		var n atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(8) // 8 × GOMAXPROCS deliveries in flight
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				// Distinct bodies: a repeated one would be deduplicated.
				benchPost(b, mux, benchBody(int(n.Add(1))))
			}
		})
	})
}

func benchPost(b *testing.B, h http.Handler, body []byte) {
	req := httptest.NewRequest(http.MethodPost, "/webhooks/klingai", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(verify.HeaderKlingSignature, verify.SignKling([]byte(benchKlingSecret), body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

const benchKlingSecret = "kling-secret-for-benchmarks"

func benchLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

// benchHandler returns the ingest routes over events, with the "default"
// registration (X-Kling-Signature) kept in a real registry.
func benchHandler(b *testing.B, events ingest.Appender) http.Handler {
	st, err := store.Open(context.Background(), store.Config{DataDir: b.TempDir(), Logger: benchLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return benchHandlerOn(b, st, events)
}

func benchHandlerOn(b *testing.B, st *store.Store, events ingest.Appender) http.Handler {
	ctx := context.Background()
	reg, err := registry.Open(ctx, registry.Config{KV: st.KV(), Logger: benchLogger(), Schemes: verify.SchemeTable{}})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	if _, err := reg.Create(ctx, &registry.Webhook{
		ID: registry.DefaultID, Scheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE, Active: true,
		Tolerance: registry.DefaultTolerance, Secrets: []registry.Secret{{Value: benchKlingSecret}},
		CreateTime: now, UpdateTime: now,
	}); err != nil {
		b.Fatal(err)
	}
	// The registry learns of the creation through its KV watch.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, ok := reg.Get(registry.DefaultID); ok {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("registration not visible after 5s")
		}
		time.Sleep(5 * time.Millisecond) // polling the registry's watch
	}
	mux := http.NewServeMux()
	ingest.New(ingest.Config{Logger: benchLogger(), Registrations: reg, Events: events, MaxBodyBytes: 1 << 20}).Routes(mux)
	return mux
}

func benchBodies(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = benchBody(i)
	}
	return out
}

// benchBody is a ~600-byte video.completed delivery about job i.
func benchBody(i int) []byte {
	return fmt.Appendf(nil, `{"event":"video.completed","timestamp":"2026-06-10T08:39:54.151234Z","data":{"job_id":"kj_bench_%d",`+
		`"status":"completed","video_url":"https://cdn.klingai.com/bs2/upload-kling-api/7265158418/text2video/kj_bench_%d.mp4",`+
		`"thumbnail_url":"https://cdn.klingai.com/bs2/upload-kling-api/7265158418/text2video/kj_bench_%d.jpg","duration":5.1,`+
		`"prompt":"A corgi surfing a turquoise wave at golden hour, cinematic, slow motion","model":"kling-v2-1-master",`+
		`"created_at":"2026-06-10T08:38:19Z","completed_at":"2026-06-10T08:39:54.151Z","progress":100}}`, i, i, i)
}

// BenchmarkRefusal measures a forged delivery (a well-formed but wrong
// X-Kling-Signature) to a registered id and to an unknown one, which must
// cost about the same: a gap is a timing channel that tells a stranger
// guessing ids which exist. Compare the two ns/op of one run.
func BenchmarkRefusal(b *testing.B) {
	mux := benchHandler(b, &benchAppender{})
	for _, size := range []int{600, 1 << 20} {
		body := bytes.Repeat([]byte(" "), size)
		sig := verify.SignKling([]byte("not-the-secret"), body)
		for _, id := range []struct{ name, path string }{{"registered", "/webhooks/klingai"}, {"unknown", "/webhooks/kling/nobody"}} {
			b.Run(fmt.Sprintf("body=%d/id=%s", size, id.name), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					req := httptest.NewRequest(http.MethodPost, id.path, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set(verify.HeaderKlingSignature, sig)
					rec := httptest.NewRecorder()
					mux.ServeHTTP(rec, req)
					if rec.Code != http.StatusUnauthorized {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
		}
	}
}
