package store_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klingfan/klingfan/internal/apptest"
)

// BenchmarkJetStreamSync measures what JetStream itself offers for fsync
// before acknowledgement, without klingfan, on a bare embedded server and
// one single-replica stream: 16 concurrent publishers with the default
// interval sync (the baseline), the same with sync_always (one fsync per
// message), and sync_always with the 16 messages sent as one atomic batch
// (allow_atomic, whose R1 commit syncs once per batch). Compare each
// always case's ns/op with interval's from the same run, as
// BenchmarkAppendSync does for the group commit; docs/performance.md keeps
// the figures. Re-run it when nats-server moves.
func BenchmarkJetStreamSync(b *testing.B) {
	const appenders = 16
	tests := []struct {
		name       string
		syncAlways bool
		atomic     bool
	}{
		{"interval", false, false},
		{"always", true, false},
		{"always-atomic-batch", true, true},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			js, nc := bareJetStream(b, tt.syncAlways)
			ctx := context.Background()
			payload := make([]byte, 600)
			var next atomic.Int64
			if tt.atomic {
				b.ResetTimer()
				for batch := 0; batch*appenders < b.N; batch++ {
					if err := publishAtomicBatch(ctx, js, nc, "b"+strconv.Itoa(batch), appenders, &next, payload); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for range appenders {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						id := strconv.FormatInt(i, 10)
						if _, err := js.Publish(ctx, "s."+id, payload, jetstream.WithMsgID(id)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// publishAtomicBatch publishes n messages as one atomic batch and waits for
// its commit's acknowledgement.
func publishAtomicBatch(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, id string, n int, next *atomic.Int64, payload []byte) error {
	for seq := 1; seq <= n; seq++ {
		msgID := strconv.FormatInt(next.Add(1), 10)
		m := nats.NewMsg("s." + msgID)
		m.Data = payload
		m.Header.Set(jetstream.MsgIDHeader, msgID)
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(seq))
		if seq < n {
			if err := nc.PublishMsg(m); err != nil {
				return err
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		if _, err := js.PublishMsg(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// bareJetStream starts an embedded server with no listener and one stream
// that allows atomic batches.
func bareJetStream(b *testing.B, syncAlways bool) (jetstream.JetStream, *nats.Conn) {
	b.Helper()
	ns := apptest.StartNATS(b, func(o *server.Options) { o.DontListen, o.SyncAlways = true, syncAlways })
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, AllowAtomicPublish: true}); err != nil {
		b.Fatal(err)
	}
	return js, nc
}
