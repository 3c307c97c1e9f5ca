package klingapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
)

// corpusDir holds the query answers hand-written from Kling's pages.
const corpusDir = "../../testdata/kling/queries"

// task is what a corpus file's task must decode into.
type task struct{ id, status, external string }

// corpusCases names, for every file of the corpus, who answers it and the
// tasks it holds. A file without a case, or a case without a file, fails
// TestQueryCorpus.
var corpusCases = map[string]struct {
	family string // the family asked; "tasks" or "solutions" for the shared endpoints
	want   []task
}{
	"videos_avatar_image2video.get.succeed.json":        {"videos/avatar/image2video", []task{{"860311812371525700", "succeed", "avatar-ext-1"}}},
	"videos_effects.get.succeed.json":                   {"videos/effects", []task{{"860311812371525701", "succeed", "effects-ext-1"}}},
	"videos_effects.list.json":                          {"videos/effects", []task{{"860311812371525750", "succeed", "effects-ext-2"}, {"860311812371525751", "processing", ""}}},
	"videos_advanced-lip-sync.get.succeed.json":         {"videos/advanced-lip-sync", []task{{"860311812371525702", "succeed", ""}}},
	"videos_multi-elements.get.succeed.json":            {"videos/multi-elements", []task{{"860311812371525703", "succeed", "me-ext-1"}}},
	"videos_motion-control.get.succeed.json":            {"videos/motion-control", []task{{"860311812371525704", "succeed", "mc-ext-1"}}},
	"videos_text2video.get.succeed.json":                {"videos/text2video", []task{{"860311812371525800", "succeed", "text2video-ext-1"}}},
	"videos_image2video.get.succeed.json":               {"videos/image2video", []task{{"860311812371525801", "succeed", "image2video-ext-1"}}},
	"videos_omni-video.get.succeed.json":                {"videos/omni-video", []task{{"860311812371525802", "succeed", "omni-video-ext-1"}}},
	"videos_multi-image2video.get.succeed.json":         {"videos/multi-image2video", []task{{"860311812371525803", "succeed", "multi-image2video-ext-1"}}},
	"videos_video-extend.get.succeed.json":              {"videos/video-extend", []task{{"860311812371525804", "succeed", "video-extend-ext-1"}}},
	"videos_lip-sync.get.succeed.json":                  {"videos/lip-sync", []task{{"860311812371525805", "succeed", "lip-sync-ext-1"}}},
	"images_generations.get.succeed.json":               {"images/generations", []task{{"860311812371525710", "succeed", "gen-ext-1"}}},
	"images_omni-image.get.succeed.json":                {"images/omni-image", []task{{"860311812371525711", "succeed", "omni-img-ext-1"}}},
	"images_multi-image2image.get.succeed.json":         {"images/multi-image2image", []task{{"860311812371525712", "succeed", "mi2i-ext-1"}}},
	"images_editing_expand.get.succeed.json":            {"images/editing/expand", []task{{"860311812371525713", "succeed", "expand-ext-1"}}},
	"images_kolors-virtual-try-on.get.succeed.json":     {"images/kolors-virtual-try-on", []task{{"860311812371525714", "succeed", "tryon-ext-1"}}},
	"audio_video-to-audio.get.succeed.json":             {"audio/video-to-audio", []task{{"860311812371525720", "succeed", "v2a-ext-1"}}},
	"audio_text-to-audio.get.succeed.json":              {"audio/text-to-audio", []task{{"860311812371525721", "succeed", "t2a-ext-1"}}},
	"general_custom-voices.get.succeed.json":            {"general/custom-voices", []task{{"860311812371525730", "succeed", "voice-ext-1"}}},
	"general_custom-voices.list.json":                   {"general/custom-voices", []task{{"860311812371525752", "succeed", ""}}},
	"general_advanced-custom-elements.get.succeed.json": {"general/advanced-custom-elements", []task{{"860311812371525731", "succeed", "element-ext-1"}}},
	"general_ai-multi-shot.get.succeed.json":            {"general/ai-multi-shot", []task{{"860311812371525732", "succeed", "multishot-ext-1"}}},
	"legacy.get.submitted.json":                         {"videos/text2video", []task{{"860311812371525740", "submitted", "state-ext-1"}}},
	"legacy.get.processing.json":                        {"images/generations", []task{{"860311812371525741", "processing", "state-ext-2"}}},
	"legacy.get.failed.json":                            {"general/custom-voices", []task{{"860311812371525742", "failed", "state-ext-3"}}},
	"tasks.ids.succeeded.json":                          {"tasks", []task{{"893605946402811985", "succeeded", "t2v-ext-1"}}},
	"tasks.ids.outputs.json": {"tasks", []task{
		{"893605946402811986", "succeeded", ""}, {"893605946402811987", "succeeded", ""},
		{"893605946402811988", "succeeded", ""}, {"893605946402811989", "succeeded", ""},
	}},
	"tasks.ids.submitted.json":                              {"tasks", []task{{"893605946402811993", "submitted", "t2v-ext-5"}}},
	"tasks.ids.processing.json":                             {"tasks", []task{{"893605946402811990", "processing", "t2v-ext-2"}}},
	"tasks.ids.failed.json":                                 {"tasks", []task{{"893605946402811991", "failed", "t2v-ext-3"}}},
	"tasks.ids.empty.json":                                  {"tasks", nil},
	"tasks.cursor.json":                                     {"tasks", []task{{"893605946402811992", "succeeded", "t2v-ext-4"}, {"893605946402811990", "processing", "t2v-ext-2"}}},
	"solutions.cursor.json":                                 {"solutions", []task{{"912345678901234568", "failed", "my_task_124"}}},
	"solutions_drama_subtitle.ids.succeeded.json":           {"solutions", []task{{"912345678901234567", "succeeded", "my_task_123"}}},
	"solutions_drama_subtitle.ids.failed.json":              {"solutions", []task{{"912345678901234568", "failed", "my_task_124"}}},
	"solutions_talking_agent.ids.succeeded.json":            {"solutions", []task{{"912345678901234570", "succeeded", "my_task_123"}}},
	"solutions_e-commerce_goods_studio.ids.succeeded.json":  {"solutions", []task{{"912345678901234571", "succeeded", "sku-1001"}}},
	"solutions_e-commerce_clothing_dupe.ids.succeeded.json": {"solutions", []task{{"912345678901234572", "succeeded", "sku-4471"}}},
	"solutions_virtual_try_on.ids.succeed.json":             {"solutions", []task{{"882836916432285766", "succeed", "virtual-tryon-001"}}},
}

