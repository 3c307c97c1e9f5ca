package klingfamily_test

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/klingfamily"
)

var updateDocs = flag.Bool("update", false, "rewrite the family table in docs/reconcile.md from the table")

// docsPath holds the family table operators read.
const docsPath = "../../docs/reconcile.md"

// The generated table sits between these markers.
const (
	tableBegin = "<!-- family table: generated from internal/klingfamily by `go test ./internal/klingfamily -update`; do not edit -->"
	tableEnd   = "<!-- end of family table -->"
)

// TestDocsFamilyTable keeps docs/reconcile.md's family table the table's
// own rendering, so the docs cannot list a family, path or listing the
// code does not use.
func TestDocsFamilyTable(t *testing.T) {
	raw, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, tableBegin), strings.Index(doc, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no family table between %q and %q", docsPath, tableBegin, tableEnd)
	}
	want := tableBegin + "\n\n" + renderTable() + "\n" + tableEnd
	got := doc[i : j+len(tableEnd)]
	if got == want {
		return
	}
	if *updateDocs {
		if err := os.WriteFile(docsPath, []byte(doc[:i]+want+doc[j+len(tableEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's family table is not the table's rendering; run go test ./internal/klingfamily -update.\ngot:\n%s\nwant:\n%s", docsPath, got, want)
}

// renderTable is the table as Markdown, one row per family.
func renderTable() string {
	var b strings.Builder
	b.WriteString("| family | create | makes | shape | one task | by external id | listing |\n|---|---|---|---|---|---|---|\n")
	for _, f := range klingfamily.All() {
		makes := make([]string, len(f.Makes))
		for i, m := range f.Makes {
			makes[i] = string(m)
		}
		var one, ext, list string
		switch f.Query.Kind {
		case klingfamily.QueryPath:
			one = "`GET " + f.Query.Path + "/{task_id}`"
			ext = "not documented"
			if f.Query.ByExternal {
				ext = "`{external_task_id}` in the path"
			}
		case klingfamily.QueryIDs:
			one = "`GET " + f.Query.Path + "?task_ids=` (a list)"
			ext = "`?external_task_ids=`"
			if f.Query.MaxIDs > 0 {
				one = fmt.Sprintf("`GET %s?task_ids=` (a list, ≤%d ids)", f.Query.Path, f.Query.MaxIDs)
			}
		default:
			one, ext = "none: the create answer holds the result", "-"
		}
		switch f.List.Kind {
		case klingfamily.ListPaged:
			list = fmt.Sprintf("`GET %s?pageNum=&pageSize=` (≤%d)", f.List.Path, f.List.MaxPageSize)
		case klingfamily.ListCursor:
			list = fmt.Sprintf("`POST %s` cursor, shared (≤%d)", f.List.Path, f.List.MaxPageSize)
		default:
			list = "none"
		}
		fmt.Fprintf(&b, "| `%s` | `POST %s` | %s | %s | %s | %s | %s |\n", f.Name, f.Create, strings.Join(makes, ", "), f.Shape, one, ext, list)
	}
	return b.String()
}
