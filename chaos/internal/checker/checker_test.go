package checker_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/verify"

	"github.com/klingfan/klingfan/chaos/internal/checker"
)

const secret = "checker-test-secret"

// TestCheck writes three deliveries through a real klingfan into a real
// JetStream, then checks copies of its log, each damaged one way: the
// checker must see exactly that damage and nothing else.
func TestCheck(t *testing.T) {
	ns := startNATS(t)
	srv := apptest.Start(t, "",
		apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret),
		apptest.WithConfig(func(c *config.Config) {
			c.NATSURL = ns.ClientURL()
			c.Replicas = 1
		}))
	var acked []checker.Delivery
	for i := range 3 {
		d := delivery(fmt.Sprintf("checker-job-%d", i))
		header := http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(secret), d.Body)}}
		if status, body := srv.Post(t, "/webhooks/klingai", header, d.Body); status != http.StatusOK {
			t.Fatalf("post %s: %d %s", d.Job, status, body)
		}
		acked = append(acked, d)
	}

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	tests := []struct {
		name string
		// damage changes the copy of the log; publish puts a message on
		// the copy's own subject.
		damage      func(t *testing.T, dup jetstream.Stream, publish func(data []byte))
		wantSummary string
		wantLost    []string
		wantDup     []string
		wantFailed  bool
	}{
		{
			name:        "intact",
			damage:      func(*testing.T, jetstream.Stream, func([]byte)) {},
			wantSummary: "chaos: 3 acknowledged, 0 lost, 0 duplicated, 7 faults",
		},
		{
			name: "one delivery removed",
			damage: func(t *testing.T, dup jetstream.Stream, _ func([]byte)) {
				if err := dup.DeleteMsg(ctx, 2); err != nil {
					t.Fatal(err)
				}
			},
			wantSummary: "chaos: 3 acknowledged, 1 lost, 0 duplicated, 7 faults",
			wantLost:    []string{"checker-job-1"},
			wantFailed:  true,
		},
		{
			name: "last delivery removed",
			damage: func(t *testing.T, dup jetstream.Stream, _ func([]byte)) {
				if err := dup.DeleteMsg(ctx, 3); err != nil {
					t.Fatal(err)
				}
			},
			wantSummary: "chaos: 3 acknowledged, 1 lost, 0 duplicated, 7 faults",
			wantLost:    []string{"checker-job-2"},
			wantFailed:  true,
		},
		{
			name: "one delivery stored twice",
			damage: func(t *testing.T, dup jetstream.Stream, publish func([]byte)) {
				publish(storedData(ctx, t, dup, 1))
			},
			wantSummary: "chaos: 3 acknowledged, 0 lost, 1 duplicated, 7 faults",
			wantDup:     []string{"checker-job-0"},
		},
		{
			name: "one body altered",
			damage: func(t *testing.T, dup jetstream.Stream, publish func([]byte)) {
				var ev gatewayv1.Event
				if err := proto.Unmarshal(storedData(ctx, t, dup, 3), &ev); err != nil {
					t.Fatal(err)
				}
				ev.RawBody = bytes.ReplaceAll(ev.GetRawBody(), []byte("completed"), []byte("failed"))
				data, err := proto.Marshal(&ev)
				if err != nil {
					t.Fatal(err)
				}
				if err := dup.DeleteMsg(ctx, 3); err != nil {
					t.Fatal(err)
				}
				publish(data)
			},
			wantSummary: "chaos: 3 acknowledged, 1 lost, 0 duplicated, 7 faults",
			wantFailed:  true,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("CHECKER_COPY_%d", i)
			subject := fmt.Sprintf("checker.copy.%d", i)
			dup := copyLog(ctx, t, js, name, subject, len(acked))
			tt.damage(t, dup, func(data []byte) {
				if _, err := js.Publish(ctx, subject, data); err != nil {
					t.Fatal(err)
				}
			})

			log, err := checker.Read(ctx, js, name)
			if err != nil {
				t.Fatal(err)
			}
			got := checker.Compare(acked, log)
			if s := got.Summary(7); s != tt.wantSummary {
				t.Errorf("summary %q, want %q", s, tt.wantSummary)
			}
			if fmt.Sprint(got.Lost) != fmt.Sprint(tt.wantLost) {
				t.Errorf("lost %v, want %v", got.Lost, tt.wantLost)
			}
			if fmt.Sprint(got.Duplicated) != fmt.Sprint(tt.wantDup) {
				t.Errorf("duplicated %v, want %v", got.Duplicated, tt.wantDup)
			}
			if got.Failed() != tt.wantFailed {
				t.Errorf("failed %v, want %v", got.Failed(), tt.wantFailed)
			}
		})
	}

	// The log klingfan wrote, read directly, is the intact case.
	log, err := checker.Read(ctx, js, checker.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if got := checker.Compare(acked, log); got.Failed() || len(got.Duplicated) > 0 || got.Messages != len(acked) {
		t.Errorf("klingfan's own log: %+v", got)
	}
}

// TestCompareUnacknowledged: a delivery stored without any 2xx (a timeout
// after the write landed) is counted apart and fails nothing; an
// acknowledged one that was posted twice counts once.
func TestCompareUnacknowledged(t *testing.T) {
	ns := startNATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CHECKER_LOG", Subjects: []string{"log.>"}}); err != nil {
		t.Fatal(err)
	}
	a, b := delivery("job-a"), delivery("job-b")
	for _, d := range []checker.Delivery{a, b} {
		data, err := proto.Marshal(&gatewayv1.Event{Job: &gatewayv1.Job{JobId: d.Job}, RawBody: d.Body})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, "log."+d.Job, data); err != nil {
			t.Fatal(err)
		}
	}
	log, err := checker.Read(ctx, js, "CHECKER_LOG")
	if err != nil {
		t.Fatal(err)
	}
	got := checker.Compare([]checker.Delivery{a, a}, log)
	if got.Acknowledged != 1 || got.Unacknowledged != 1 || got.Failed() || len(got.Duplicated) != 0 || got.Messages != 2 {
		t.Errorf("got %+v, want 1 acknowledged, 1 unacknowledged, nothing lost or duplicated, 2 messages", got)
	}
}

func delivery(job string) checker.Delivery {
	return checker.Delivery{Job: job, Body: fmt.Appendf(nil,
		`{"event":"video.completed","timestamp":"2026-12-07T12:00:00Z","data":{"job_id":%q,"status":"completed"}}`, job)}
}

// startNATS runs a JetStream server in the test process on a free port.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns
}

// copyLog creates stream name sourcing klingfan's log (and taking subject
// for what a test adds) and waits until it holds n messages.
func copyLog(ctx context.Context, t *testing.T, js jetstream.JetStream, name, subject string, n int) jetstream.Stream {
	t.Helper()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     name,
		Subjects: []string{subject},
		Sources:  []*jetstream.StreamSource{{Name: checker.StreamName}},
	})
	if err != nil {
		t.Fatal(err)
	}
	apptest.Eventually(t, 10*time.Second, "copy of the log", func() bool {
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs == uint64(n)
	})
	return st
}

// storedData returns the payload stored at seq.
func storedData(ctx context.Context, t *testing.T, st jetstream.Stream, seq uint64) []byte {
	t.Helper()
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	return m.Data
}
