package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/verify"
)

// A backup taken while deliveries keep arriving restores into a new data
// directory with every event acknowledged before the backup began and every
// registration, whose secrets still verify deliveries there and never
// appear in the backup in plain text.
func TestBackupUnderLoadRestores(t *testing.T) {
	sealKey := strings.Repeat("s", 40)
	env := apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", storageSecret, "KLINGFAN_SECRET_KEY", sealKey)
	src := apptest.Start(t, "", env)
	ctx := context.Background()
	hooks := gatewayv1.NewWebhookServiceClient(src.DialAdmin(t))
	const imported = "imported-secret-for-backup-0123456789"
	if _, err := hooks.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{
		WebhookId: "imported",
		Webhook:   &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE},
		Secret:    imported,
	}); err != nil {
		t.Fatal(err)
	}
	tok, err := hooks.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{
		WebhookId: "tok",
		Webhook:   &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN},
	})
	if err != nil {
		t.Fatal(err)
	}

	// Load: four senders post until told to stop, recording what was
	// acknowledged.
	var (
		mu     sync.Mutex
		acked  []string
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		enough = make(chan struct{})
		once   sync.Once
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				job := fmt.Sprintf("load-%d-%d", w, i)
				body := fmt.Appendf(nil, `{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":%q}}`, job)
				req, _ := http.NewRequest(http.MethodPost, src.HTTPURL+"/webhooks/klingai", bytes.NewReader(body))
				req.Header.Set(verify.HeaderKlingSignature, verify.SignKling([]byte(storageSecret), body))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					acked = append(acked, job)
					if len(acked) >= 200 {
						once.Do(func() { close(enough) })
					}
					mu.Unlock()
				}
			}
		}()
	}
	<-enough
	mu.Lock()
	before := slices.Clone(acked)
	mu.Unlock()

	file := filepath.Join(t.TempDir(), "klingfan.backup")
	var out bytes.Buffer
	lookup := func(k string) (string, bool) {
		if k == "KLINGFAN_ADMIN_TOKEN" {
			return apptest.AdminToken, true
		}
		return "", false
	}
	err = app.BackupCommand(ctx, []string{"--to", file, "--server", src.GRPC}, lookup, &out)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out.String())
	}
	mu.Lock()
	t.Logf("%d deliveries acknowledged before the backup, %d in all", len(before), len(acked))
	mu.Unlock()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(file); info.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode %v, want 0600", info.Mode().Perm())
	}
	for _, secret := range []string{imported, tok.GetSecret(), storageSecret} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("a registration secret (%.4s…) is in the backup in plain text", secret)
		}
	}

	dir := filepath.Join(t.TempDir(), "restored")
	out.Reset()
	if err := app.RestoreCommand(ctx, []string{"--from", file, "--data-dir", dir}, &out); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if err := app.RestoreCommand(ctx, []string{"--from", file, "--data-dir", dir}, io.Discard); err == nil {
		t.Error("a second restore into the same directory succeeded; it must refuse a directory that holds a store")
	}
	src.Stop(t)

	dst := apptest.Start(t, dir, env)
	got := listJobs(t, dst)
	for _, job := range before {
		if !slices.Contains(got, job) {
			t.Errorf("event %s, acknowledged before the backup began, is missing after restore", job)
		}
	}
	list, err := gatewayv1.NewWebhookServiceClient(dst.DialAdmin(t)).ListWebhooks(ctx, &gatewayv1.ListWebhooksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range list.GetWebhooks() {
		ids = append(ids, w.GetId())
	}
	slices.Sort(ids)
	if want := []string{"default", "imported", "tok"}; !slices.Equal(ids, want) {
		t.Fatalf("registrations after restore: %v, want %v", ids, want)
	}
	body := []byte(`{"event":"video.completed","data":{"job_id":"after-restore"}}`)
	if status, resp := dst.Post(t, "/webhooks/kling/imported", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(imported), body)}}, body); status != http.StatusOK {
		t.Fatalf("a delivery signed with a restored secret: %d %s", status, resp)
	}
	if status, resp := dst.Post(t, "/webhooks/kling/tok?token="+tok.GetSecret(), nil, body); status != http.StatusOK {
		t.Fatalf("a delivery with a restored URL token: %d %s", status, resp)
	}
}

// A backup cut short is refused by restore, and the backup endpoint needs
// the admin token.
func TestBackupRefusesTruncatedAndUnauthenticated(t *testing.T) {
	src := apptest.Start(t, "", apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", storageSecret))
	stream, err := gatewayv1.NewAdminServiceClient(src.Dial(t)).Backup(context.Background(), &gatewayv1.BackupRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("backup without a token: %v, want UNAUTHENTICATED", err)
	}
	resp, err := http.Post(src.HTTPURL+"/v1/admin:backup", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("REST backup without a token: %d, want 401", resp.StatusCode)
	}
	file := filepath.Join(t.TempDir(), "b")
	lookup := func(k string) (string, bool) { return apptest.AdminToken, k == "KLINGFAN_ADMIN_TOKEN" }
	if err := app.BackupCommand(context.Background(), []string{"--to", file, "--server", src.GRPC}, lookup, io.Discard); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(file)
	cut := filepath.Join(t.TempDir(), "cut")
	if err := os.WriteFile(cut, raw[:len(raw)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	err = app.RestoreCommand(context.Background(), []string{"--from", cut, "--data-dir", filepath.Join(t.TempDir(), "d")}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("restore of a truncated backup: %v, want an error saying it is incomplete", err)
	}
}

// AdminService.Reconcile on a server without Kling credentials is
// FAILED_PRECONDITION naming what to set.
func TestAdminServiceRefusals(t *testing.T) {
	src := apptest.Start(t, "")
	admin := gatewayv1.NewAdminServiceClient(src.DialAdmin(t))
	_, err := admin.Reconcile(context.Background(), &gatewayv1.ReconcileRequest{})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "KLING_API_KEY") {
		t.Fatalf("reconcile with the reconciler off: %v, want FAILED_PRECONDITION naming the credentials", err)
	}
}
