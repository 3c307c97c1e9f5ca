package faults_test

import (
	"slices"
	"testing"
	"time"

	"github.com/klingfan/klingfan/chaos/internal/faults"
)

func TestSchedule(t *testing.T) {
	tests := []struct {
		name string
		n    int
	}{
		{name: "fewer than the kinds", n: 3},
		{name: "one of each kind", n: len(faults.Kinds)},
		{name: "more than the kinds", n: 2*len(faults.Kinds) + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := faults.Schedule(42, tt.n, time.Second, 3*time.Second, faults.Kinds)
			if b := faults.Schedule(42, tt.n, time.Second, 3*time.Second, faults.Kinds); !slices.EqualFunc(a, b, func(x, y faults.Fault) bool { return x.String() == y.String() }) {
				t.Fatalf("seed 42 drew two schedules:\n%v\n%v", a, b)
			}
			if len(a) != tt.n {
				t.Fatalf("%d faults, want %d", len(a), tt.n)
			}
			seen := map[faults.Kind]int{}
			for _, f := range a {
				seen[f.Kind]++
				if f.Hold < time.Second || f.Hold > 3*time.Second {
					t.Errorf("%s: hold outside 1s..3s", f)
				}
			}
			// Every kind comes once before any comes twice.
			for _, k := range faults.Kinds {
				if lo, hi := tt.n/len(faults.Kinds), (tt.n+len(faults.Kinds)-1)/len(faults.Kinds); seen[k] < lo || seen[k] > hi {
					t.Errorf("%s drawn %d times in %d faults", k, seen[k], tt.n)
				}
			}
			if c := faults.Schedule(43, tt.n, time.Second, 3*time.Second, faults.Kinds); slices.EqualFunc(a, c, func(x, y faults.Fault) bool { return x.String() == y.String() }) && tt.n > 2 {
				t.Errorf("seeds 42 and 43 drew the same schedule")
			}
		})
	}
}

func TestParseKinds(t *testing.T) {
	tests := []struct {
		name    string
		list    string
		want    []faults.Kind
		wantErr bool
	}{
		{name: "empty is every kind", list: "", want: faults.Kinds},
		{name: "one", list: "partition-connected", want: []faults.Kind{faults.PartitionConnected}},
		{name: "several, spaced, repeated", list: "kill-node, loss,kill-node", want: []faults.Kind{faults.KillNode, faults.Loss}},
		{name: "unknown", list: "partition-node,flood", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := faults.ParseKinds(tt.list)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseKinds(%q) error %v, want error %v", tt.list, err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseKinds(%q) = %v, want %v", tt.list, got, tt.want)
			}
		})
	}
}

// A schedule drawn from chosen kinds holds only those.
func TestScheduleOfChosenKinds(t *testing.T) {
	for _, f := range faults.Schedule(7, 5, time.Second, 2*time.Second, []faults.Kind{faults.PartitionConnected}) {
		if f.Kind != faults.PartitionConnected {
			t.Errorf("drew %s", f)
		}
		if f.Replica != 0 && f.Replica != 1 {
			t.Errorf("%s: replica %d", f, f.Replica)
		}
	}
}
