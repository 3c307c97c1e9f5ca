package klingapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/klingfan/klingfan/internal/klingfamily"
)

// Task is one task as the API returned it: Raw has the shape of a task
// callback (legacy or new), the other fields are read from it.
type Task struct {
	ID         string
	ExternalID string
	Status     string
	// CreatedAt and UpdatedAt are created_at / create_time and updated_at
	// / update_time (Unix milliseconds).
	CreatedAt int64
	UpdatedAt int64
	// V2 is set for new-shape tasks (id, status, outputs).
	V2  bool
	Raw json.RawMessage
}

// Terminal reports whether the task's status is final.
func (t Task) Terminal() bool {
	switch t.Status {
	case "succeed", "succeeded", "failed":
		return true
	}
	return false
}

// GetTask queries one task of family f by its task id, or by its external
// task id when external is set. A legacy family is asked at GET
// {collection}/{id}, where Kling's pages put the external id in place of
// the task id; a newer-API family at GET /tasks (or /solutions)
// ?task_ids= or ?external_task_ids=. A task Kling does not return is
// ErrNotFound.
func (c *Client) GetTask(ctx context.Context, f klingfamily.Family, id string, external bool) (Task, error) {
	if external && !f.Query.ByExternal {
		return Task{}, fmt.Errorf("klingapi: %s: Kling documents no lookup by external task id for this family", f.Name)
	}
	switch f.Query.Kind {
	case klingfamily.QueryPath:
		p := f.Query.Path + "/" + url.PathEscape(id)
		data, err := c.do(ctx, f.Name, http.MethodGet, p, nil)
		if err != nil {
			return Task{}, err
		}
		t, err := decodeTask(data, f.Shape)
		if err != nil {
			return Task{}, shapeError(err, f.Name, "GET "+f.Query.Path+"/{id}", "data")
		}
		if (external && t.ExternalID != id) || (!external && t.ID != id) {
			return Task{}, &ShapeError{Family: f.Name, Call: "GET " + f.Query.Path + "/{id}", Field: "data", Problem: "answered a different task"}
		}
		return t, nil
	case klingfamily.QueryIDs:
		ts, err := c.GetTasks(ctx, f.Query, []string{id}, external)
		if err != nil {
			return Task{}, err
		}
		for _, t := range ts {
			if (external && t.ExternalID == id) || (!external && t.ID == id) {
				return t, nil
			}
		}
		return Task{}, fmt.Errorf("%w: %s has no task %q", ErrNotFound, strings.TrimPrefix(f.Query.Path, "/"), id)
	}
	return Task{}, fmt.Errorf("klingapi: %s: Kling documents no task query for this family", f.Name)
}

// GetTasks queries new-shape tasks by id at a shared query endpoint
// (GET /tasks?task_ids=a,b, or external_task_ids when external is set).
// Kling answers a list of tasks; ids it does not know are simply absent.
func (c *Client) GetTasks(ctx context.Context, q klingfamily.Query, ids []string, external bool) ([]Task, error) {
	if q.Kind != klingfamily.QueryIDs {
		return nil, fmt.Errorf("klingapi: %s is not a shared task query endpoint", q.Path)
	}
	if q.MaxIDs > 0 && len(ids) > q.MaxIDs {
		return nil, fmt.Errorf("klingapi: %s takes at most %d ids a query, not %d", q.Path, q.MaxIDs, len(ids))
	}
	key := "task_ids"
	if external {
		key = "external_task_ids"
	}
	who := strings.TrimPrefix(q.Path, "/")
	data, err := c.do(ctx, who, http.MethodGet, q.Path+"?"+key+"="+url.QueryEscape(strings.Join(ids, ",")), nil)
	if err != nil {
		return nil, err
	}
	return decodeTaskList(data, klingfamily.New, who, "GET "+q.Path, "data")
}

