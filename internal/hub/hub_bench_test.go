package hub_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/hub"
)

// benchJobs is how many distinct job ids the benchmark events cycle
// through; a subscriber filtering on one of them matches 1% of events.
const benchJobs = 100

// benchChunk is how many events the publisher builds at a time, with the
// timer stopped, so that neither the building nor a b.N-sized slice of
// events is part of what is measured.
const benchChunk = 4096

// benchLog is an in-memory stand-in for the durable log. Publish never
// touches the log, so it plays no part in what BenchmarkPublish measures;
// it exists only so that a drainer starved of CPU long enough to overflow
// its buffer can catch up the way it would in production instead of
// stalling. Events are a pure function of their sequence, so the fake
// needs no storage: it rebuilds what it is asked for.
type benchLog struct {
	published atomic.Uint64
}

func (l *benchLog) Read(_ context.Context, from uint64, limit int, _, _ []string) ([]*gatewayv1.Event, uint64, error) {
	last := l.published.Load()
	from = max(from, 1)
	var out []*gatewayv1.Event
	for seq := from; seq <= last && len(out) < limit; seq++ {
		out = append(out, benchEvent(seq))
	}
	return out, from + uint64(len(out)), nil
}

func (l *benchLog) Bounds(context.Context) (uint64, uint64, error) {
	return 1, l.published.Load(), nil
}

func (l *benchLog) SeqAt(context.Context, time.Time) (uint64, error) { return 1, nil }

// benchShared is the part of every benchmark event that does not depend on
// its sequence: the hub shares event contents, so the benchmark does too.
var benchShared = func() (jobs []*gatewayv1.Job, ids []string, at *timestamppb.Timestamp, body []byte) {
	at = timestamppb.New(time.Date(2026, 6, 10, 8, 39, 54, 0, time.UTC))
	for i := range benchJobs {
		id := fmt.Sprintf("job-%02d", i)
		ids = append(ids, id)
		jobs = append(jobs, &gatewayv1.Job{
			JobId:           id,
			Status:          gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED,
			RawStatus:       "completed",
			ProgressPercent: 100,
			Prompt:          "A corgi surfing a turquoise wave at golden hour, cinematic, slow motion",
			Model:           "kling-v2-1-master",
			Kind:            gatewayv1.JobKind_JOB_KIND_VIDEO,
			CreatedAt:       at,
			CompletedAt:     at,
			Videos: []*gatewayv1.Video{{
				Id:           "vid-" + id,
				Url:          "https://cdn.klingai.com/bs2/upload-kling-api/7265158418/text2video/" + id + ".mp4",
				ThumbnailUrl: "https://cdn.klingai.com/bs2/upload-kling-api/7265158418/text2video/" + id + ".jpg",
				Duration:     durationpb.New(5100 * time.Millisecond),
			}},
		})
	}
	body = []byte(`{"event":"video.completed","data":{"job_id":"job-00","status":"completed"}}`)
	return jobs, ids, at, body
}

var benchJobList, benchJobIDs, benchAt, benchBody = benchShared()

// benchEvent returns the event at seq, carrying a raw body so that basic
// subscribers exercise hub.WithoutBody as they do in production.
func benchEvent(seq uint64) *gatewayv1.Event {
	return &gatewayv1.Event{
		Id:           fmt.Sprintf("evt_%d", seq),
		Sequence:     seq,
		Type:         gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED,
		RawType:      "video.completed",
		WebhookId:    "default",
		OccurredAt:   benchAt,
		ReceivedAt:   benchAt,
		DeliveryId:   "sha256:bench",
		SourceFormat: gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT,
		Job:          benchJobList[seq%benchJobs],
		RawBody:      benchBody,
	}
}

// BenchmarkPublish measures Hub.Publish, the single goroutine that feeds
// every subscriber, with 1, 100 and 10,000 subscriptions whose stream
// goroutines drain them concurrently (so buffers do not simply overflow).
// "all" subscribers match every event; "1pct" subscribers each filter on
// one job id, so each event matches 1% of them, which costs a filter check
// per subscriber but a channel send for only 1%.
//
// Reported besides ns/op (one Publish): ns/delivery (per matched
// subscriber) and catchups/op (subscribers that overflowed their buffer
// and switched to reading the log; should stay near 0).
func BenchmarkPublish(b *testing.B) {
	for _, subs := range []int{1, 100, 10_000} {
		for _, sel := range []string{"all", "1pct"} {
			b.Run(fmt.Sprintf("subs=%d/match=%s", subs, sel), func(b *testing.B) {
				benchPublish(b, subs, sel == "1pct")
			})
		}
	}
}

