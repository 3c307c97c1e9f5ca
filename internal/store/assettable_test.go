package store_test

import (
	"os"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/store"
)

// docs/operations.md lists every asset of the table with what a backup does
// with it, so an asset added without a row (and a backup decision) fails.
func TestOperationsDocListsEveryAsset(t *testing.T) {
	raw, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, a := range store.Assets {
		if !strings.Contains(doc, "| `"+a.Stream+"` | "+a.Owner+" |") {
			t.Errorf("docs/operations.md has no row for %s (owner %s)", a.Stream, a.Owner)
		}
		if a.Backup == store.BackupSkip && a.Skip == "" {
			t.Errorf("%s is left out of backups without a reason", a.Stream)
		}
	}
}
