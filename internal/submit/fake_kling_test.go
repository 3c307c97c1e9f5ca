package submit_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKling stands in for Kling's API over real HTTP: it records every
// create it is sent and answers with the envelope and task shape of
// Kling's pages (legacy API: task_id, task_status, task_info, Unix ms
// times), or with the refusal a test sets.
type fakeKling struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	creates []createCall
	tasks   map[string]string // external id → task id
	lookups int
	// refusal, when set, answers the next creates with this HTTP status,
	// code and message (and Retry-After when retryAfter is set).
	refusal *refusal
	// hold, when set, delays create answers until it is closed.
	hold chan struct{}
	// lost, when set, creates the task and then answers 504 (code 5002),
	// as when the answer is lost on the way back.
	lost bool
	// entered receives one value per create that reached the server.
	entered chan struct{}
}

type refusal struct {
	status, code int
	message      string
	retryAfter   string
}

// createCall is one create as Kling received it.
type createCall struct {
	Path          string
	Authorization string
	Body          map[string]any
}

func newFakeKling(t *testing.T) *fakeKling {
	k := &fakeKling{t: t, tasks: map[string]string{}, entered: make(chan struct{}, 64)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/{group}/{family}", k.create)
	mux.HandleFunc("GET /v1/{group}/{family}/{id}", k.get)
	mux.HandleFunc("GET /v1/{group}/{family}", k.get)
	k.srv = httptest.NewServer(mux)
	t.Cleanup(k.srv.Close)
	return k
}

func (k *fakeKling) create(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil {
		envelope(w, http.StatusBadRequest, 1200, "body is not JSON", nil)
		return
	}
	k.mu.Lock()
	k.creates = append(k.creates, createCall{Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), Body: body})
	ref, hold, lost := k.refusal, k.hold, k.lost
	k.mu.Unlock()
	k.entered <- struct{}{}
	if hold != nil {
		<-hold
	}
	if ref != nil {
		if ref.retryAfter != "" {
			w.Header().Set("Retry-After", ref.retryAfter)
		}
		envelope(w, ref.status, ref.code, ref.message, nil)
		return
	}
	ext, _ := body["external_task_id"].(string)
	k.mu.Lock()
	id := fmt.Sprintf("task-%d", len(k.creates))
	k.tasks[ext] = id
	k.mu.Unlock()
	if lost {
		envelope(w, http.StatusGatewayTimeout, 5002, "server timeout", nil)
		return
	}
	envelope(w, http.StatusOK, 0, "SUCCEED", task(id, ext, "submitted"))
}

// get answers a query by task id, or by external id either in the path
// or as ?external_task_id= (both spellings exist in clients).
func (k *fakeKling) get(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lookups++
	id := r.PathValue("id")
	if ext := r.URL.Query().Get("external_task_id"); ext != "" {
		id = ext
	}
	for ext, tid := range k.tasks {
		if id == ext || id == tid {
			envelope(w, http.StatusOK, 0, "SUCCEED", task(tid, ext, "processing"))
			return
		}
	}
	envelope(w, http.StatusNotFound, 1203, "task not found", nil)
}

func task(id, external, status string) map[string]any {
	now := time.Now().UnixMilli()
	return map[string]any{"task_id": id, "task_status": status, "task_info": map[string]any{"external_task_id": external},
		"created_at": now, "updated_at": now}
}

func envelope(w http.ResponseWriter, status, code int, msg string, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg, "request_id": "req-" + strings.ToLower(http.StatusText(status)), "data": data})
}

func (k *fakeKling) setRefusal(r *refusal) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.refusal = r
}

func (k *fakeKling) calls() []createCall {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]createCall(nil), k.creates...)
}
