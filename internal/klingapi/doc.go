// Package klingapi is a small client for Kling's task query API: the legacy
// per-family endpoints (`GET /v1/{group}/{family}/{task_id}` and the paged
// list `GET /v1/{group}/{family}?pageNum=&pageSize=`), whose answers are
// wrapped in `{"code","message","request_id","data"}`, and the newer
// `GET /tasks?task_ids=` and `POST /tasks` listing.
//
// It authenticates either with an HS256 JWT minted from an access key and a
// secret key (claims iss, exp = now+1800s, nbf = now-5s, built with
// github.com/golang-jwt/jwt/v5) or with a static API key sent as the bearer
// token. Kling's non-zero codes become *APIError values that callers test
// with errors.Is against ErrAuth and ErrRateLimited.
//
// Facts checked against Kling's published API reference (mirrored pages
// "General Information" and "Concurrency Rules"): the JWT claims above;
// codes 1000-1004 come with HTTP 401 (1003 token not yet valid, 1004
// expired); 1100-1102 (account exceptions) come with HTTP 429 and are not
// rate limits; 1303 is "parallel task over resource pack limit", to be
// retried with exponential backoff from at least 1s; query endpoints use
// no concurrency and have no QPS limit. 1302 (rate) is taken from public
// clients, not confirmed in the reference.
//
// Task bodies are returned raw: they have the shape of Kling's task
// callbacks, so the caller feeds them to the same normalizer as callbacks.
package klingapi
