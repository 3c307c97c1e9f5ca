// Package klingsim simulates Kling for development, demos and tests: it
// serves the task API of every family in the klingfamily table that the
// query corpus (testdata/kling) holds an answer for, in both auth styles,
// creates tasks on request or at a rate, moves them through submitted →
// processing → succeeded/failed, and posts Standard Webhooks-signed
// callbacks to a callback URL, dropping, duplicating, delaying or
// reordering a configured share of them. Every body it sends is a corpus
// file with the task's id, external id, status and times substituted, so
// it cannot answer a shape Kling's pages do not show. It is meant for
// loopback only.
package klingsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/klingfan/klingfan/internal/klingfamily"
	kling "github.com/klingfan/klingfan/testdata/kling"
)

// Task statuses as the legacy API spells them; the new API says
// "succeeded" where the legacy one says "succeed".
const (
	StatusSubmitted  = "submitted"
	StatusProcessing = "processing"
	StatusSucceed    = "succeed"
	StatusFailed     = "failed"
)

// task is one simulated task. Times are Unix milliseconds.
type task struct {
	id       string
	external string
	family   klingfamily.Family
	// callback is the create request's callback_url; empty for tasks
	// the simulator made up itself.
	callback string
	status   string // in the legacy spelling
	created  int64
	updated  int64
}

// v2 reports whether the task has the newer APIs' shape.
func (t *task) v2() bool { return t.family.Shape == klingfamily.New }

// publicStatus is the status as the task's family spells it: the newer
// APIs say "succeeded" where the legacy one says "succeed", except where
// the family's page (and so its corpus answer) spells it the legacy way.
func (t *task) publicStatus() string {
	if t.v2() && t.status == StatusSucceed {
		if tpl, ok := templateFor(t.family, StatusSucceed); ok && tpl.status != "" {
			return tpl.status
		}
		return "succeeded"
	}
	return t.status
}

// template is one task body of the corpus and the ids it was written with.
type template struct {
	body     []byte
	id       string // the corpus task's id, replaced by the simulated one everywhere
	external string // the corpus task's external id, when it has one
	status   string // the corpus task's status, as its page spells it
}

// templates are the corpus bodies by family name (or shape) and status,
// loaded once.
var (
	templatesOnce sync.Once
	templates     map[string]template
	templatesErr  error
)

func loadTemplates() (map[string]template, error) {
	templatesOnce.Do(func() {
		templates = map[string]template{}
		files, err := fs.Glob(kling.Queries, "queries/*.json")
		if err != nil {
			templatesErr = fmt.Errorf("klingsim: read the query corpus: %w", err)
			return
		}
		if len(files) == 0 {
			templatesErr = errors.New("klingsim: no query corpus embedded")
			return
		}
		for _, name := range files {
			parts := strings.Split(strings.TrimPrefix(name, "queries/"), ".")
			if len(parts) != 4 || (parts[1] != "get" && parts[1] != "ids") {
				continue // lists and cursor pages: the simulator builds its own from single tasks
			}
			raw, _ := fs.ReadFile(kling.Queries, name)
			var env struct {
				Data json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(raw, &env); err != nil {
				templatesErr = fmt.Errorf("klingsim: corpus file %s: %w", name, err)
				return
			}
			body := env.Data
			if parts[1] == "ids" {
				var list []json.RawMessage
				if err := json.Unmarshal(env.Data, &list); err != nil {
					templatesErr = fmt.Errorf("klingsim: corpus file %s: %w", name, err)
					return
				}
				if len(list) == 0 {
					continue
				}
				body = list[0]
			}
			var ids struct {
				TaskID   string `json:"task_id"`
				ID       string `json:"id"`
				Status   string `json:"status"`
				External string `json:"external_id"`
				Info     struct {
					External string `json:"external_task_id"`
				} `json:"task_info"`
			}
			_ = json.Unmarshal(body, &ids)
			t := template{body: body, id: ids.TaskID + ids.ID, external: ids.External + ids.Info.External, status: ids.Status}
			templates[parts[0]+"."+parts[2]] = t
		}
	})
	return templates, templatesErr
}

// templateFor finds the corpus body for family f in status (the legacy
// spelling): the family's own file for a succeeded task, the shape's
// shared file otherwise.
func templateFor(f klingfamily.Family, status string) (template, bool) {
	ts, err := loadTemplates()
	if err != nil {
		return template{}, false
	}
	fileName := strings.ReplaceAll(f.Name, "/", "_")
	var keys []string
	switch f.Shape {
	case klingfamily.Legacy:
		keys = []string{fileName + "." + status, "legacy." + status}
	default:
		// A family's own answer first (each solution has its outputs),
		// then the answer every /tasks family shares: the newer API's
		// pages show one generic answer for all its products. A status
		// header is the same for every new-shape family.
		switch {
		case status != StatusSucceed:
			keys = []string{fileName + "." + status, "tasks." + status}
		case f.Query.Path == klingfamily.TasksPath:
			keys = []string{fileName + ".succeeded", "tasks.succeeded"}
		default:
			keys = []string{fileName + ".succeeded", fileName + ".succeed"}
		}
	}
	for _, k := range keys {
		if t, ok := ts[k]; ok {
			return t, true
		}
	}
	return template{}, false
}

// Simulated reports whether the corpus holds a succeeded answer of f, so
// the simulator can run its tasks.
func Simulated(f klingfamily.Family) bool {
	if !f.Reconcilable() {
		return false
	}
	_, ok := templateFor(f, StatusSucceed)
	return ok
}

// body renders the task: its status's corpus body with the task's id
// (everywhere the corpus id appears, so output ids and URLs follow),
// external id, status and times.
func (t *task) body() []byte {
	tpl, ok := templateFor(t.family, t.status)
	if !ok {
		panic(fmt.Sprintf("klingsim: no corpus answer for %s in %s", t.family.Name, t.status)) // Create refuses such families
	}
	raw := bytes.ReplaceAll(tpl.body, []byte(tpl.id), []byte(t.id))
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		panic(fmt.Sprintf("klingsim: corpus answer for %s: %v", t.family.Name, err)) // checked by TestCorpusTemplates
	}
	if t.v2() {
		m["status"] = t.publicStatus()
		m["create_time"], m["update_time"] = t.created, t.updated
		if _, ok := m["external_id"]; ok {
			m["external_id"] = t.external
		}
	} else {
		m["task_status"] = t.status
		m["created_at"], m["updated_at"] = t.created, t.updated
		if info, ok := m["task_info"].(map[string]any); ok {
			if _, has := info["external_task_id"]; has {
				info["external_task_id"] = t.external
			}
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("klingsim: encode task: %v", err)) // decoded JSON: cannot fail
	}
	return b
}

// unixMilli is t in Unix milliseconds.
func unixMilli(t time.Time) int64 { return t.UnixMilli() }
