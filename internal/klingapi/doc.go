// Package klingapi is a small client for Kling's task query API, driven by
// the family table in klingfamily: a legacy family's own endpoints (GET
// {collection}/{id}, where the pages put the external task id in place of
// the task id, and the paged list GET {collection}?pageNum=&pageSize=),
// and the shared endpoints of the newer APIs (GET /tasks?task_ids= and
// GET /solutions?task_ids=, which answer a list, and the POST /tasks and
// POST /solutions cursor listings). Every answer is wrapped in
// {"code","message","request_id","data"}.
//
// It authenticates either with an HS256 JWT minted from an access key and
// a secret key (claims iss, exp = now+1800s, nbf = now-5s, built with
// github.com/golang-jwt/jwt/v5) or with a static API key sent as the
// bearer token.
//
// Kling's non-zero codes become *APIError values, classified by the one
// copy of Kling's error-code table in codes.go (Classify, and errors.Is
// against ErrAuth, ErrAccount, ErrPermission, ErrInvalid, ErrNotFound,
// ErrPolicy, ErrRateLimited, ErrUnavailable). Each also carries its error
// kind (errkind), with Kling's code and retry hint, so the gRPC layer's one
// mapping answers for Kling's codes too. An answer that does not have the
// documented shape is a *ShapeError naming the family and the field, never
// a silently skipped task.
//
// Task bodies are returned raw: they have the shape of Kling's task
// callbacks, so the caller feeds them to the same normalizer as callbacks.
package klingapi
