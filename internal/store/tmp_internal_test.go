package store

import (
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"context"
	"fmt"
	"testing"
	"time"
)

func TestTmpScanSpeed(t *testing.T) {
	s, err := Open(context.Background(), Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := func(i int) { e := tmpEv(i); if _, _, err := s.Append(context.Background(), e); err != nil { t.Fatal(err) } }
	done := make(chan struct{})
	for w := 0; w < 32; w++ {
		go func(w int) { for i := w; i < 100000; i += 32 { ev(i) }; done <- struct{}{} }(w)
	}
	for w := 0; w < 32; w++ { <-done }
	for _, batch := range []int{256, 1024, 4096} {
		start := time.Now()
		n := 0
		_, err := s.scan(context.Background(), 1, 0, batch, nil, func(seq uint64, data []byte) bool { n++; return true })
		if err != nil { t.Fatal(err) }
		d := time.Since(start)
		fmt.Printf("batch %d: %d msgs in %v = %.0f/s\n", batch, n, d, float64(n)/d.Seconds())
	}
}

func tmpEv(i int) *gatewayv1.Event {
	return &gatewayv1.Event{Id: fmt.Sprintf("e%d", i), WebhookId: "wh", DeliveryId: fmt.Sprint(i), RawBody: []byte(`{"event":"video.completed","data":{"job_id":"abc"}}`), Job: &gatewayv1.Job{JobId: "j"}}
}
