package bench

import (
	"os"
	"path/filepath"
	"runtime/pprof"
)

// heapProfile writes the live heap (<name>-heap.pprof) and every goroutine's
// stack (<name>-goroutines.txt) when profiling is on, to see what a
// scenario holds rather than what it spends.
func (r *runner) heapProfile(name string) {
	if r.cfg.CPUProfileDir == "" {
		return
	}
	for _, p := range []struct {
		profile, file string
		debug         int
	}{{"heap", name + "-heap.pprof", 0}, {"goroutine", name + "-goroutines.txt", 1}} {
		f, err := os.Create(filepath.Join(r.cfg.CPUProfileDir, p.file))
		if err != nil {
			r.logf("  %s profile: %v", p.profile, err)
			continue
		}
		if err := pprof.Lookup(p.profile).WriteTo(f, p.debug); err != nil {
			r.logf("  %s profile: %v", p.profile, err)
		}
		f.Close()
	}
}
