package normalize_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/normalize"
)

// queryCorpus is the contract corpus of Kling's query answers (see its
// SOURCES.md); the reconciler normalizes each task they hold like a
// callback.
const queryCorpus = "../../testdata/kling/queries"

// TestQueryCorpusNothingLost runs every query answer of the corpus through
// the query client, over a real HTTP server serving the file, and
// normalizes each task it returns as the reconciler does: no member of a
// task may be lost, as for the callbacks.
func TestQueryCorpusNothingLost(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(queryCorpus, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no query answers under %s: %v", queryCorpus, err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tasks := queryTasks(t, name, body)
			if len(tasks) == 0 && !strings.Contains(name, "empty") {
				t.Fatal("the client returned no task")
			}
			for _, task := range tasks {
				out, err := normalize.Normalize(task.Raw)
				if err != nil {
					t.Fatalf("task %s: Normalize: %v", task.ID, err)
				}
				if got := out.Event.GetJob().GetJobId(); got != task.ID {
					t.Errorf("job id %q, the task is %q", got, task.ID)
				}
				have := eventValues(t, out.Event)
				checkOutputTypes(t, task.Raw, out.Event.GetJob())
				for _, leaf := range jsonLeaves(t, "", task.Raw) {
					if outputType.MatchString(leaf.path) {
						continue
					}
					if !have.take(leaf.value) {
						t.Errorf("task %s: %s = %s is in no field of the event and not kept as unmapped", task.ID, leaf.path, leaf.value)
					}
				}
			}
		})
	}
}

// queryTasks asks the client for what the file answers: the call and the
// family come from the file's name (<family>.<call>.<status>.json).
func queryTasks(t *testing.T, name string, body []byte) []klingapi.Task {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	c, err := klingapi.New(klingapi.Config{BaseURL: srv.URL, Credentials: klingapi.Credentials{APIKey: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(name, ".")
	ctx := context.Background()
	famName := strings.ReplaceAll(parts[0], "_", "/")
	if famName == "legacy" {
		famName = "videos/text2video"
	}
	switch parts[1] {
	case "get":
		f, err := klingfamily.ByName(famName)
		if err != nil {
			t.Fatal(err)
		}
		// The client checks the answer is the task asked for: ask for the
		// one the file holds.
		id := jsonLeaves(t, "", body)
		for _, l := range id {
			if l.path == ".data.task_id" {
				task, err := c.GetTask(ctx, f, l.value, false)
				if err != nil {
					t.Fatal(err)
				}
				return []klingapi.Task{task}
			}
		}
		t.Fatal("no data.task_id in the file")
	case "list":
		f, err := klingfamily.ByName(famName)
		if err != nil {
			t.Fatal(err)
		}
		tasks, err := c.ListPage(ctx, f, 1, 30)
		if err != nil {
			t.Fatal(err)
		}
		return tasks
	case "ids":
		endpoint, _, _ := strings.Cut(parts[0], "_") // tasks, or solutions_<name>
		tasks, err := c.GetTasks(ctx, klingfamily.Query{Kind: klingfamily.QueryIDs, Path: "/" + endpoint}, []string{"any"}, false)
		if err != nil {
			t.Fatal(err)
		}
		return tasks
	case "cursor":
		page, err := c.ListTasks(ctx, klingfamily.List{Kind: klingfamily.ListCursor, Path: "/" + parts[0], MaxPageSize: 500}, klingapi.TaskQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return page.Tasks
	}
	t.Fatalf("unknown call %q", parts[1])
	return nil
}