// TestQueryCorpus runs every query answer of the corpus through the client
// over a real HTTP server that serves the file where Kling would, and
// checks each decodes into the expected tasks with its body kept whole.
func TestQueryCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s: %v", corpusDir, err)
	}
	seen := map[string]bool{}
	for _, path := range files {
		name := filepath.Base(path)
		seen[name] = true
		tc, ok := corpusCases[name]
		if !ok {
			t.Errorf("%s: no case says what it holds; add one to corpusCases", name)
			continue
		}
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		call := strings.Split(name, ".")[1]
		t.Run(name, func(t *testing.T) {
			var got []klingapi.Task
			switch call {
			case "get":
				f := klingfamily.MustByName(tc.family)
				c, reqs := serve(t, body)
				w := tc.want[0]
				tk, err := c.GetTask(context.Background(), f, w.id, false)
				if err != nil {
					t.Fatalf("GetTask: %v", err)
				}
				if p := <-reqs; p != f.Query.Path+"/"+w.id {
					t.Errorf("asked %s, want %s/%s", p, f.Query.Path, w.id)
				}
				got = []klingapi.Task{tk}
				if w.external != "" && f.Query.ByExternal {
					byExt, err := c.GetTask(context.Background(), f, w.external, true)
					if err != nil || byExt.ID != w.id {
						t.Errorf("GetTask by external id = %+v, %v", byExt, err)
					}
					if p := <-reqs; p != f.Query.Path+"/"+w.external {
						t.Errorf("asked %s for the external id; the pages put it in the path: %s/%s", p, f.Query.Path, w.external)
					}
				}
			case "list":
				f := klingfamily.MustByName(tc.family)
				c, reqs := serve(t, body)
				got, err = c.ListPage(context.Background(), f, 1, 30)
				if err != nil {
					t.Fatalf("ListPage: %v", err)
				}
				if p := <-reqs; p != f.List.Path+"?pageNum=1&pageSize=30" {
					t.Errorf("asked %s", p)
				}
			case "ids":
				q := sharedQuery(t, tc.family)
				c, reqs := serve(t, body)
				ids := make([]string, len(tc.want))
				for i, w := range tc.want {
					ids[i] = w.id
				}
				if len(ids) == 0 {
					ids = []string{"unknown-id"}
				}
				got, err = c.GetTasks(context.Background(), q, ids, false)
				if err != nil {
					t.Fatalf("GetTasks: %v", err)
				}
				if p := <-reqs; !strings.HasPrefix(p, q.Path+"?task_ids=") {
					t.Errorf("asked %s", p)
				}
			case "cursor":
				l := sharedQuery(t, tc.family)
				c, reqs := serve(t, body)
				page, err := c.ListTasks(context.Background(), klingfamily.List{Kind: klingfamily.ListCursor, Path: l.Path, MaxPageSize: 500}, klingapi.TaskQuery{StartTime: 1, EndTime: 2})
				if err != nil {
					t.Fatalf("ListTasks: %v", err)
				}
				<-reqs
				got = page.Tasks
				if page.Count != len(tc.want) {
					t.Errorf("count = %d, want %d", page.Count, len(tc.want))
				}
			default:
				t.Fatalf("unknown call %q in the file name", call)
			}
			checkTasks(t, body, call, got, tc.want)
		})
	}
	for name := range corpusCases {
		if !seen[name] {
			t.Errorf("case %s has no file in %s", name, corpusDir)
		}
	}
}

