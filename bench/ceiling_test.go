package bench

import "testing"

// The ceiling is the baseline's CPU per delivery over the sum of its and
// every part's: a part that costs as much as the baseline halves it, and
// an unmeasured part leaves no ceiling rather than a flattering one.
func TestCPUCeiling(t *testing.T) {
	base := LoadResult{PerSecond: 10_000, Cores: 1} // 100 µs per delivery
	tests := []struct {
		name  string
		parts []LoadResult
		want  float64
	}{
		{"no parts", nil, 0},
		{"log as costly as the baseline", []LoadResult{{PerSecond: 10_000, Cores: 1}}, 0.5},
		{"log and fan-out", []LoadResult{{PerSecond: 20_000, Cores: 1}, {PerSecond: 5_000, Cores: 1}}, round2(100.0 / (100 + 50 + 200))},
		{"unmeasured part", []LoadResult{{PerSecond: 10_000, Cores: 1}, {}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuCeiling(base, tt.parts...); got != tt.want {
				t.Errorf("cpuCeiling = %v, want %v", got, tt.want)
			}
		})
	}
	if got := cpuCeiling(LoadResult{}, LoadResult{PerSecond: 1, Cores: 1}); got != 0 {
		t.Errorf("cpuCeiling without a baseline = %v, want 0", got)
	}
}
