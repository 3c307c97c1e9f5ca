// Package api serves klingfan's gRPC services (events, webhooks, jobs and
// consumer groups) over the hub and the store. It checks requests, renders
// answers, and maps every internal error to a gRPC status in one place,
// status.go.
package api
