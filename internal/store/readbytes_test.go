package store_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// A read stops near 4 MiB of stored events whatever its limit, and next
// continues exactly after the last event returned.
func TestReadBoundsBytes(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	body := []byte(strings.Repeat("b", 1<<20))
	for i := range 8 {
		ev := &gatewayv1.Event{Id: fmt.Sprint("evt_", i), WebhookId: "w", DeliveryId: fmt.Sprint(i), RawBody: body}
		if _, _, err := st.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	var seqs []uint64
	for from, reads := uint64(1), 0; from <= 8; reads++ {
		events, next, err := st.Read(ctx, from, 100, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 || len(events) > 5 {
			t.Fatalf("read from %d returned %d events of 1 MiB", from, len(events))
		}
		for _, ev := range events {
			seqs = append(seqs, ev.GetSequence())
		}
		if next != events[len(events)-1].GetSequence()+1 {
			t.Fatalf("next = %d after sequence %d", next, events[len(events)-1].GetSequence())
		}
		from = next
		if reads > 8 {
			t.Fatal("reads do not advance")
		}
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5 6 7 8]" {
		t.Errorf("read %v", seqs)
	}
}

// ReadBackward holds at most maxBackwardBytes (32 MiB) of raw messages from
// a window: a newest-first page of large events ends early, with a next
// sequence, and paging on still returns every event once, in order.
func TestReadBackwardByteCap(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	const n, size = 12, 4 << 20
	for i := range n {
		ev := testEvent("wh", fmt.Sprint("big-", i), "j")
		ev.RawBody = bytes.Repeat([]byte{'x'}, size)
		mustAppend(t, s, ev)
	}
	var seqs []uint64
	from, pages := uint64(n), 0
	for from != 0 {
		events, next, err := s.ReadBackward(ctx, from, n, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		held := 0
		for _, ev := range events {
			held += len(ev.GetRawBody())
			seqs = append(seqs, ev.GetSequence())
		}
		if held > 32<<20 {
			t.Fatalf("one page held %d MiB of raw bodies, over the 32 MiB cap", held>>20)
		}
		from = next
		pages++
	}
	if pages < 2 || len(seqs) != n {
		t.Fatalf("%d pages, %d events; want every one of %d events over at least 2 pages", pages, len(seqs), n)
	}
	for i, seq := range seqs {
		if seq != uint64(n-i) {
			t.Fatalf("sequences %v, want %d down to 1", seqs, n)
		}
	}
}
