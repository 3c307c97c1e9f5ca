package bench

import (
	"strings"
	"testing"
)

// The hub's filter benchmark is summarised beside the micro-benchmark
// table as ratios against its unfiltered case of the same run.
func TestFanoutFilterSummary(t *testing.T) {
	micro, err := readMicro("testdata/fanout-filter-micro.txt")
	if err != nil {
		t.Fatal(err)
	}
	res := &Results{Micro: micro}
	md := string(res.markdown(Config{}))
	for _, want := range []string{
		"**Filters in the hub.**",
		"286 µs of CPU per event and reached p99 207.40 ms, against 313 µs and 191.70 ms without (0.92× and 1.08×)",
		"1% of events, 66 µs (0.21×)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// The largest latency point is held against the bare fan-out, and the
// filtered point against the unfiltered one, by the median of the ratios
// taken within each round, so one noisy round does not decide either.
func TestRoundChecks(t *testing.T) {
	bare := &LatencyResult{Subscribers: 1000, Bare: true}
	for _, tc := range []struct {
		name             string
		rounds           []LatencyRound
		over, filt       float64
		overOK, filtOK   bool
		wantFilteredRows int
	}{
		{
			name: "one outlier round does not decide",
			rounds: []LatencyRound{
				{P99: 20, BareP99: 20, FilteredP99: 22},
				{P99: 40, BareP99: 20, FilteredP99: 80},
				{P99: 21, BareP99: 20, FilteredP99: 21},
			},
			over: 1.05, filt: 1.1, overOK: true, filtOK: true, wantFilteredRows: 1,
		},
		{
			name: "slower in most rounds fails",
			rounds: []LatencyRound{
				{P99: 30, BareP99: 20, FilteredP99: 40},
				{P99: 28, BareP99: 20, FilteredP99: 36},
				{P99: 20, BareP99: 20, FilteredP99: 20},
			},
			over: 1.4, filt: 1.29, overOK: false, filtOK: false, wantFilteredRows: 1,
		},
		{
			name:   "without the filter phase only the bare check",
			rounds: []LatencyRound{{P99: 10, BareP99: 10}, {P99: 12, BareP99: 10}},
			over:   1.1, overOK: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := roundChecks(tc.rounds, bare)
			if len(cs) != 1+tc.wantFilteredRows {
				t.Fatalf("got %d checks, want %d: %+v", len(cs), 1+tc.wantFilteredRows, cs)
			}
			if cs[0].Ratio != tc.over || *cs[0].Holds != tc.overOK {
				t.Errorf("against bare: ratio %v holds %v, want %v %v", cs[0].Ratio, *cs[0].Holds, tc.over, tc.overOK)
			}
			if tc.wantFilteredRows == 1 && (cs[1].Ratio != tc.filt || *cs[1].Holds != tc.filtOK) {
				t.Errorf("filtered: ratio %v holds %v, want %v %v", cs[1].Ratio, *cs[1].Holds, tc.filt, tc.filtOK)
			}
		})
	}
	if cs := roundChecks(nil, bare); cs != nil {
		t.Errorf("no rounds gave %+v", cs)
	}
}