// checkTasks compares the decoded tasks with the expectation, and each
// task's raw body with the file's, member for member.
func checkTasks(t *testing.T, body []byte, call string, got []klingapi.Task, want []task) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("decoded %d tasks, want %d", len(got), len(want))
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	var raws []json.RawMessage
	switch call {
	case "get":
		raws = []json.RawMessage{env.Data}
	case "cursor":
		var page struct {
			Result []json.RawMessage `json:"result"`
		}
		_ = json.Unmarshal(env.Data, &page)
		raws = page.Result
	default:
		_ = json.Unmarshal(env.Data, &raws)
	}
	for i, w := range want {
		g := got[i]
		if g.ID != w.id || g.Status != w.status || g.ExternalID != w.external || g.UpdatedAt == 0 || g.CreatedAt == 0 {
			t.Errorf("task %d = {%s %s %s updated %d}, want %+v with both times", i, g.ID, g.Status, g.ExternalID, g.UpdatedAt, w)
		}
		var a, b any
		_ = json.Unmarshal(g.Raw, &a)
		_ = json.Unmarshal(raws[i], &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("task %d: the raw body lost members of the answer:\n got %s\nwant %s", i, g.Raw, raws[i])
		}
	}
}

// serve answers every request with body and reports each request's path
// and query.
func serve(t *testing.T, body []byte) (*klingapi.Client, <-chan string) {
	t.Helper()
	reqs := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs <- r.URL.RequestURI()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	c, err := klingapi.New(klingapi.Config{BaseURL: srv.URL, Credentials: klingapi.Credentials{APIKey: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	return c, reqs
}

// sharedQuery is the query of any family asked at /tasks or /solutions.
func sharedQuery(t *testing.T, endpoint string) klingfamily.Query {
	t.Helper()
	for _, f := range klingfamily.All() {
		if f.Query.Path == "/"+endpoint {
			return f.Query
		}
	}
	t.Fatalf("no family is queried at /%s", endpoint)
	return klingfamily.Query{}
}

// TestUnexpectedShapes feeds answers that break the documented shape and
// checks the error names the family and the field instead of skipping.
func TestUnexpectedShapes(t *testing.T) {
	t2v := klingfamily.MustByName("videos/text2video")
	tasksQ := sharedQuery(t, "tasks")
	for _, tc := range []struct {
		name, body string
		call       func(*klingapi.Client) error
		family     string
		field      string
	}{
		{"GET /tasks answered an object", `{"code":0,"message":"","request_id":"r","data":{"result":[]}}`,
			func(c *klingapi.Client) error {
				_, err := c.GetTasks(context.Background(), tasksQ, []string{"a"}, false)
				return err
			}, "tasks", "data"},
		{"a legacy query answered a list", `{"code":0,"message":"","request_id":"r","data":[{"task_id":"a","task_status":"succeed"}]}`,
			func(c *klingapi.Client) error { _, err := c.GetTask(context.Background(), t2v, "a", false); return err }, "videos/text2video", "data"},
		{"a legacy task in the new shape", `{"code":0,"message":"","request_id":"r","data":{"id":"a","status":"succeeded"}}`,
			func(c *klingapi.Client) error { _, err := c.GetTask(context.Background(), t2v, "a", false); return err }, "videos/text2video", "data.task_id"},
		{"an unknown status", `{"code":0,"message":"","request_id":"r","data":[{"task_id":"a","task_status":"cancelled"}]}`,
			func(c *klingapi.Client) error { _, err := c.ListPage(context.Background(), t2v, 1, 10); return err }, "videos/text2video", "data[0].task_status"},
		{"times as strings", `{"code":0,"message":"","request_id":"r","data":[{"id":"a","status":"failed","update_time":"1781080794151"}]}`,
			func(c *klingapi.Client) error {
				_, err := c.GetTasks(context.Background(), tasksQ, []string{"a"}, false)
				return err
			}, "tasks", "data[0].update_time"},
		{"a cursor page without has_more", `{"code":0,"message":"","request_id":"r","data":{"result":[],"count":0}}`,
			func(c *klingapi.Client) error {
				_, err := c.ListTasks(context.Background(), klingfamily.List{Kind: klingfamily.ListCursor, Path: "/tasks", MaxPageSize: 500}, klingapi.TaskQuery{})
				return err
			}, "tasks", "data.has_more"},
		{"no data", `{"code":0,"message":"","request_id":"r"}`,
			func(c *klingapi.Client) error { _, err := c.ListPage(context.Background(), t2v, 1, 10); return err }, "videos/text2video", "data"},
		{"not JSON", `<html>maintenance</html>`,
			func(c *klingapi.Client) error { _, err := c.ListPage(context.Background(), t2v, 1, 10); return err }, "videos/text2video", "(body)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := serve(t, []byte(tc.body))
			err := tc.call(c)
			var se *klingapi.ShapeError
			if !errors.As(err, &se) || se.Family != tc.family || se.Field != tc.field {
				t.Fatalf("err = %v; want a shape error of %s at %s", err, tc.family, tc.field)
			}
			if !strings.Contains(err.Error(), tc.family) || !strings.Contains(err.Error(), tc.field) || klingapi.ErrorLabel(err) != "shape" {
				t.Errorf("error %q does not name the family and the field", err)
			}
		})
	}
}

// TestGetTaskNotFound: an id absent from GET /tasks's list, and Kling's
// 1203, are not found; 1201 (invalid parameters) is not.
func TestGetTaskNotFound(t *testing.T) {
	f := klingfamily.MustByName("text-to-video/kling-2.6")
	c, _ := serve(t, []byte(`{"code":0,"message":"","request_id":"r","data":[]}`))
	if _, err := c.GetTask(context.Background(), f, "nope", false); !errors.Is(err, klingapi.ErrNotFound) {
		t.Errorf("absent from the list: err = %v, want ErrNotFound", err)
	}
	ms := klingfamily.MustByName("general/ai-multi-shot")
	if _, err := c.GetTask(context.Background(), ms, "ext", true); err == nil || !strings.Contains(err.Error(), "external") {
		t.Errorf("AI multi-shot documents no external lookup: err = %v", err)
	}
}
