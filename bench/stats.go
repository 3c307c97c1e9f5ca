package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Percentiles summarises a latency sample.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// percentiles sorts samples (nanoseconds) in place and summarises them in
// milliseconds, using the nearest-rank method.
func percentiles(samples []int64) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	slices.Sort(samples)
	rank := func(q float64) float64 {
		i := int(q*float64(len(samples))+0.999999) - 1
		i = min(max(i, 0), len(samples)-1)
		return ms(samples[i])
	}
	return Percentiles{
		Count: len(samples),
		P50:   rank(0.50),
		P99:   rank(0.99),
		P999:  rank(0.999),
		Max:   ms(samples[len(samples)-1]),
	}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// cpuTime is the CPU time (user + system) this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports how many cores this process kept busy over an
// interval, and how many the rest of the machine did: the machine is
// shared, and a figure taken while other work ran is worth less.
type cpuMeter struct {
	wall    time.Time
	cpu     time.Duration
	machine time.Duration
	heap    heapAllocs
}

func startCPU() cpuMeter {
	return cpuMeter{wall: time.Now(), cpu: cpuTime(), machine: machineBusy(), heap: readHeapAllocs()}
}

// heapAllocs is what the process has allocated on the heap so far, and
// how many garbage collections it has run: unlike CPU time, other work on
// the machine does not move these.
type heapAllocs struct{ bytes, objects, cycles uint64 }

func readHeapAllocs() heapAllocs {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/allocs:objects"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	var h heapAllocs
	for i, p := range []*uint64{&h.bytes, &h.objects, &h.cycles} {
		if s[i].Value.Kind() == metrics.KindUint64 {
			*p = s[i].Value.Uint64()
		}
	}
	return h
}

// allocs returns the heap bytes and objects the process allocated per
// event since the meter started, and the collections it ran.
func (m cpuMeter) allocs(events int) (bytesPer, objectsPer float64, cycles uint64) {
	h := readHeapAllocs()
	return round2(float64(h.bytes-m.heap.bytes) / float64(events)), round2(float64(h.objects-m.heap.objects) / float64(events)), h.cycles - m.heap.cycles
}

// cores returns the average number of cores this process used since the
// meter started.
func (m cpuMeter) cores() float64 {
	wall := time.Since(m.wall)
	if m.wall.IsZero() || wall <= 0 {
		return 0
	}
	return round2(float64(cpuTime()-m.cpu) / float64(wall))
}

// used returns the CPU time this process used since the meter started.
func (m cpuMeter) used() time.Duration { return cpuTime() - m.cpu }

// others returns the average number of cores other processes used since
// the meter started.
func (m cpuMeter) others() float64 {
	wall := time.Since(m.wall)
	if m.wall.IsZero() || wall <= 0 {
		return 0
	}
	return round2(max(0, float64(machineBusy()-m.machine-(cpuTime()-m.cpu))/float64(wall)))
}

// machineBusy is the CPU time all processes have used, from the "cpu" line
// of /proc/stat (user, nice, system, irq, softirq, steal; in USER_HZ
// ticks, which Linux fixes at 100 per second for this interface).
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

func round2(f float64) float64 {
	return float64(int64(f*100+0.5)) / 100
}

// vmRSS reads the resident set size of process pid ("self" for this one)
// from /proc, in bytes.
func vmRSS(pid string) (int64, error) {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, os.ErrNotExist
}

// loadAverage returns /proc/loadavg's first three fields, to record how
// busy the (shared) machine was.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
