package docstest_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	flagRE    = regexp.MustCompile(`--[a-z][a-z-]*`)
	subcmdRE  = regexp.MustCompile(`^[a-z][a-z-]*$`)
	helpFlags = regexp.MustCompile(`(?m)^\s+(?:-[a-z], )?(--[a-z][a-z-]*)`)
)

// klingctlFlags returns the flags `klingctl args... --help` lists as the
// command's own (for klingctl itself, the ones every command takes).
func klingctlFlags(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command(filepath.Join(binaries(t), "klingctl"), append(args, "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("klingctl %s --help: %v\n%s", strings.Join(args, " "), err, out)
	}
	help := string(out)
	_, rest, ok := strings.Cut(help, "\nFlags:\n")
	if !ok {
		return nil
	}
	rest, _, _ = strings.Cut(rest, "\n\n")
	var flags []string
	for _, m := range helpFlags.FindAllStringSubmatch(rest, -1) {
		if m[1] != "--help" {
			flags = append(flags, m[1])
		}
	}
	slices.Sort(flags)
	return flags
}

// TestSynopses checks every usage block a page marks as a synopsis against
// the flags klingctl really takes: a flag missing from the page, or one the
// page names that klingctl lacks, fails.
func TestSynopses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds klingctl")
	}
	n := 0
	for _, p := range pages(t) {
		for _, b := range p.Blocks {
			if b.Directive != "synopsis" {
				continue
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(b.Text), "\n") {
				if strings.HasPrefix(l, " ") && len(lines) > 0 {
					lines[len(lines)-1] += " " + strings.TrimSpace(l)
					continue
				}
				lines = append(lines, l)
			}
			for _, l := range lines {
				rest, ok := strings.CutPrefix(l, "./bin/klingctl ")
				if !ok {
					t.Errorf("%s:%d: synopsis line %q does not start with ./bin/klingctl", p.Path, b.Line, l)
					continue
				}
				var sub []string
				for _, w := range strings.Fields(rest) {
					if !subcmdRE.MatchString(w) {
						break
					}
					sub = append(sub, w)
				}
				doc := flagRE.FindAllString(rest, -1)
				slices.Sort(doc)
				doc = slices.Compact(doc)
				if got := klingctlFlags(t, sub...); !slices.Equal(doc, got) {
					t.Errorf("%s:%d: klingctl %s: the page names %v, klingctl takes %v", p.Path, b.Line, strings.Join(sub, " "), doc, got)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no synopsis found")
	}
}

// TestConnectingTable checks docs/klingctl.md's table of connection flags
// against the flags every klingctl command takes.
func TestConnectingTable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds klingctl")
	}
	tab := page(t, "docs/klingctl.md").TableAfter("Connecting", "flag")
	if tab == nil {
		t.Fatal("docs/klingctl.md has no table of flags under Connecting")
	}
	var doc []string
	for _, row := range tab.Rows {
		doc = append(doc, flagRE.FindAllString(row[0], -1)...)
	}
	slices.Sort(doc)
	if got := klingctlFlags(t); !slices.Equal(doc, got) {
		t.Errorf("the Connecting table names %v, klingctl takes %v", doc, got)
	}
}
