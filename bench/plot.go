package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The plots BENCHMARKS.md shows beside its tables, written next to it.
//
// They are drawn as SVG by hand with the standard library: two grouped
// bar charts need a few dozen elements, and the plotting libraries that
// draw them pull fonts and image codecs into the harness's module.
const (
	LatencyPlotFile = "bench-latency.svg"
	IngestPlotFile  = "bench-ingest.svg"
)

// WritePlots writes the plots of res into dir: the latency percentiles
// per subscriber count beside the bare gRPC fan-out, and the ingest rate
// per mode beside its baseline and ceiling. A plot without figures in res
// is not written.
func WritePlots(res *Results, dir string) error {
	for name, c := range map[string]*barChart{LatencyPlotFile: latencyChart(res), IngestPlotFile: ingestChart(res)} {
		if c == nil {
			continue
		}
		if err := writeFile(filepath.Join(dir, name), c.svg()); err != nil {
			return err
		}
	}
	return nil
}

// WritePlotsFrom draws the plots of a results file (bench/results.json)
// into dir, so they can be drawn again without running the harness.
func WritePlotsFrom(resultsFile, dir string) error {
	data, err := os.ReadFile(resultsFile) //nolint:gosec // G304: the file the developer named
	if err != nil {
		return err
	}
	var res Results
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("bench: %s: %w", resultsFile, err)
	}
	return WritePlots(&res, dir)
}

// latencyChart is p50, p99 and p99.9 per subscriber count, then the bare
// fan-out at the largest count.
func latencyChart(res *Results) *barChart {
	if len(res.Latency) == 0 {
		return nil
	}
	c := &barChart{
		title:  "End-to-end latency per subscriber count, and the bare gRPC fan-out (same run)",
		unit:   "ms",
		series: []string{"p50", "p99", "p99.9"},
	}
	add := func(label string, p Percentiles) {
		c.groups = append(c.groups, barGroup{label: label, values: []float64{p.P50, p.P99, p.P999}})
	}
	for _, lr := range res.Latency {
		add(fmt.Sprintf("%s, klingfan", subscriberCount(lr.Subscribers)), lr.Latency)
	}
	if b := res.BareFanout; b != nil {
		add(fmt.Sprintf("%s, bare gRPC fan-out", subscriberCount(b.Subscribers)), b.Latency)
	}
	return c
}

// ingestChart is each ingest point's rate beside its baseline (HMAC only,
// measured just before) and, where the log alone was measured, the
// ceiling: the rate the baseline's CPU plus the log's per delivery (and
// with subscribers the bare fan-out's) allow.
func ingestChart(res *Results) *barChart {
	if len(res.Ingest) == 0 {
		return nil
	}
	c := &barChart{
		title:  "Ingest rate per mode beside the HMAC-only baseline and the ceiling (same run)",
		unit:   "deliveries/s",
		series: []string{"baseline (HMAC only)", "klingfan", "ceiling (CPU of baseline + log, + fan-out with subscribers)"},
	}
	for _, ir := range res.Ingest {
		ceiling := math.NaN()
		if r := ir.ceiling(); r > 0 {
			ceiling = r * ir.Baseline.PerSecond
		}
		mode := map[string]string{
			ModeDurable:             fmt.Sprintf("%d subs, every event", ir.Subscribers),
			ModeFiltered:            fmt.Sprintf("%d subs, 1%% each", ir.Subscribers),
			ModeSyncAlways:          fmt.Sprintf("sync always, %d subs", ir.Subscribers),
			ModeNoSubscribers:       "no subscribers",
			ModeNoSubscribersAlways: "sync always, no subscribers",
		}[ir.Mode]
		if mode == "" {
			mode = ir.Mode
		}
		c.groups = append(c.groups, barGroup{
			label:  fmt.Sprintf("%s, c=%d", mode, ir.Concurrency),
			values: []float64{ir.Baseline.PerSecond, ir.Klingfan.PerSecond, ceiling},
		})
	}
	return c
}

// barChart is a grouped bar chart: one bar per series in each group; a
// NaN value draws no bar.
type barChart struct {
	title  string
	unit   string
	series []string
	groups []barGroup
}

type barGroup struct {
	label  string
	values []float64
}

// Colours of the series, in order (Okabe-Ito, readable by colour-blind
// readers).
var plotColours = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7"}

// Layout, in SVG user units.
const (
	plotBarWidth      = 16
	plotMinGroupWidth = 110
	plotLeft          = 70
	plotTop           = 50
	plotHeight        = 260
	plotLabelRoom     = 60 // below the axis, for three lines of group label
	plotMinWidth      = 620
)

func (c *barChart) svg() []byte {
	top := 0.0
	for _, g := range c.groups {
		for _, v := range g.values {
			if !math.IsNaN(v) {
				top = max(top, v)
			}
		}
	}
	step := niceStep(top / 5)
	top = math.Ceil(top/step) * step
	if top <= 0 {
		top, step = 1, 1
	}
	groupWidth := max(len(c.series)*plotBarWidth+20, plotMinGroupWidth)
	width := max(plotLeft+len(c.groups)*groupWidth+20, plotMinWidth)
	legendY := plotTop + plotHeight + plotLabelRoom
	height := legendY + 20*len(c.series) + 10
	y := func(v float64) float64 { return plotTop + plotHeight - v/top*plotHeight }

	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="10" y="20" font-size="13" font-weight="bold">%s</text>`+"\n", html.EscapeString(c.title))
	p(`<text x="12" y="%d" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`+"\n", plotTop+plotHeight/2, plotTop+plotHeight/2, html.EscapeString(c.unit))
	for v := 0.0; v <= top+step/2; v += step {
		p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", plotLeft, width-20, y(v), y(v))
		p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", plotLeft-6, y(v)+4, formatValue(v))
	}
	for gi, g := range c.groups {
		x0 := plotLeft + gi*groupWidth + (groupWidth-len(c.series)*plotBarWidth)/2
		for si, v := range g.values {
			if math.IsNaN(v) || si >= len(c.series) {
				continue
			}
			x := x0 + si*plotBarWidth
			p(`<rect class="bar" x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s, %s: %s %s</title></rect>`+"\n",
				x, y(v), plotBarWidth-2, plotTop+plotHeight-y(v), plotColours[si%len(plotColours)],
				html.EscapeString(g.label), html.EscapeString(c.series[si]), formatValue(v), html.EscapeString(c.unit))
		}
		// The label's comma-separated parts, one line each, under the group.
		lx := plotLeft + gi*groupWidth + groupWidth/2
		for li, line := range strings.Split(g.label, ", ") {
			p(`<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", lx, plotTop+plotHeight+16+li*14, html.EscapeString(line))
		}
	}
	p(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>`+"\n", plotLeft, width-20, plotTop+plotHeight, plotTop+plotHeight)
	for si, s := range c.series {
		ly := legendY + si*20
		p(`<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", plotLeft, ly, plotColours[si%len(plotColours)], plotLeft+18, ly+10, html.EscapeString(s))
	}
	p("</svg>\n")
	return b.Bytes()
}

// niceStep rounds a raw axis step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}

func formatValue(v float64) string {
	if v >= 100 || v == math.Trunc(v) {
		return thousands(int(math.Round(v)))
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func subscriberCount(n int) string {
	if n == 1 {
		return "1 subscriber"
	}
	return thousands(n) + " subscribers"
}

// thousands writes n with commas between thousands.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
