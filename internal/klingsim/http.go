package klingsim

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
)

// Handler serves Kling's task API for the simulated account: for every
// simulated family of the klingfamily table, its create endpoint and, for
// a legacy family, its query and paged list; and the newer APIs' shared
// GET and POST /tasks and /solutions. Each family gets its own create
// handler (createHandler), the one place to extend what a create does.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	shared := map[string]bool{}
	for _, f := range klingfamily.All() {
		if !Simulated(f) {
			continue
		}
		mux.HandleFunc("POST "+f.Create, s.auth(s.createHandler(f)))
		switch f.Query.Kind {
		case klingfamily.QueryPath:
			mux.HandleFunc("GET "+f.Query.Path+"/{id}", s.auth(s.getOne(f)))
			mux.HandleFunc("GET "+f.List.Path, s.auth(s.listPage(f)))
		case klingfamily.QueryIDs:
			if !shared[f.Query.Path] {
				shared[f.Query.Path] = true
				mux.HandleFunc("GET "+f.Query.Path, s.auth(s.getByIDs(f.Query)))
				mux.HandleFunc("POST "+f.List.Path, s.auth(s.listCursor(f.List)))
			}
		}
	}
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

// getOne answers GET {collection}/{id}: the id is the task id or, as
// Kling's pages put it, the external task id in its place.
func (s *Sim) getOne(f klingfamily.Family) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		s.countQuery(id)
		tasks := s.sortedByUpdate(func(t *task) bool {
			return t.family.Name == f.Name && (t.id == id || (f.Query.ByExternal && t.external != "" && t.external == id))
		})
		if len(tasks) == 0 {
			answerError(w, http.StatusNotFound, klingapi.CodeNotFound, "task not found")
			return
		}
		answer(w, json.RawMessage(tasks[0].body()))
	}
}

// listPage answers GET {collection}?pageNum=&pageSize=, newest first.
func (s *Sim) listPage(f klingfamily.Family) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		num, err1 := strconv.Atoi(r.URL.Query().Get("pageNum"))
		size, err2 := strconv.Atoi(r.URL.Query().Get("pageSize"))
		if err1 != nil || err2 != nil || num < 1 || num > klingfamily.MaxPageNum || size < 1 || size > f.List.MaxPageSize {
			answerError(w, http.StatusBadRequest, klingapi.CodeInvalidParam, fmt.Sprintf("pageNum must be 1..%d and pageSize 1..%d", klingfamily.MaxPageNum, f.List.MaxPageSize))
			return
		}
		tasks := s.sortedByUpdate(func(t *task) bool { return t.family.Name == f.Name })
		out := []json.RawMessage{}
		for i := (num - 1) * size; i < len(tasks) && i < num*size; i++ {
			out = append(out, tasks[i].body())
		}
		answer(w, out)
	}
}

// createHandler answers POST {create path} of family f with the create
// answer Kling's pages show (the task, submitted), taking the external id
// and the callback URL where the family's API generation puts them; the
// task's callbacks then go to that URL.
func (s *Sim) createHandler(f klingfamily.Family) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ExternalTaskID string `json:"external_task_id"` // legacy
			CallbackURL    string `json:"callback_url"`
			Options        struct {
				ExternalTaskID string `json:"external_task_id"` // newer APIs
				CallbackURL    string `json:"callback_url"`
			} `json:"options"`
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req); err != nil {
				answerError(w, http.StatusBadRequest, 1200, "request body is not JSON")
				return
			}
		}
		external, callbackURL := req.ExternalTaskID, req.CallbackURL
		if f.Shape == klingfamily.New {
			external, callbackURL = req.Options.ExternalTaskID, req.Options.CallbackURL
		}
		id, err := s.CreateWithCallback(f, external, callbackURL)
		if err != nil {
			answerError(w, http.StatusNotFound, klingapi.CodeNotFound, err.Error())
			return
		}
		tasks := s.sortedByUpdate(func(t *task) bool { return t.id == id })
		answer(w, json.RawMessage(tasks[0].body()))
	}
}

