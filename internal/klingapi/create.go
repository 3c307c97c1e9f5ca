package klingapi

import (
	"context"
	"net/http"

	"github.com/klingfan/klingfan/internal/klingfamily"
)

// Create posts body to family f's create path and returns the task Kling
// answered with: the answer's data has the shape of one of f's tasks
// (task_id, task_status, task_info in the legacy API; id, status,
// external_id in the newer ones). Kling's refusals come back as
// *APIError; a transport failure matches ErrUnavailable, and then Kling
// may or may not have created the task.
func (c *Client) Create(ctx context.Context, f klingfamily.Family, body []byte) (Task, error) {
	data, err := c.do(ctx, f.Name, http.MethodPost, f.Create, body)
	if err != nil {
		return Task{}, err
	}
	t, err := decodeTask(data, f.Shape)
	if err != nil {
		return Task{}, shapeError(err, f.Name, "POST "+f.Create, "data")
	}
	return t, nil
}