func benchPublish(b *testing.B, subs int, sparse bool) {
	log := &benchLog{}
	reg := prometheus.NewRegistry()
	h := hub.New(hub.Config{Log: log, Buffer: 256, Registerer: reg})
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		received atomic.Int64
	)
	for i := range subs {
		var jobs []string
		if sparse {
			jobs = []string{benchJobIDs[i%benchJobs]}
		}
		f, err := hub.NewFilter(nil, jobs, nil)
		if err != nil {
			b.Fatal(err)
		}
		sub, err := h.Subscribe(ctx, f, hub.Start{}, false)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer sub.Close()
			n := int64(0)
			for {
				if _, err := sub.Next(ctx); err != nil {
					received.Add(n)
					return
				}
				n++
			}
		})
	}

	matched := subs
	if sparse {
		// Each event matches the subscribers filtering on its job.
		matched = (subs + benchJobs - 1) / benchJobs
	}
	chunk := make([]*gatewayv1.Event, 0, benchChunk)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(chunk) == 0 {
			b.StopTimer()
			for j := range min(benchChunk, b.N-i) {
				chunk = append(chunk, benchEvent(uint64(i+j+1)))
			}
			b.StartTimer()
		}
		ev := chunk[0]
		chunk = chunk[1:]
		h.Publish(ev)
		log.published.Store(ev.GetSequence())
	}
	b.StopTimer()
	elapsed := b.Elapsed()
	cancel()
	wg.Wait()
	h.Close()

	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)/float64(max(matched, 1)), "ns/delivery")
	b.ReportMetric(counterValue(b, reg, "klingfan_hub_catchups_total")/float64(b.N), "catchups/op")
}

func counterValue(b *testing.B, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// BenchmarkEncodeSubscribeResponse is the "encode once" experiment: every
// Subscribe stream today marshals its own copy of each event (grpc-go's
// codec runs per Send), so a fan-out to N subscribers costs N marshals.
// "per_subscriber" does exactly that for N streams; "once" marshals once
// and would share the bytes (a server codec passing pre-encoded bytes). The
// event is a typical completed callback; "basic" is what streams carry by
// default, "full" adds the raw body (about 1 KiB in all).
func BenchmarkEncodeSubscribeResponse(b *testing.B) {
	full := typicalEvent()
	basic := hub.WithoutBody(full)
	for _, v := range []struct {
		name string
		ev   *gatewayv1.Event
	}{{"basic", basic}, {"full", full}} {
		msg := &gatewayv1.SubscribeResponse{Event: v.ev}
		size := proto.Size(msg)
		for _, n := range []int{1, 1000} {
			b.Run(fmt.Sprintf("view=%s/subs=%d/per_subscriber", v.name, n), func(b *testing.B) {
				b.SetBytes(int64(size * n))
				b.ReportAllocs()
				for b.Loop() {
					for range n {
						if _, err := proto.Marshal(msg); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
			if n == 1 {
				continue // identical to per_subscriber
			}
			b.Run(fmt.Sprintf("view=%s/subs=%d/once", v.name, n), func(b *testing.B) {
				b.SetBytes(int64(size * n))
				b.ReportAllocs()
				shared := make([][]byte, n)
				for b.Loop() {
					enc, err := proto.Marshal(msg)
					if err != nil {
						b.Fatal(err)
					}
					for i := range shared {
						shared[i] = enc // what each stream would write
					}
				}
			})
		}
	}
}

// typicalEvent is a completed Kling callback as ingest stores it: the
// normalized job with one video, plus the raw body (about 1 KiB marshaled).
func typicalEvent() *gatewayv1.Event {
	ev := benchEvent(123456)
	ev.Id = "evt_k7q3m5x2c9v4b8n6z1w0a5s3d7f2g4h8"
	ev.DeliveryId = "sha256:9f2c4e1b7d3a6058c2e9b4f1a7d6c3e8b5a2f9d4c1e7b3a6f0d8c5e2b9a4f7d1"
	ev.RawBody = []byte(`{"event":"video.completed","timestamp":"2026-06-10T08:39:54.151234Z","data":{` +
		`"job_id":"kj_01JXA7M3R9Q2Z8W4V6T5","status":"completed",` +
		`"video_url":"https://cdn.klingai.com/bs2/upload-kling-api/7265158418/text2video/kj_01JXA7M3R9Q2Z8W4V6T5.mp4",` +
		`"thumbnail_url":"https://cdn.klingai.com/bs2/upload-kling-api/7265158418/text2video/kj_01JXA7M3R9Q2Z8W4V6T5.jpg",` +
		`"duration":5.1,"prompt":"A corgi surfing a turquoise wave at golden hour, cinematic, slow motion",` +
		`"model":"kling-v2-1-master","created_at":"2026-06-10T08:38:19Z","completed_at":"2026-06-10T08:39:54.151Z","progress":100},` +
		`"signature":"sha256=` + strings.Repeat("9f2c4e1b", 8) + `"}`)
	return ev
}
