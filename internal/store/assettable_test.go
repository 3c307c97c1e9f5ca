package store_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/store"
)

// updateDocs rewrites the asset table in docs/operations.md from
// store.Assets: go test ./internal/store -run TestOperationsDocAssetTable -update.
var updateDocs = flag.Bool("update", false, "rewrite the asset table in docs/operations.md from store.Assets")

const (
	operationsDoc    = "../../docs/operations.md"
	assetTableStart  = "<!-- asset table: generated from store.Assets by `go test ./internal/store -run TestOperationsDocAssetTable -update` -->\n"
	assetTableEnd    = "<!-- end of asset table -->\n"
	withConsumersDoc = "yes: messages and durable consumers (consumer groups' positions and pending acknowledgements)"
)

// assetTable renders store.Assets as the operator docs show it.
func assetTable() string {
	var b strings.Builder
	b.WriteString("| stream | owner | holds | configuration | drift means | in a backup |\n|---|---|---|---|---|---|\n")
	for _, a := range store.Assets {
		backup := "yes: messages"
		switch a.Backup {
		case store.BackupWithConsumers:
			backup = withConsumersDoc
		case store.BackupSkip:
			backup = "no: " + a.Skip
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", a.Stream, a.Owner, a.Holds, a.Configuration(), a.Drift, backup)
	}
	return b.String()
}

// docs/operations.md shows store.Assets as a table generated from it, so
// an asset, a configuration or a backup decision changed in the code and
// not in the docs fails here.
func TestOperationsDocAssetTable(t *testing.T) {
	raw, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	start, end := strings.Index(doc, assetTableStart), strings.Index(doc, assetTableEnd)
	if start < 0 || end < start {
		t.Fatalf("%s lacks the asset table's markers %q ... %q", operationsDoc, assetTableStart, assetTableEnd)
	}
	have, want := doc[start+len(assetTableStart):end], assetTable()
	if have == want {
		return
	}
	if !*updateDocs {
		t.Fatalf("the asset table in %s differs from store.Assets (run go test ./internal/store -run TestOperationsDocAssetTable -update):\n got:\n%s\nwant:\n%s", operationsDoc, have, want)
	}
	doc = doc[:start+len(assetTableStart)] + want + doc[end:]
	if err := os.WriteFile(operationsDoc, []byte(doc), 0o644); err != nil { //nolint:gosec // a docs page
		t.Fatal(err)
	}
}

// Every row says all that creation, drift checks and backups need, and
// names the stream its configuration makes.
func TestAssetRows(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range store.Assets {
		t.Run(a.Stream, func(t *testing.T) {
			if seen[a.Stream] {
				t.Errorf("%s has two rows", a.Stream)
			}
			seen[a.Stream] = true
			opts := store.AssetOptions{Replicas: 1}
			switch {
			case (a.StreamConfig == nil) == (a.BucketConfig == nil):
				t.Fatal("a row needs exactly one of StreamConfig and BucketConfig")
			case a.StreamConfig != nil && a.StreamConfig(opts).Name != a.Stream:
				t.Errorf("StreamConfig makes stream %q", a.StreamConfig(opts).Name)
			case a.BucketConfig != nil && "KV_"+a.BucketConfig(opts).Bucket != a.Stream:
				t.Errorf("BucketConfig makes bucket %q, whose stream is not %s", a.BucketConfig(opts).Bucket, a.Stream)
			}
			if a.Owner == "" || a.Holds == "" || a.Drift == "" {
				t.Error("a row says who owns it, what it holds and what drift means")
			}
			if a.Backup == store.BackupSkip && a.Skip == "" {
				t.Error("left out of backups without a reason")
			}
		})
	}
}

// An owner can only ensure an asset the table has: one it made itself
// would be missed by backups, drift checks and the docs.
func TestEnsureNeedsATableRow(t *testing.T) {
	s := openStore(t, t.TempDir())
	if _, err := s.EnsureStream(context.Background(), "KLINGFAN_UNLISTED"); err == nil || !strings.Contains(err.Error(), "no stream \"KLINGFAN_UNLISTED\" in store.Assets") {
		t.Errorf("EnsureStream of an unlisted stream = %v", err)
	}
	if _, err := s.EnsureBucket(context.Background(), store.StreamName); err == nil {
		t.Error("EnsureBucket of a stream's name succeeded")
	}
}
