package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// ReadStored visits exactly the events Read returns, as the bytes Append
// stored (the event without its sequence), and returns the same next, for
// unfiltered and filtered reads alike; a visit that says stop ends the
// read right after that event.
func TestReadStoredAgreesWithRead(t *testing.T) {
	s := fixture(t)
	ctx := context.Background()
	tests := []struct {
		name     string
		from     uint64
		limit    int
		webhooks []string
		jobs     []string
		stopAt   uint64 // visit returns false at this sequence (0: never)
	}{
		{name: "first page", from: 1, limit: 3},
		{name: "to the end", from: 8, limit: 10},
		{name: "past the end", from: 11, limit: 5},
		{name: "zero limit", from: 1},
		{name: "webhook", from: 1, limit: 100, webhooks: []string{"w1"}},
		{name: "webhook and job", from: 1, limit: 100, webhooks: []string{"w1"}, jobs: []string{"a.1", "b"}},
		{name: "no match", from: 1, limit: 100, webhooks: []string{"nobody"}},
		{name: "stopped by the visitor", from: 2, limit: 100, stopAt: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit := tt.limit
			if tt.stopAt > 0 {
				limit = int(tt.stopAt - tt.from + 1)
			}
			want, wantNext, err := s.Read(ctx, tt.from, limit, tt.webhooks, tt.jobs)
			if err != nil {
				t.Fatal(err)
			}
			var got []*gatewayv1.Event
			next, err := s.ReadStored(ctx, tt.from, tt.limit, tt.webhooks, tt.jobs, func(seq uint64, data []byte) bool {
				ev := new(gatewayv1.Event)
				if err := proto.Unmarshal(data, ev); err != nil {
					t.Fatalf("sequence %d: %v", seq, err)
				}
				if ev.GetSequence() != 0 {
					t.Errorf("stored bytes at %d carry sequence %d", seq, ev.GetSequence())
				}
				ev.Sequence = seq
				got = append(got, ev)
				return seq != tt.stopAt
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, want, func(a, b *gatewayv1.Event) bool { return proto.Equal(a, b) }) || next != wantNext {
				t.Errorf("ReadStored = %v next %d, Read = %v next %d", seqs(got), next, seqs(want), wantNext)
			}
		})
	}
}

// ReadStored stops near 4 MiB of stored bytes, like Read.
func TestReadStoredBoundsBytes(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	body := []byte(strings.Repeat("b", 1<<20))
	for i := range 8 {
		mustAppend(t, st, &gatewayv1.Event{Id: fmt.Sprint("evt_", i), WebhookId: "w", DeliveryId: fmt.Sprint(i), RawBody: body})
	}
	var seen []uint64
	for from, reads := uint64(1), 0; from <= 8; reads++ {
		n := 0
		next, err := st.ReadStored(ctx, from, 100, nil, nil, func(seq uint64, _ []byte) bool {
			seen = append(seen, seq)
			n++
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 || n > 5 {
			t.Fatalf("read from %d visited %d events of 1 MiB", from, n)
		}
		from = next
		if reads > 8 {
			t.Fatal("reads do not advance")
		}
	}
	if fmt.Sprint(seen) != "[1 2 3 4 5 6 7 8]" {
		t.Errorf("visited %v", seen)
	}
}
