package klingapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
)

// TestErrorCodes runs every row of Kling's error-code table
// (api/get-started/error-codes) through the client over HTTP: Kling
// answers the code with the row's HTTP status, and the client must
// classify it as the page says. The expectations are written here from
// the page, not read from the client's table.
func TestErrorCodes(t *testing.T) {
	type want struct {
		class klingapi.Class
		retry bool
		is    error
	}
	auth := want{klingapi.ClassAuth, false, klingapi.ErrAuth}
	account := want{klingapi.ClassAccount, false, klingapi.ErrAccount}
	invalid := want{klingapi.ClassInvalid, false, klingapi.ErrInvalid}
	policy := want{klingapi.ClassPolicy, false, klingapi.ErrPolicy}
	limited := want{klingapi.ClassRateLimited, true, klingapi.ErrRateLimited}
	server := want{klingapi.ClassServer, true, klingapi.ErrUnavailable}
	for _, tc := range []struct {
		code, status int
		want         want
	}{
		{1000, 401, auth},
		{1001, 401, auth},
		{1002, 401, auth},
		{1003, 401, auth},
		{1004, 401, auth},
		{1100, 429, account},
		{1101, 429, account},
		{1102, 429, account},
		{1103, 403, want{klingapi.ClassPermission, false, klingapi.ErrPermission}},
		{1200, 400, invalid},
		{1201, 400, invalid}, // invalid parameters, not "task not found"
		{1202, 404, invalid},
		{1203, 404, want{klingapi.ClassNotFound, false, klingapi.ErrNotFound}}, // the not-found answer
		{1300, 400, policy},
		{1301, 400, policy},
		{1302, 429, limited},
		{1303, 429, limited},
		{1304, 429, want{klingapi.ClassPermission, false, klingapi.ErrPermission}}, // IP allow-list: HTTP 429, yet no rate limit
		{5000, 500, server},
		{5001, 503, server},
		{5002, 504, server},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_ = json.NewEncoder(w).Encode(map[string]any{"code": tc.code, "message": fmt.Sprintf("message %d", tc.code), "request_id": "req-1"})
			}))
			defer srv.Close()
			c, err := klingapi.New(klingapi.Config{BaseURL: srv.URL, Credentials: klingapi.Credentials{APIKey: "k"}})
			if err != nil {
				t.Fatal(err)
			}
			f := klingfamily.MustByName("videos/text2video")
			_, err = c.GetTask(context.Background(), f, "task-1", false)
			got := klingapi.Classify(err)
			if got.Class != tc.want.class || got.Retryable != tc.want.retry || got.Code != tc.code || got.HTTPStatus != tc.status ||
				got.Message != fmt.Sprintf("message %d", tc.code) || got.RequestID != "req-1" {
				t.Errorf("Classify = %+v, want class %s, retryable %v, code %d, HTTP %d with Kling's message", got, tc.want.class, tc.want.retry, tc.code, tc.status)
			}
			if !errors.Is(err, tc.want.is) || klingapi.Retryable(err) != tc.want.retry {
				t.Errorf("err = %v: errors.Is(%v) = false or Retryable = %v", err, tc.want.is, klingapi.Retryable(err))
			}
			for _, other := range []error{klingapi.ErrAuth, klingapi.ErrAccount, klingapi.ErrPermission, klingapi.ErrInvalid, klingapi.ErrNotFound, klingapi.ErrPolicy, klingapi.ErrRateLimited, klingapi.ErrUnavailable} {
				if !errors.Is(other, tc.want.is) && errors.Is(err, other) {
					t.Errorf("code %d also matches %v", tc.code, other)
				}
			}
			row, ok := klingapi.LookupCode(tc.code)
			if !ok || row.HTTPStatus != tc.status || row.Class != tc.want.class || row.Meaning == "" {
				t.Errorf("table row for %d = %+v, %v", tc.code, row, ok)
			}
		})
	}
	if n := len(klingapi.Codes()); n != 21 {
		t.Errorf("the table has %d codes; the page lists 21 besides 0", n)
	}
}

// TestErrorsWithoutACode classifies what carries no code of the table:
// a bare HTTP status, an unknown code, no answer at all.
func TestErrorsWithoutACode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		class klingapi.Class
		retry bool
	}{
		{"bare 429", &klingapi.APIError{HTTPStatus: 429}, klingapi.ClassRateLimited, true},
		{"bare 404", &klingapi.APIError{HTTPStatus: 404}, klingapi.ClassNotFound, false},
		{"bare 502", &klingapi.APIError{HTTPStatus: 502}, klingapi.ClassServer, true},
		{"unknown code on 400", &klingapi.APIError{HTTPStatus: 400, Code: 1299}, klingapi.ClassInvalid, false},
		{"unknown code on 200", &klingapi.APIError{HTTPStatus: 200, Code: 7777}, klingapi.ClassUnknown, false},
		{"unreachable", fmt.Errorf("%w: dial", klingapi.ErrUnavailable), klingapi.ClassUnreachable, true},
		{"shape", &klingapi.ShapeError{Family: "tasks", Call: "GET /tasks", Field: "data", Problem: "x"}, klingapi.ClassShape, false},
		{"canceled", context.Canceled, klingapi.ClassCanceled, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := klingapi.Classify(tc.err)
			if got.Class != tc.class || got.Retryable != tc.retry {
				t.Errorf("Classify(%v) = %+v, want %s retryable %v", tc.err, got, tc.class, tc.retry)
			}
		})
	}
}

