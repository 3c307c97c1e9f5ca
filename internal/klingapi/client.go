package klingapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxAnswerBytes bounds an answer read into memory: a list page of 500
// tasks with their URLs stays far below it.
const maxAnswerBytes = 32 << 20

// Limits Kling documents for the list endpoints.
const (
	MaxPageSize  = 500
	MaxPageNum   = 1000
	MaxTaskLimit = 500
)

// Client talks to one Kling API endpoint. It is safe for concurrent use.
type Client struct {
	base   string
	http   *http.Client
	tokens *tokenSource
}

// Config configures New.
type Config struct {
	// BaseURL is Kling's API host, e.g. https://api-singapore.klingai.com.
	BaseURL string
	// Credentials authenticate every request.
	Credentials Credentials
	// HTTPClient is used for requests; a client with a 30s timeout when nil.
	HTTPClient *http.Client
	// Now is the clock for JWT claims; time.Now when nil.
	Now func() time.Time
}

// New returns a client for cfg.BaseURL.
func New(o Config) (*Client, error) {
	baseURL, creds := o.BaseURL, o.Credentials
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("klingapi: API URL %q must be an absolute http(s) URL", baseURL)
	}
	if !creds.Valid() {
		return nil, errors.New("klingapi: credentials need KLING_API_KEY, or KLING_ACCESS_KEY and KLING_SECRET_KEY")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), http: o.HTTPClient, tokens: &tokenSource{creds: creds, now: o.Now}}, nil
}

// Task is one task as the API returned it: Raw has the shape of a task
// callback (legacy or new), the other fields are read from it.
type Task struct {
	ID         string
	ExternalID string
	Status     string
	// UpdatedAt is updated_at / update_time (Unix milliseconds).
	UpdatedAt int64
	// V2 is set for new-shape tasks (id, status, outputs).
	V2  bool
	Raw json.RawMessage
}

// Terminal reports whether the task's status is final.
func (t Task) Terminal() bool {
	switch t.Status {
	case "succeed", "succeeded", "failed", "cancelled", "canceled":
		return true
	}
	return false
}

// taskFields reads both shapes' identifying fields in one decode.
type taskFields struct {
	TaskID     string `json:"task_id"`
	TaskStatus string `json:"task_status"`
	UpdatedAt  int64  `json:"updated_at"`
	TaskInfo   struct {
		ExternalTaskID string `json:"external_task_id"`
	} `json:"task_info"`
	ID         string `json:"id"`
	Status     string `json:"status"`
	UpdateTime int64  `json:"update_time"`
	ExternalID string `json:"external_id"`
}

func decodeTask(raw json.RawMessage) (Task, error) {
	var f taskFields
	if err := json.Unmarshal(raw, &f); err != nil {
		return Task{}, fmt.Errorf("klingapi: decode task: %w", err)
	}
	if f.TaskID != "" {
		return Task{ID: f.TaskID, ExternalID: f.TaskInfo.ExternalTaskID, Status: f.TaskStatus, UpdatedAt: f.UpdatedAt, Raw: raw}, nil
	}
	if f.ID != "" {
		return Task{ID: f.ID, ExternalID: f.ExternalID, Status: f.Status, UpdatedAt: f.UpdateTime, V2: true, Raw: raw}, nil
	}
	return Task{}, errors.New("klingapi: task without task_id or id")
}

