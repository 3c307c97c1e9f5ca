package bench

import (
	"encoding/json"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// svgDoc is what the test reads back from a plot: its bars and texts.
type svgDoc struct {
	XMLName xml.Name `xml:"svg"`
	Rects   []struct {
		Class  string `xml:"class,attr"`
		Height string `xml:"height,attr"` // "100%" on the background

		Title string `xml:"title"`
	} `xml:"rect"`
	Texts []string `xml:"text"`
}

// The plots are drawn from a results file: one bar per figure present,
// heights in proportion to the figures, labels naming each group.
func TestPlotsFromResultsFile(t *testing.T) {
	res := &Results{
		Latency: []LatencyResult{
			{Subscribers: 1, Latency: Percentiles{P50: 1, P99: 2, P999: 3}},
			{Subscribers: 1000, Latency: Percentiles{P50: 10, P99: 40, P999: 60}},
		},
		BareFanout: &LatencyResult{Subscribers: 1000, Bare: true, Latency: Percentiles{P50: 6, P99: 30, P999: 45}},
		Ingest: []IngestRun{
			{Mode: ModeDurable, Concurrency: 16, Subscribers: 100, Baseline: LoadResult{PerSecond: 16000, Cores: 1.6}, Klingfan: LoadResult{PerSecond: 2000}},
			{
				Mode: ModeNoSubscribers, Concurrency: 64, Baseline: LoadResult{PerSecond: 20000, Cores: 2},
				Klingfan: LoadResult{PerSecond: 8000}, LogOnly: &LoadResult{PerSecond: 20000, Cores: 2},
			},
		},
	}
	dir := t.TempDir()
	results := filepath.Join(dir, "results.json")
	if err := writeFile(results, mustJSON(t, res)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := WritePlotsFrom(results, out); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		file    string
		bars    int // every value present: groups × series, less the missing ceilings
		tallest string
		labels  []string
	}{
		{"latency", LatencyPlotFile, 9, "1,000 subscribers, klingfan, p99.9: 60 ms", []string{"1 subscriber", "bare gRPC fan-out", "p99"}},
		// The durable point has no log-alone run, so no ceiling bar; the
		// no-subscriber point's ceiling is half the baseline (equal CPU
		// per delivery): 10,000/s.
		{"ingest", IngestPlotFile, 5, "no subscribers, c=64, baseline (HMAC only): 20,000 deliveries/s", []string{"100 subs", "no subscribers", "ceiling (CPU of baseline + log, + fan-out with subscribers)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(out, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var doc svgDoc
			if err := xml.Unmarshal(data, &doc); err != nil {
				t.Fatalf("not well-formed SVG: %v", err)
			}
			var bars []float64
			var tallest string
			top := 0.0
			for _, r := range doc.Rects {
				if r.Class != "bar" {
					continue
				}
				h := barHeight(t, r.Height)
				bars = append(bars, h)
				if h > top {
					top, tallest = h, r.Title
				}
			}
			if len(bars) != tc.bars {
				t.Errorf("%d bars, want %d", len(bars), tc.bars)
			}
			if tallest != tc.tallest {
				t.Errorf("tallest bar %q, want %q", tallest, tc.tallest)
			}
			texts := strings.Join(doc.Texts, "\n")
			for _, l := range tc.labels {
				if !strings.Contains(texts, l) {
					t.Errorf("no text %q in %q", l, texts)
				}
			}
		})
	}

	// Heights are in proportion: the ingest ceiling (10,000/s) is half the
	// baseline beside it (20,000/s).
	data, err := os.ReadFile(filepath.Join(out, IngestPlotFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc svgDoc
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	heights := map[string]float64{}
	for _, r := range doc.Rects {
		if r.Class == "bar" {
			heights[r.Title] = barHeight(t, r.Height)
		}
	}
	base := heights["no subscribers, c=64, baseline (HMAC only): 20,000 deliveries/s"]
	ceiling := heights["no subscribers, c=64, ceiling (CPU of baseline + log, + fan-out with subscribers): 10,000 deliveries/s"]
	if base == 0 || math.Abs(ceiling/base-0.5) > 0.01 {
		t.Errorf("ceiling bar %.1f against baseline %.1f, want half", ceiling, base)
	}
}

// The committed results file draws both plots.
func TestPlotsFromCommittedResults(t *testing.T) {
	dir := t.TempDir()
	if err := WritePlotsFrom("results.json", dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{LatencyPlotFile, IngestPlotFile} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		var doc svgDoc
		if err := xml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: not well-formed SVG: %v", f, err)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func barHeight(t *testing.T, s string) float64 {
	t.Helper()
	h, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("bar height %q: %v", s, err)
	}
	return h
}