// getByIDs answers GET /tasks or /solutions ?task_ids= or
// ?external_task_ids=: a list of the tasks it knows, in the order asked.
func (s *Sim) getByIDs(q klingfamily.Query) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		ids, external := v.Get("task_ids"), false
		if ids == "" {
			ids, external = v.Get("external_task_ids"), true
		}
		if ids == "" || (v.Get("task_ids") != "" && v.Get("external_task_ids") != "") {
			answerError(w, http.StatusBadRequest, klingapi.CodeInvalidParam, "exactly one of task_ids and external_task_ids is required")
			return
		}
		want := strings.Split(ids, ",")
		if q.MaxIDs > 0 && len(want) > q.MaxIDs {
			answerError(w, http.StatusBadRequest, klingapi.CodeInvalidParam, fmt.Sprintf("at most %d ids a query", q.MaxIDs))
			return
		}
		if !external {
			s.countQuery(want...)
		}
		out := []json.RawMessage{}
		for _, id := range want {
			tasks := s.sortedByUpdate(func(t *task) bool {
				if t.family.Query.Path != q.Path {
					return false
				}
				if external {
					return t.external != "" && t.external == id
				}
				return t.id == id
			})
			if len(tasks) > 0 {
				out = append(out, tasks[0].body())
			}
		}
		answer(w, out)
	}
}

// taskPage is the data of a cursor listing's answer.
type taskPage struct {
	Result     []json.RawMessage `json:"result"`
	Count      int               `json:"count"`
	NextCursor string            `json:"next_cursor"`
	HasMore    bool              `json:"has_more"`
}

// listCursor answers POST /tasks or /solutions: tasks created in
// [start_time, end_time], newest first, limit a page, filtered by status.
// start_time and end_time are taken as the listing's page types them
// (strings for /tasks, numbers for /solutions).
func (s *Sim) listCursor(l klingfamily.List) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var q struct {
			StartTime json.RawMessage       `json:"start_time"`
			EndTime   json.RawMessage       `json:"end_time"`
			Cursor    string                `json:"cursor"`
			Limit     int                   `json:"limit"`
			Filters   []klingapi.TaskFilter `json:"filters"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&q); err != nil {
			answerError(w, http.StatusBadRequest, 1200, "request body is not JSON")
			return
		}
		start, err1 := timeParam(q.StartTime, l.StringTimes)
		end, err2 := timeParam(q.EndTime, l.StringTimes)
		if err1 != nil || err2 != nil {
			answerError(w, http.StatusBadRequest, klingapi.CodeInvalidParam, "start_time and end_time: "+errors.Join(err1, err2).Error())
			return
		}
		if q.Limit <= 0 || q.Limit > l.MaxPageSize {
			answerError(w, http.StatusBadRequest, klingapi.CodeInvalidParam, fmt.Sprintf("limit must be 1..%d", l.MaxPageSize))
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
			return t.family.List.Path == l.Path && (start == 0 || t.created >= start) && (end == 0 || t.created <= end) &&
				(len(statuses) == 0 || statuses[t.publicStatus()])
		})
		off, _ := strconv.Atoi(q.Cursor)
		page := taskPage{Result: []json.RawMessage{}, Count: 0}
		for i := off; i < len(tasks) && i < off+q.Limit; i++ {
			page.Result = append(page.Result, tasks[i].body())
		}
		page.Count = len(page.Result)
		if off+q.Limit < len(tasks) {
			page.HasMore, page.NextCursor = true, strconv.Itoa(off+q.Limit)
		}
		answer(w, page)
	}
}

// timeParam reads a listing's start_time or end_time, in the type its page
// gives it; absent is 0.
func timeParam(v json.RawMessage, asString bool) (int64, error) {
	if len(v) == 0 || string(v) == "null" {
		return 0, nil
	}
	if asString {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return 0, errors.New("want a string of Unix milliseconds")
		}
		return strconv.ParseInt(s, 10, 64)
	}
	var n int64
	if err := json.Unmarshal(v, &n); err != nil {
		return 0, errors.New("want Unix milliseconds as a number")
	}
	return n, nil
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