// ListPage returns page pageNum (1-based) of a legacy family's tasks,
// newest first.
func (c *Client) ListPage(ctx context.Context, f klingfamily.Family, pageNum, pageSize int) ([]Task, error) {
	if f.List.Kind != klingfamily.ListPaged {
		return nil, fmt.Errorf("klingapi: %s has no paged listing", f.Name)
	}
	if pageNum < 1 || pageNum > klingfamily.MaxPageNum || pageSize < 1 || pageSize > f.List.MaxPageSize {
		return nil, fmt.Errorf("klingapi: %s: page %d of size %d is outside 1..%d, 1..%d", f.Name, pageNum, pageSize, klingfamily.MaxPageNum, f.List.MaxPageSize)
	}
	q := url.Values{"pageNum": {strconv.Itoa(pageNum)}, "pageSize": {strconv.Itoa(pageSize)}}
	data, err := c.do(ctx, f.Name, http.MethodGet, f.List.Path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	return decodeTaskList(data, f.Shape, f.Name, "GET "+f.List.Path, "data")
}

// TaskPage is one answer of a cursor listing (POST /tasks, POST
// /solutions).
type TaskPage struct {
	Tasks      []Task
	Count      int
	NextCursor string
	HasMore    bool
}

// TaskQuery is the body of a cursor listing. Kling filters start_time and
// end_time on the task's creation time.
type TaskQuery struct {
	StartTime int64 // Unix ms; 0 leaves Kling's default (end - 30 days)
	EndTime   int64 // Unix ms; 0 leaves Kling's default (now)
	Cursor    string
	// Limit is the page size; the listing's maximum when zero or above it.
	Limit   int
	Filters []TaskFilter
}

// TaskFilter restricts a cursor listing by "status" or "product_type".
type TaskFilter struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

// ListTasks runs one query of a cursor listing l.
func (c *Client) ListTasks(ctx context.Context, l klingfamily.List, q TaskQuery) (TaskPage, error) {
	if l.Kind != klingfamily.ListCursor {
		return TaskPage{}, fmt.Errorf("klingapi: %s is not a cursor listing", l.Path)
	}
	if q.Limit <= 0 || q.Limit > l.MaxPageSize {
		q.Limit = l.MaxPageSize
	}
	body := map[string]any{"limit": q.Limit}
	// POST /tasks types the times as strings of Unix milliseconds, POST
	// /solutions as numbers; each is sent as its page types it.
	for k, v := range map[string]int64{"start_time": q.StartTime, "end_time": q.EndTime} {
		switch {
		case v == 0:
		case l.StringTimes:
			body[k] = strconv.FormatInt(v, 10)
		default:
			body[k] = v
		}
	}
	if q.Cursor != "" {
		body["cursor"] = q.Cursor
	}
	if len(q.Filters) > 0 {
		body["filters"] = q.Filters
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return TaskPage{}, fmt.Errorf("klingapi: encode task query: %w", err)
	}
	who, call := strings.TrimPrefix(l.Path, "/"), "POST "+l.Path
	data, err := c.do(ctx, who, http.MethodPost, l.Path, raw)
	if err != nil {
		return TaskPage{}, err
	}
	var w struct {
		Result     json.RawMessage `json:"result"`
		Count      *int            `json:"count"`
		NextCursor *string         `json:"next_cursor"`
		HasMore    *bool           `json:"has_more"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return TaskPage{}, &ShapeError{Family: who, Call: call, Field: "data", Problem: "want an object with result, count, next_cursor and has_more: " + describe(data)}
	}
	if w.HasMore == nil {
		return TaskPage{}, &ShapeError{Family: who, Call: call, Field: "data.has_more", Problem: "missing"}
	}
	tasks, err := decodeTaskList(w.Result, klingfamily.New, who, call, "data.result")
	if err != nil {
		return TaskPage{}, err
	}
	p := TaskPage{Tasks: tasks, HasMore: *w.HasMore}
	if w.Count != nil {
		p.Count = *w.Count
	}
	if w.NextCursor != nil {
		p.NextCursor = *w.NextCursor
	}
	if p.HasMore && p.NextCursor == "" {
		return TaskPage{}, &ShapeError{Family: who, Call: call, Field: "data.next_cursor", Problem: "empty while has_more is true"}
	}
	return p, nil
}

// fieldError is a decode problem at a field, relative to the task.
type fieldError struct{ field, problem string }

func (e *fieldError) Error() string { return e.field + ": " + e.problem }

// shapeError places a fieldError under the JSON path at.
func shapeError(err error, who, call, at string) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		field := at
		if fe.field != "" {
			field += "." + fe.field
		}
		return &ShapeError{Family: who, Call: call, Field: field, Problem: fe.problem}
	}
	return err
}

// decodeTaskList reads a JSON list of tasks of shape.
func decodeTaskList(data json.RawMessage, shape klingfamily.Shape, who, call, at string) ([]Task, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil || data == nil {
		return nil, &ShapeError{Family: who, Call: call, Field: at, Problem: "want a list of tasks, got " + describe(data)}
	}
	out := make([]Task, 0, len(raws))
	for i, r := range raws {
		t, err := decodeTask(r, shape)
		if err != nil {
			return nil, shapeError(err, who, call, at+"["+strconv.Itoa(i)+"]")
		}
		out = append(out, t)
	}
	return out, nil
}

// Statuses each shape documents. The newer APIs spell success
// "succeeded", except the virtual try-on solution's page, which spells it
// "succeed" as the legacy API does; both are read.
var statuses = map[klingfamily.Shape][]string{
	klingfamily.Legacy: {"submitted", "processing", "succeed", "failed"},
	klingfamily.New:    {"submitted", "processing", "succeeded", "succeed", "failed"},
}

// decodeTask reads one task of shape, checking the members that identify
// it; the rest stays in Raw for the normalizer.
func decodeTask(raw json.RawMessage, shape klingfamily.Shape) (Task, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return Task{}, &fieldError{"", "want a task object, got " + describe(raw)}
	}
	idKey, statusKey, createdKey, updatedKey := "task_id", "task_status", "created_at", "updated_at"
	other := "id"
	if shape == klingfamily.New {
		idKey, statusKey, createdKey, updatedKey = "id", "status", "create_time", "update_time"
		other = "task_id"
	}
	t := Task{V2: shape == klingfamily.New, Raw: raw}
	if _, ok := m[idKey]; !ok {
		if _, wrong := m[other]; wrong {
			return Task{}, &fieldError{idKey, fmt.Sprintf("missing; the task has %s, the other API generation's shape", other)}
		}
	}
	if err := stringField(m, idKey, &t.ID, true); err != nil {
		return Task{}, err
	}
	if err := stringField(m, statusKey, &t.Status, true); err != nil {
		return Task{}, err
	}
	if !slices.Contains(statuses[shape], t.Status) {
		return Task{}, &fieldError{statusKey, fmt.Sprintf("%q is not one of %s", t.Status, strings.Join(statuses[shape], ", "))}
	}
	if err := intField(m, createdKey, &t.CreatedAt); err != nil {
		return Task{}, err
	}
	if err := intField(m, updatedKey, &t.UpdatedAt); err != nil {
		return Task{}, err
	}
	if shape == klingfamily.New {
		if err := stringField(m, "external_id", &t.ExternalID, false); err != nil {
			return Task{}, err
		}
		return t, nil
	}
	if info, ok := m["task_info"]; ok && string(info) != "null" {
		var im map[string]json.RawMessage
		if err := json.Unmarshal(info, &im); err != nil {
			return Task{}, &fieldError{"task_info", "want an object, got " + describe(info)}
		}
		if err := stringField(im, "external_task_id", &t.ExternalID, false); err != nil {
			err.field = "task_info." + err.field
			return Task{}, err
		}
	}
	return t, nil
}

func stringField(m map[string]json.RawMessage, key string, dst *string, required bool) *fieldError {
	v, ok := m[key]
	if !ok || string(v) == "null" {
		if required {
			return &fieldError{key, "missing"}
		}
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return &fieldError{key, "want a string, got " + describe(v)}
	}
	if required && *dst == "" {
		return &fieldError{key, "empty"}
	}
	return nil
}

// intField reads a Unix-millisecond time; Kling's pages show numbers.
func intField(m map[string]json.RawMessage, key string, dst *int64) error {
	v, ok := m[key]
	if !ok || string(v) == "null" {
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return &fieldError{key, "want Unix milliseconds as a number, got " + describe(v)}
	}
	return nil
}

// describe names a JSON value's kind for an error message, without
// repeating the value (it may be long or carry URLs with tokens).
func describe(v json.RawMessage) string {
	s := strings.TrimSpace(string(v))
	if s == "" {
		return "nothing"
	}
	switch s[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
