package klingapi

import (
	"context"
	"encoding/json"
	"net/http"
)

// Create posts body to one of Kling's create paths (e.g.
// "/v1/videos/text2video") and returns the task Kling answered with: the
// answer's data has the shape of a task (task_id, task_status, task_info
// in the legacy API; id, status, external_id in the newer one). Kling's
// refusals come back as *APIError; a transport failure matches
// ErrUnavailable, and then Kling may or may not have created the task.
func (c *Client) Create(ctx context.Context, path string, body []byte) (Task, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodPost, path, body, &raw); err != nil {
		return Task{}, err
	}
	return decodeTask(raw)
}