func decodeTasks(raws []json.RawMessage) ([]Task, error) {
	out := make([]Task, 0, len(raws))
	for _, r := range raws {
		t, err := decodeTask(r)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// envelope is Kling's wrapper around every answer.
type envelope struct {
	Code      int             `json:"code"`
	Message   string          `json:"message"`
	RequestID string          `json:"request_id"`
	Data      json.RawMessage `json:"data"`
}

// GetTask queries one legacy task by task id, or by external task id when
// external is set.
func (c *Client) GetTask(ctx context.Context, f Family, id string, external bool) (Task, error) {
	p := f.path() + "/" + url.PathEscape(id)
	if external {
		p = f.path() + "?external_task_id=" + url.QueryEscape(id)
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, p, nil, &raw); err != nil {
		return Task{}, err
	}
	return decodeTask(raw)
}

// ListPage returns page pageNum (1-based) of a legacy family's tasks,
// newest first.
func (c *Client) ListPage(ctx context.Context, f Family, pageNum, pageSize int) ([]Task, error) {
	if pageNum < 1 || pageNum > MaxPageNum || pageSize < 1 || pageSize > MaxPageSize {
		return nil, fmt.Errorf("klingapi: page %d of size %d is outside 1..%d, 1..%d", pageNum, pageSize, MaxPageNum, MaxPageSize)
	}
	q := url.Values{"pageNum": {strconv.Itoa(pageNum)}, "pageSize": {strconv.Itoa(pageSize)}}
	var raws []json.RawMessage
	if err := c.do(ctx, http.MethodGet, f.path()+"?"+q.Encode(), nil, &raws); err != nil {
		return nil, err
	}
	return decodeTasks(raws)
}

// TaskPage is one answer of the newer POST /tasks listing.
type TaskPage struct {
	Tasks      []Task
	Count      int
	NextCursor string
	HasMore    bool
}

// TaskQuery is the body of POST /tasks.
type TaskQuery struct {
	StartTime int64        `json:"start_time,omitempty"` // Unix ms
	EndTime   int64        `json:"end_time,omitempty"`   // Unix ms
	Cursor    string       `json:"cursor,omitempty"`
	Limit     int          `json:"limit,omitempty"`
	Filters   []TaskFilter `json:"filters,omitempty"`
}

// TaskFilter restricts POST /tasks by "status" or "product_type".
type TaskFilter struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

type taskPageWire struct {
	Result     []json.RawMessage `json:"result"`
	Count      int               `json:"count"`
	NextCursor string            `json:"next_cursor"`
	HasMore    bool              `json:"has_more"`
}

// ListTasks runs one POST /tasks query of the newer API.
func (c *Client) ListTasks(ctx context.Context, q TaskQuery) (TaskPage, error) {
	if q.Limit <= 0 || q.Limit > MaxTaskLimit {
		q.Limit = MaxTaskLimit
	}
	body, err := json.Marshal(q)
	if err != nil {
		return TaskPage{}, fmt.Errorf("klingapi: encode task query: %w", err)
	}
	var w taskPageWire
	if err := c.do(ctx, http.MethodPost, "/tasks", body, &w); err != nil {
		return TaskPage{}, err
	}
	tasks, err := decodeTasks(w.Result)
	if err != nil {
		return TaskPage{}, err
	}
	return TaskPage{Tasks: tasks, Count: w.Count, NextCursor: w.NextCursor, HasMore: w.HasMore}, nil
}

// GetTasks queries new-shape tasks by id (GET /tasks?task_ids=a,b), or by
// external id when external is set.
func (c *Client) GetTasks(ctx context.Context, ids []string, external bool) ([]Task, error) {
	key := "task_ids"
	if external {
		key = "external_task_ids"
	}
	var w taskPageWire
	if err := c.do(ctx, http.MethodGet, "/tasks?"+key+"="+url.QueryEscape(strings.Join(ids, ",")), nil, &w); err != nil {
		return nil, err
	}
	return decodeTasks(w.Result)
}

// do sends one request and decodes the envelope's data into out.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	tok, err := c.tokens.bearer()
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("klingapi: build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrUnavailable, method, redactPath(path), err) //nolint:errorlint // the kind is ErrUnavailable; the transport's cause is text only, so its timeout is not taken for the caller's deadline
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("%w: read answer: %v", ErrUnavailable, err) //nolint:errorlint // the kind is ErrUnavailable; the transport's cause is text only, so its timeout is not taken for the caller's deadline
	}
	var env envelope
	jerr := json.Unmarshal(data, &env)
	if resp.StatusCode != http.StatusOK || jerr != nil || env.Code != CodeOK {
		ae := &APIError{HTTPStatus: resp.StatusCode, Code: env.Code, Message: env.Message, RequestID: env.RequestID}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			ae.RetryAfter = time.Duration(s) * time.Second
		}
		if jerr != nil && resp.StatusCode == http.StatusOK {
			return fmt.Errorf("klingapi: decode answer: %w", jerr)
		}
		if ae.Message == "" {
			ae.Message = http.StatusText(resp.StatusCode)
		}
		return ae
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("klingapi: decode data of %s: %w", redactPath(path), err)
	}
	return nil
}

// redactPath drops the query, which may carry ids an operator would rather
// not see in an error; the path alone says which call failed.
func redactPath(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}
