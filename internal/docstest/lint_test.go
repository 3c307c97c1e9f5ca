package docstest_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	sessionRE = regexp.MustCompile(`(?i)\bsession \d+`)
	bareCtlRE = regexp.MustCompile(`(^|[|;&(]\s*|\$\(\s*)klingctl\s`)
	dialRE    = regexp.MustCompile(`client\.Dial\((?:[^()]|\([^()]*\))*\)`)
)

// TestPagesSayWhatTheyMean holds the rules that keep a page usable as it
// is pasted: commands name ./bin/klingctl, which make run builds (klingctl
// is not on PATH); a Go example says how it connects (WithInsecure for
// make run's plaintext server); a block or page the test does not run says why; and
// measurements do not name the work session they came from.
func TestPagesSayWhatTheyMean(t *testing.T) {
	for _, p := range pages(t) {
		text, err := os.ReadFile(filepath.Join(root, p.Path))
		if err != nil {
			t.Fatal(err)
		}
		if m := sessionRE.FindString(string(text)); m != "" {
			t.Errorf("%s: mentions %q, which a reader cannot place", p.Path, m)
		}
		for _, b := range p.Blocks {
			if b.Shell() {
				for i, line := range strings.Split(b.Text, "\n") {
					if bareCtlRE.MatchString(line) {
						t.Errorf("%s:%d: %q runs a bare klingctl; make run builds ./bin/klingctl", p.Path, b.Line+1+i, line)
					}
				}
			}
			if b.Lang == "go" {
				// Without either, Dial uses TLS, which fails against
				// make run's plaintext server; a page says which it means.
				for _, m := range dialRE.FindAllString(b.Text, -1) {
					if !strings.Contains(m, "WithInsecure()") && !strings.Contains(m, "WithTLS(") {
						t.Errorf("%s:%d: %s names no transport: WithInsecure() for make run's plaintext server, WithTLS(...) for TLS", p.Path, b.Line, m)
					}
					if strings.Contains(m, "localhost:9090") && !strings.Contains(m, "WithInsecure()") {
						t.Errorf("%s:%d: %s dials make run's plaintext server without WithInsecure()", p.Path, b.Line, m)
					}
				}
			}
			if d := b.Directive; strings.HasPrefix(d, "skip") && !regexp.MustCompile(`^skip \(.+\)$`).MatchString(d) {
				t.Errorf("%s:%d: %q gives no reason", p.Path, b.Line, d)
			}
		}
	}
}

var (
	helpLineRE = regexp.MustCompile(`(?m)^([a-z-]+):.*## (.*)$`)
	buildRE    = regexp.MustCompile(`build -o bin/ ((?:\./cmd/[a-z]+ ?)+)`)
)

// TestMakeRunHelp checks that `make help` names exactly the binaries
// `make run` builds.
func TestMakeRunHelp(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var help string
	for _, m := range helpLineRE.FindAllStringSubmatch(string(mk), -1) {
		if m[1] == "run" {
			help = m[2]
		}
	}
	_, recipe, ok := strings.Cut(string(mk), "\nrun:")
	if !ok || help == "" {
		t.Fatal("the Makefile has no documented run target")
	}
	recipe, _, _ = strings.Cut(recipe, "\n\n")
	m := buildRE.FindStringSubmatch(recipe)
	if m == nil {
		t.Fatalf("run's recipe does not build named commands:\n%s", recipe)
	}
	var built []string
	for _, pkg := range strings.Fields(m[1]) {
		built = append(built, filepath.Base(pkg))
	}
	var named []string
	for _, dir := range mustReadDir(t, filepath.Join(root, "cmd")) {
		if regexp.MustCompile(`\b` + dir + `\b`).MatchString(help) {
			named = append(named, dir)
		}
	}
	slices.Sort(built)
	if !slices.Equal(built, named) {
		t.Errorf("make help says run builds %v; its recipe builds %v", named, built)
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}
