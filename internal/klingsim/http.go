package klingsim

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/klingfan/klingfan/internal/klingapi"
)

// Handler serves Kling's task API for the simulated account.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/{group}/{family}/{id}", s.auth(s.getLegacy))
	mux.HandleFunc("GET /v1/{group}/{family}", s.auth(s.listLegacy))
	mux.HandleFunc("POST /v1/{group}/{family}", s.auth(s.createLegacy))
	mux.HandleFunc("GET /tasks", s.auth(s.getTasks))
	mux.HandleFunc("POST /tasks", s.auth(s.listTasks))
	return mux
}

func (s *Sim) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			answerError(w, http.StatusUnauthorized, klingapi.CodeAuthFailed, "Authorization header is missing")
			return
		}
		if !s.authorized(tok, w) {
			return
		}
		s.mu.Lock()
		limited := s.limited > 0
		if limited {
			s.limited--
		}
		s.mu.Unlock()
		if limited {
			w.Header().Set("Retry-After", "1")
			answerError(w, http.StatusTooManyRequests, klingapi.CodeRateLimited, "request frequency is too high")
			return
		}
		next(w, r)
	}
}

func (s *Sim) authorized(tok string, w http.ResponseWriter) bool {
	if s.cfg.APIKey != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.APIKey)) == 1 {
		return true
	}
	_, err := klingapi.ParseJWT(tok, func(ak string) (string, bool) {
		if s.cfg.AccessKey == "" || ak != s.cfg.AccessKey {
			return "", false
		}
		return s.cfg.SecretKey, true
	}, s.cfg.Now())
	switch {
	case err == nil:
		return true
	case errors.Is(err, klingapi.ErrTokenExpired):
		answerError(w, http.StatusUnauthorized, klingapi.CodeTokenExpired, "token has expired")
	case errors.Is(err, klingapi.ErrTokenNotYetValid):
		answerError(w, http.StatusUnauthorized, klingapi.CodeTokenNotYet, "token is not yet valid")
	default:
		answerError(w, http.StatusUnauthorized, klingapi.CodeAuthFailed, "authorization failed")
	}
	return false
}

func (s *Sim) family(r *http.Request) (klingapi.Family, bool) {
	f := klingapi.Family{Group: r.PathValue("group"), Name: r.PathValue("family")}
	for _, k := range klingapi.Families {
		if k == f {
			return f, true
		}
	}
	return f, false
}

func (s *Sim) getLegacy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.countQuery(id)
	f, ok := s.family(r)
	if !ok {
		answerError(w, http.StatusNotFound, klingapi.CodeNotFound, "unknown task family")
		return
	}
	tasks := s.sortedByUpdate(func(t *task) bool { return !t.v2 && t.family == f && t.id == id })
	if len(tasks) == 0 {
		answerError(w, http.StatusNotFound, klingapi.CodeNotFound, "task not found")
		return
	}
	answer(w, json.RawMessage(tasks[0].body()))
}

func (s *Sim) listLegacy(w http.ResponseWriter, r *http.Request) {
	f, ok := s.family(r)
	if !ok {
		answerError(w, http.StatusNotFound, klingapi.CodeNotFound, "unknown task family")
		return
	}
	if ext := r.URL.Query().Get("external_task_id"); ext != "" {
		tasks := s.sortedByUpdate(func(t *task) bool { return !t.v2 && t.family == f && t.external == ext })
		if len(tasks) == 0 {
			answerError(w, http.StatusNotFound, klingapi.CodeNotFound, "task not found")
			return
		}
		answer(w, json.RawMessage(tasks[0].body()))
		return
	}
	num, err1 := strconv.Atoi(r.URL.Query().Get("pageNum"))
	size, err2 := strconv.Atoi(r.URL.Query().Get("pageSize"))
	if err1 != nil || err2 != nil || num < 1 || num > klingapi.MaxPageNum || size < 1 || size > klingapi.MaxPageSize {
		answerError(w, http.StatusBadRequest, 1201, "pageNum must be 1..1000 and pageSize 1..500")
		return
	}
	tasks := s.sortedByUpdate(func(t *task) bool { return !t.v2 && t.family == f })
	out := []json.RawMessage{}
	for i := (num - 1) * size; i < len(tasks) && i < num*size; i++ {
		out = append(out, tasks[i].body())
	}
	answer(w, out)
}

func (s *Sim) createLegacy(w http.ResponseWriter, r *http.Request) {
	f, ok := s.family(r)
	if !ok {
		answerError(w, http.StatusNotFound, klingapi.CodeNotFound, "unknown task family")
		return
	}
	var req struct {
		ExternalTaskID string `json:"external_task_id"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			answerError(w, http.StatusBadRequest, 1200, "request body is not JSON")
			return
		}
	}
	id := s.Create(f, false, req.ExternalTaskID)
	tasks := s.sortedByUpdate(func(t *task) bool { return t.id == id })
	answer(w, json.RawMessage(tasks[0].body()))
}

type taskPage struct {
	Result     []json.RawMessage `json:"result"`
	Count      int               `json:"count"`
	NextCursor string            `json:"next_cursor,omitempty"`
	HasMore    bool              `json:"has_more"`
}

func (s *Sim) getTasks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ids, external := q.Get("task_ids"), false
	if ids == "" {
		ids, external = q.Get("external_task_ids"), true
	}
	want := map[string]bool{}
	for _, id := range strings.Split(ids, ",") {
		if id != "" {
			want[id] = true
		}
	}
	if !external {
		s.countQuery(slices.Collect(maps.Keys(want))...)
	}
	tasks := s.sortedByUpdate(func(t *task) bool {
		if external {
			return t.v2 && want[t.external]
		}
		return t.v2 && want[t.id]
	})
	page := taskPage{Result: []json.RawMessage{}, Count: len(tasks)}
	for _, t := range tasks {
		page.Result = append(page.Result, t.body())
	}
	answer(w, page)
}

func (s *Sim) listTasks(w http.ResponseWriter, r *http.Request) {
	var q klingapi.TaskQuery
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&q); err != nil {
		answerError(w, http.StatusBadRequest, 1200, "request body is not JSON")
		return
	}
	if q.Limit <= 0 || q.Limit > klingapi.MaxTaskLimit {
		answerError(w, http.StatusBadRequest, 1201, "limit must be 1..500")
		return
	}
	statuses := map[string]bool{}
	for _, f := range q.Filters {
		if f.Key == "status" {
			for _, v := range f.Values {
				statuses[v] = true
			}
		}
	}
	tasks := s.sortedByUpdate(func(t *task) bool {
		return t.v2 && (q.StartTime == 0 || t.updated >= q.StartTime) && (q.EndTime == 0 || t.updated <= q.EndTime) &&
			(len(statuses) == 0 || statuses[t.publicStatus()])
	})
	off, _ := strconv.Atoi(q.Cursor)
	page := taskPage{Result: []json.RawMessage{}, Count: len(tasks)}
	for i := off; i < len(tasks) && i < off+q.Limit; i++ {
		page.Result = append(page.Result, tasks[i].body())
	}
	if off+q.Limit < len(tasks) {
		page.HasMore, page.NextCursor = true, strconv.Itoa(off+q.Limit)
	}
	answer(w, page)
}

func answer(w http.ResponseWriter, data any) {
	writeEnvelope(w, http.StatusOK, map[string]any{"code": 0, "message": "SUCCEED", "request_id": "sim", "data": data})
}

func answerError(w http.ResponseWriter, status, code int, msg string) {
	writeEnvelope(w, status, map[string]any{"code": code, "message": msg, "request_id": "sim"})
}

func writeEnvelope(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
