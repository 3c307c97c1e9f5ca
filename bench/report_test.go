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
