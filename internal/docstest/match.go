package docstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// volatile are the values that differ from run to run, each replaced by a
// placeholder on both sides before comparing.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?`), "<time>"},
	{regexp.MustCompile(`evt_[a-z0-9]{26}`), "evt_<id>"},
	{regexp.MustCompile(`whsec_[A-Za-z0-9+/=]{20,}`), "whsec_<secret>"},
	{regexp.MustCompile(`sha256:[0-9a-f]{64}`), "sha256:<hash>"},
	{regexp.MustCompile(`\bwh-[a-z0-9]{10}\b`), "wh-<id>"},
	{regexp.MustCompile(`\b[A-Za-z0-9_-]{43}\b`), "<token>"},
}

// Normalize replaces what changes between runs with placeholders.
func Normalize(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return s
}

// Match reports how actual differs from the expected output a page shows,
// or nil.
func Match(expected, actual string) error {
	exp := strings.TrimSpace(expected)
	if strings.HasPrefix(exp, "{") || strings.HasPrefix(exp, "[") {
		return matchJSON(exp, actual)
	}
	return matchText(exp, actual)
}

func decodeAll(s string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var out []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

func matchJSON(expected, actual string) error {
	// A bare [...] or {...} on the page stands for any value.
	expected = strings.NewReplacer("[…]", `"…"`, "{…}", `"…"`).Replace(expected)
	want, err := decodeAll(expected)
	if err != nil {
		return fmt.Errorf("the page's JSON does not parse: %w", err)
	}
	got, err := decodeAll(actual)
	if err != nil {
		return fmt.Errorf("the output is not the JSON the page shows (%w):\n%s", err, actual)
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d JSON values, the page shows %d:\n%s", len(got), len(want), actual)
	}
	for i := range want {
		if err := matchValue("$", want[i], got[i]); err != nil {
			return fmt.Errorf("%w\nin:\n%s", err, actual)
		}
	}
	return nil
}

func matchValue(path string, want, got any) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: got %v, the page shows an object", path, got)
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s.%s: missing, the page shows %v", path, k, wv)
			}
			if err := matchValue(path+"."+k, wv, gv); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: got %v, the page shows %d elements", path, got, len(w))
		}
		for i := range w {
			if err := matchValue(fmt.Sprintf("%s[%d]", path, i), w[i], g[i]); err != nil {
				return err
			}
		}
		return nil
	case string:
		if w == "…" {
			return nil
		}
		g, ok := got.(string)
		if !ok || !wildcard(Normalize(w)).MatchString(Normalize(g)) {
			return fmt.Errorf("%s: got %v, the page shows %q", path, got, w)
		}
		return nil
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return fmt.Errorf("%s: got %v, the page shows %v", path, got, want)
		}
		return nil
	}
}

// wildcard compiles s into an anchored pattern in which "…" matches anything.
func wildcard(s string) *regexp.Regexp {
	parts := strings.Split(s, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`^` + strings.Join(parts, `.*`) + `$`)
}

var spaces = regexp.MustCompile(`[ \t]+`)

func textLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n "), "\n") {
		out = append(out, strings.TrimSpace(spaces.ReplaceAllString(Normalize(l), " ")))
	}
	return out
}

func matchText(expected, actual string) error {
	want, got := textLines(expected), textLines(actual)
	if len(want) != len(got) {
		return fmt.Errorf("%d lines, the page shows %d:\n%s", len(got), len(want), actual)
	}
	for i := range want {
		if !wildcard(want[i]).MatchString(got[i]) {
			return fmt.Errorf("line %d is\n  %s\nthe page shows\n  %s", i+1, got[i], want[i])
		}
	}
	return nil
}
