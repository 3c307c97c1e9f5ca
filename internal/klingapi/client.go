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

// do sends one request and returns the envelope's data. A non-zero code
// or an HTTP error status is an *APIError; a 200 whose body is not Kling's
// envelope is a *ShapeError naming who (family or shared endpoint) was
// asked.
func (c *Client) do(ctx context.Context, who, method, path string, body []byte) (json.RawMessage, error) {
	tok, err := c.tokens.bearer()
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("klingapi: build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %v", ErrUnavailable, method, redactPath(path), err) //nolint:errorlint // the kind is ErrUnavailable; the transport's cause is text only, so its timeout is not taken for the caller's deadline
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, fmt.Errorf("%w: read answer: %v", ErrUnavailable, err) //nolint:errorlint // the kind is ErrUnavailable; the transport's cause is text only, so its timeout is not taken for the caller's deadline
	}
	call := method + " " + redactPath(path)
	var env struct {
		Code      *int            `json:"code"`
		Message   string          `json:"message"`
		RequestID string          `json:"request_id"`
		Data      json.RawMessage `json:"data"`
	}
	jerr := json.Unmarshal(data, &env)
	code := 0
	if env.Code != nil {
		code = *env.Code
	}
	if resp.StatusCode != http.StatusOK || code != CodeOK {
		ae := &APIError{HTTPStatus: resp.StatusCode, Code: code, Message: env.Message, RequestID: env.RequestID}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			ae.RetryAfter = time.Duration(s) * time.Second
		}
		if ae.Message == "" {
			ae.Message = http.StatusText(resp.StatusCode)
		}
		return nil, ae
	}
	switch {
	case jerr != nil:
		return nil, &ShapeError{Family: who, Call: call, Field: "(body)", Problem: "not Kling's JSON envelope: " + jerr.Error()}
	case env.Code == nil:
		return nil, &ShapeError{Family: who, Call: call, Field: "code", Problem: "missing"}
	case len(env.Data) == 0 || string(env.Data) == "null":
		return nil, &ShapeError{Family: who, Call: call, Field: "data", Problem: "missing"}
	}
	return env.Data, nil
}

// redactPath drops the query, which may carry ids an operator would rather
// not see in an error; the path alone says which call failed.
func redactPath(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}
