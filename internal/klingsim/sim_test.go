package klingsim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/klingsim"
	kling "github.com/klingfan/klingfan/testdata/kling"
)

func newSim(t *testing.T) (*klingsim.Sim, string) {
	t.Helper()
	sim, err := klingsim.New(klingsim.Config{AccessKey: "ak", SecretKey: "sk", APIKey: "static-key", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

func TestQueryAPI(t *testing.T) {
	sim, url := newSim(t)
	t2v := klingfamily.MustByName("videos/text2video")
	avatar := klingfamily.MustByName("videos/avatar/image2video")
	newer := klingfamily.MustByName("text-to-video/kling-2.6")
	drama := klingfamily.MustByName("solutions/drama_subtitle")
	legacy := sim.MustCreate(t2v, "ext-1")
	av := sim.MustCreate(avatar, "ext-av")
	v2 := sim.MustCreate(newer, "ext-2")
	sol := sim.MustCreate(drama, "ext-3")
	sim.Step()
	sim.Step()

	for _, tc := range []struct {
		name  string
		creds klingapi.Credentials
	}{
		{"jwt", klingapi.Credentials{AccessKey: "ak", SecretKey: "sk"}},
		{"static key", klingapi.Credentials{APIKey: "static-key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := klingapi.New(klingapi.Config{BaseURL: url, Credentials: tc.creds})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			got, err := c.GetTask(ctx, t2v, legacy, false)
			if err != nil || got.ID != legacy || !got.Terminal() || got.V2 {
				t.Fatalf("GetTask = %+v, %v", got, err)
			}
			byExt, err := c.GetTask(ctx, t2v, "ext-1", true)
			if err != nil || byExt.ID != legacy {
				t.Fatalf("GetTask by external id in the path = %+v, %v", byExt, err)
			}
			if _, err := c.GetTask(ctx, t2v, av, false); !errors.Is(err, klingapi.ErrNotFound) {
				t.Fatalf("a task of another family: err = %v, want not found", err)
			}
			page, err := c.ListPage(ctx, avatar, 1, 10)
			if err != nil || len(page) != 1 || page[0].ID != av {
				t.Fatalf("ListPage = %+v, %v", page, err)
			}
			tp, err := c.ListTasks(ctx, newer.List, klingapi.TaskQuery{StartTime: 1, EndTime: time.Now().Add(time.Hour).UnixMilli(), Limit: 10}) // times as strings, or the simulator refuses them
			if err != nil || len(tp.Tasks) != 1 || tp.Tasks[0].ID != v2 || !tp.Tasks[0].V2 {
				t.Fatalf("ListTasks(/tasks) = %+v, %v", tp, err)
			}
			ts, err := c.GetTasks(ctx, newer.Query, []string{v2, "unknown"}, false)
			if err != nil || len(ts) != 1 || ts[0].ID != v2 || ts[0].Status == "" {
				t.Fatalf("GetTasks = %+v, %v", ts, err)
			}
			byExtNew, err := c.GetTask(ctx, newer, "ext-2", true)
			if err != nil || byExtNew.ID != v2 {
				t.Fatalf("GetTask(newer, external) = %+v, %v", byExtNew, err)
			}
			sp, err := c.ListTasks(ctx, drama.List, klingapi.TaskQuery{StartTime: 1, Limit: 10})
			if err != nil || len(sp.Tasks) != 1 || sp.Tasks[0].ID != sol {
				t.Fatalf("ListTasks(/solutions) = %+v, %v", sp, err)
			}
		})
	}
}

// TestAnswersAreCorpusFiles: every simulated answer is a corpus file with
// the id, external id, status and times substituted, and nothing else
// changed; a new-shape answer bills with charge_type and keeps the
// watermark URLs.
func TestAnswersAreCorpusFiles(t *testing.T) {
	sim, url := newSim(t)
	c, _ := klingapi.New(klingapi.Config{BaseURL: url, Credentials: klingapi.Credentials{APIKey: "static-key"}})
	ctx := context.Background()
	simulated := 0
	for _, f := range klingfamily.All() {
		if !klingsim.Simulated(f) {
			continue
		}
		simulated++
		id := sim.MustCreate(f, "")
		sim.Step()
		sim.Step()
		for _, st := range sim.Tasks() {
			if st.ID == id && st.Status != "succeed" && st.Status != "succeeded" {
				t.Fatalf("%s: task is %s after two steps", f.Name, st.Status)
			}
		}
		task, err := c.GetTask(ctx, f, id, false)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		file := strings.ReplaceAll(f.Name, "/", "_") + ".get.succeed.json"
		switch {
		case f.Query.Path == klingfamily.TasksPath:
			file = "tasks.ids.succeeded.json"
		case f.Name == "solutions/virtual_try_on":
			file = "solutions_virtual_try_on.ids.succeed.json" // its page spells success "succeed"
		case f.Shape == klingfamily.New:
			file = strings.ReplaceAll(f.Name, "/", "_") + ".ids.succeeded.json"
		}
		want := corpusTask(t, file)
		got := decode(t, task.Raw)
		for _, k := range []string{"task_id", "created_at", "updated_at", "id", "create_time", "update_time", "external_id"} {
			delete(want, k)
			delete(got, k)
		}
		if info, ok := want["task_info"].(map[string]any); ok {
			delete(info, "external_task_id")
			delete(got["task_info"].(map[string]any), "external_task_id") //nolint:forcetypeassert // same corpus shape
		}
		wantJSON, _ := json.Marshal(want)
		gotJSON, _ := json.Marshal(got)
		idInCorpus := corpusID(t, file)
		if !reflect.DeepEqual(decode(t, []byte(strings.ReplaceAll(string(wantJSON), idInCorpus, id))), decode(t, gotJSON)) {
			t.Errorf("%s: the answer is not %s with its ids substituted:\n got %s\nwant %s", f.Name, file, gotJSON, wantJSON)
		}
		if f.Shape == klingfamily.New && strings.Contains(string(task.Raw), `"billing"`) && !strings.Contains(string(task.Raw), `"charge_type"`) {
			t.Errorf("%s: billing without charge_type: %s", f.Name, task.Raw)
		}
	}
	if simulated < 33 {
		t.Errorf("only %d families simulated", simulated)
	}
}

// TestEveryCorpusSucceededAnswerIsSimulated: a family whose succeeded
// answer is in the corpus is simulated, and every reconcilable family
// that is not says why in SOURCES.md.
func TestEveryCorpusSucceededAnswerIsSimulated(t *testing.T) {
	var missing []string
	for _, f := range klingfamily.All() {
		if f.Reconcilable() && !klingsim.Simulated(f) {
			missing = append(missing, f.Name)
		}
	}
	sort.Strings(missing)
	if len(missing) != 0 {
		t.Errorf("families without a corpus answer: %v", missing)
	}
}

func corpusTask(t *testing.T, file string) map[string]any {
	t.Helper()
	raw, err := fs.ReadFile(kling.Queries, "queries/"+file)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(raw, &env)
	if strings.Contains(file, ".ids.") {
		var list []json.RawMessage
		_ = json.Unmarshal(env.Data, &list)
		return decode(t, list[0])
	}
	return decode(t, env.Data)
}

func corpusID(t *testing.T, file string) string {
	t.Helper()
	m := corpusTask(t, file)
	if id, ok := m["task_id"].(string); ok {
		return id
	}
	return m["id"].(string) //nolint:forcetypeassert // the corpus test checks every file has one
}

func decode(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return m
}

func TestQueryAPIErrors(t *testing.T) {
	sim, url := newSim(t)
	t2v := klingfamily.MustByName("videos/text2video")
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		creds klingapi.Credentials
		now   time.Time
		limit int
		want  error
		label string
	}{
		{"wrong secret", klingapi.Credentials{AccessKey: "ak", SecretKey: "wrong"}, time.Now(), 0, klingapi.ErrAuth, "1000"},
		{"expired token", klingapi.Credentials{AccessKey: "ak", SecretKey: "sk"}, time.Now().Add(-time.Hour), 0, klingapi.ErrTokenExpired, "1004"},
		{"not yet valid", klingapi.Credentials{AccessKey: "ak", SecretKey: "sk"}, time.Now().Add(time.Hour), 0, klingapi.ErrTokenNotYetValid, "1003"},
		{"wrong api key", klingapi.Credentials{APIKey: "nope"}, time.Now(), 0, klingapi.ErrAuth, "1000"},
		{"rate limited", klingapi.Credentials{APIKey: "static-key"}, time.Now(), 1, klingapi.ErrRateLimited, "1302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim.RateLimit(tc.limit)
			c, err := klingapi.New(klingapi.Config{BaseURL: url, Credentials: tc.creds, Now: func() time.Time { return tc.now }})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ListPage(ctx, t2v, 1, 10)
			if !errors.Is(err, tc.want) || klingapi.ErrorLabel(err) != tc.label {
				t.Fatalf("err = %v (label %s), want %v (label %s)", err, klingapi.ErrorLabel(err), tc.want, tc.label)
			}
		})
	}
	c, _ := klingapi.New(klingapi.Config{BaseURL: "http://127.0.0.1:1", Credentials: klingapi.Credentials{APIKey: "k"}})
	if _, err := c.ListPage(ctx, t2v, 1, 1); !errors.Is(err, klingapi.ErrUnavailable) || klingapi.ErrorLabel(err) != "unreachable" {
		t.Fatalf("unreachable API: err = %v", err)
	}
}

// A create request's callback_url is where that task's callbacks go, at
// the top level for the legacy API and under options for the newer ones.
func TestCreateCallsBackTheRequestsURL(t *testing.T) {
	got := make(chan string, 16)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path
	}))
	t.Cleanup(receiver.Close)
	_, url := newSim(t)
	for _, tc := range []struct{ path, body string }{
		{"/v1/videos/text2video", `{"prompt":"x","callback_url":"` + receiver.URL + `/legacy"}`},
		{"/text-to-video/kling-2.6", `{"options":{"callback_url":"` + receiver.URL + `/newer"}}`},
	} {
		req, _ := http.NewRequest(http.MethodPost, url+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer static-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", tc.path, resp.StatusCode)
		}
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case p := <-got:
			seen[p] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("callbacks arrived at %v, want /legacy and /newer", seen)
		}
	}
}

// A family the corpus holds no answer for is refused: Create says so, and
// MustCreate, for a family written in a test, panics.
func TestCreateUnsimulatedFamily(t *testing.T) {
	sim, _ := newSim(t)
	var unsimulated []klingfamily.Family
	for _, f := range klingfamily.All() {
		if !klingsim.Simulated(f) {
			unsimulated = append(unsimulated, f)
		}
	}
	if len(unsimulated) == 0 {
		t.Skip("every family is simulated")
	}
	f := unsimulated[0]
	if _, err := sim.Create(f, ""); err == nil || !strings.Contains(err.Error(), f.Name) {
		t.Errorf("Create(%s) = %v, want an error naming the family", f.Name, err)
	}
	defer func() {
		if r := recover(); r == nil {
			t.Errorf("MustCreate(%s) did not panic", f.Name)
		}
	}()
	sim.MustCreate(f, "")
}