// TestPublic holds what a client of klingfan is told of each of Kling's
// answers: the kind (and so the gRPC code), Kling's code and message, and
// a retry delay for what may succeed later.
func TestPublic(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   *klingapi.APIError
		kind  errkind.Kind
		msg   string
		retry time.Duration
	}{
		{"1004 expired token", &klingapi.APIError{HTTPStatus: 401, Code: 1004, Message: "expired"}, errkind.FailedPrecondition, "Kling refused the credentials (code 1004): expired", 0},
		{"1101 arrears", &klingapi.APIError{HTTPStatus: 429, Code: 1101, Message: "arrears"}, errkind.FailedPrecondition, "Kling refused the task (code 1101): arrears", 0},
		{"1102 resource pack", &klingapi.APIError{HTTPStatus: 429, Code: 1102, Message: "pack"}, errkind.ResourceExhausted, "Kling refused the task (code 1102): pack", time.Second},
		{"1103 no access", &klingapi.APIError{HTTPStatus: 403, Code: 1103, Message: "model"}, errkind.FailedPrecondition, "Kling refused the task (code 1103): model", 0},
		{"1201 invalid parameter", &klingapi.APIError{HTTPStatus: 400, Code: 1201, Message: "prompt"}, errkind.InvalidArgument, "Kling refused the task (code 1201): prompt", 0},
		{"1203 not found", &klingapi.APIError{HTTPStatus: 404, Code: 1203, Message: "model"}, errkind.InvalidArgument, "Kling refused the task (code 1203): model", 0},
		{"1301 content policy", &klingapi.APIError{HTTPStatus: 400, Code: 1301, Message: "content"}, errkind.InvalidArgument, "Kling refused the task (code 1301): content", 0},
		{"1303 with Retry-After", &klingapi.APIError{HTTPStatus: 429, Code: 1303, Message: "busy", RetryAfter: 7 * time.Second}, errkind.ResourceExhausted, "Kling refused the task (code 1303): busy", 7 * time.Second},
		{"1304 IP allow-list", &klingapi.APIError{HTTPStatus: 429, Code: 1304, Message: "ip"}, errkind.FailedPrecondition, "Kling refused the task (code 1304): ip", 0},
		{"5001 maintenance", &klingapi.APIError{HTTPStatus: 503, Code: 5001, Message: "maintenance"}, errkind.Unavailable, "Kling failed (HTTP 503, code 5001): maintenance", time.Second},
		{"bare 502", &klingapi.APIError{HTTPStatus: 502, Message: "Bad Gateway"}, errkind.Unavailable, "Kling failed (HTTP 502, code 0): Bad Gateway", time.Second},
		{"unknown code on 200", &klingapi.APIError{HTTPStatus: 200, Code: 7777, Message: "odd"}, errkind.FailedPrecondition, "Kling refused the task (code 7777): odd", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.err.RequestID = "req-1"
			p := errkind.Of(fmt.Errorf("create: %w", tc.err))
			if p.Kind != tc.kind || p.Message != tc.msg || p.RetryAfter != tc.retry {
				t.Errorf("Of = %v %q retry %v, want %v %q retry %v", p.Kind, p.Message, p.RetryAfter, tc.kind, tc.msg, tc.retry)
			}
			if !errors.Is(tc.err, tc.kind) {
				t.Errorf("errors.Is(err, %v) = false", tc.kind)
			}
			code := strconv.Itoa(tc.err.Code)
			if i := p.Info; i == nil || i.Reason != "KLING_"+code || i.Domain != "klingai.com" || i.Metadata["code"] != code || i.Metadata["request_id"] != "req-1" {
				t.Errorf("info = %+v", p.Info)
			}
		})
	}
	for _, err := range []error{fmt.Errorf("%w: dial", klingapi.ErrUnavailable), &klingapi.ShapeError{Family: "tasks", Call: "GET /tasks", Field: "data", Problem: "x"}} {
		if k := errkind.Of(err).Kind; k != errkind.Unavailable {
			t.Errorf("%v is of kind %v, want unavailable", err, k)
		}
	}
}
