package verify_test

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/verify"
)

// benchBody is a ~2 KiB JSON-like payload, about the size of a Kling task
// callback with a few result URLs.
var benchBody = bytes.Repeat([]byte(`{"task_id":"abcdef0123456789","status":"succeed"},`), 41)

func BenchmarkKlingSignature(b *testing.B) {
	secret := []byte(verify.NewKlingSecret())
	secrets := [][]byte{secret}
	header := verify.SignKling(secret, benchBody)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if err := verify.KlingSignature(header, benchBody, secrets); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStandardWebhooks(b *testing.B) {
	key, err := verify.DecodeStandardSecret(verify.NewStandardSecret())
	if err != nil {
		b.Fatal(err)
	}
	keys := [][]byte{key}
	now := time.Unix(1_781_080_794, 0)
	h := http.Header{}
	h.Set(verify.HeaderWebhookID, "msg_2Lh9KoTnwjVmQ2")
	h.Set(verify.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(verify.HeaderWebhookSignature, verify.SignStandard(key, "msg_2Lh9KoTnwjVmQ2", now, benchBody))
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := verify.StandardWebhooks(h, benchBody, keys, now, verify.DefaultTolerance); err != nil {
			b.Fatal(err)
		}
	}
}
