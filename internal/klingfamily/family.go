// Package klingfamily is the one table of Kling's task families: for each
// endpoint that creates a task, what it makes, which shape its callbacks
// and query answers have, how one task is queried and how the family is
// listed. It is data, read from Kling's own API pages (each row names the
// page), so the query client, the reconciler, the simulator, CreateJob and
// docs/reconcile.md all agree on one reading instead of five.
//
// Kling has two API generations. The legacy one (task_id / task_status
// bodies) gives every family its own collection: POST /v1/{group}/{name}
// creates, GET .../{id} queries one task, and GET ...?pageNum=&pageSize=
// lists. The newer one (id / status bodies) creates at /{product}/{model}
// and queries every product at one place, GET /tasks?task_ids= (a list
// answer) and the POST /tasks cursor listing; the solutions API does the
// same at /solutions.
package klingfamily

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Shape is the API generation of a family's callbacks and query answers.
type Shape int

// Shapes a family can have.
const (
	// Legacy bodies carry task_id, task_status ("succeed"), task_info,
	// task_result, created_at and updated_at.
	Legacy Shape = iota + 1
	// New bodies carry id, status ("succeeded"), external_id, outputs,
	// billing, create_time and update_time.
	New
)

func (s Shape) String() string {
	switch s {
	case Legacy:
		return "legacy"
	case New:
		return "new"
	}
	return "unknown"
}

// Output is a kind of result a family makes.
type Output string

// Outputs named by Kling's pages.
const (
	Video    Output = "video"
	Image    Output = "image"
	Audio    Output = "audio"
	Voice    Output = "voice"
	Element  Output = "element"
	Subtitle Output = "subtitle" // SRT and ASS files of the solutions API
)

// QueryKind says how one task of a family is asked for.
type QueryKind int

// Query kinds.
const (
	// QueryNone: Kling documents no query; the create answer carries the
	// result (text to speech).
	QueryNone QueryKind = iota
	// QueryPath: GET {Path}/{id}, answered with one task object. Where
	// ByExternal is set, the page says the external task id goes in the
	// path in place of the task id ("one of the two"), not in a query
	// parameter.
	QueryPath
	// QueryIDs: GET {Path}?task_ids=a,b or ?external_task_ids=a,b,
	// answered with a list of tasks.
	QueryIDs
)

// Query is how one task of a family is queried.
type Query struct {
	Kind QueryKind
	// Path is the collection (QueryPath) or the shared query endpoint
	// (QueryIDs: /tasks or /solutions).
	Path string
	// ByExternal is set when the page documents a lookup by the external
	// task id.
	ByExternal bool
	// MaxIDs bounds the ids of one QueryIDs request; 0 when the page gives
	// no bound.
	MaxIDs int
}

// ListKind says how a family's tasks are listed.
type ListKind int

// List kinds.
const (
	// ListNone: Kling documents no listing.
	ListNone ListKind = iota
	// ListPaged: GET {Path}?pageNum=N&pageSize=M, newest first, answered
	// with a list of tasks; pageNum 1..1000.
	ListPaged
	// ListCursor: POST {Path} {start_time, end_time, cursor, limit,
	// filters}, answered with {result, count, next_cursor, has_more}.
	// The listing is shared by every family of the same Path.
	ListCursor
)

// List is how a family's tasks are listed.
type List struct {
	Kind ListKind
	Path string
	// MaxPageSize is the largest pageSize (ListPaged) or limit
	// (ListCursor) the page allows.
	MaxPageSize int
	// StringTimes is set when the page types start_time and end_time as
	// strings of Unix milliseconds (POST /tasks); they are numbers
	// otherwise (POST /solutions).
	StringTimes bool
}

// Family is one endpoint that creates Kling tasks.
type Family struct {
	// Name identifies the family in configuration and reports: the create
	// path without its /v1/ prefix or leading slash, e.g.
	// "videos/text2video", "text-to-video/kling-2.6",
	// "solutions/drama_subtitle".
	Name string
	// Create is the POST path that creates a task.
	Create string
	// Group is the path group: videos, images, audio or general for the
	// legacy API, tasks for the newer one, solutions for the solutions API.
	Group string
	// Makes lists what a succeeded task holds.
	Makes []Output
	// Shape is the shape of the family's callbacks and query answers.
	Shape Shape
	Query Query
	List  List
	// Page is the Kling page the row follows, "" when it is not among the
	// mirrored official pages.
	Page string
	// Note says how the row was read when it is not straight from Page.
	Note string
}

// Reconcilable reports whether a task of the family can be queried, so a
// lost callback can be recovered.
func (f Family) Reconcilable() bool { return f.Query.Kind != QueryNone }

// MakesOutput reports whether the family can make o.
func (f Family) MakesOutput(o Output) bool { return slices.Contains(f.Makes, o) }

// ListingName names the listing that covers the family: the family's own
// name for a paged listing, the shared path's name ("tasks",
// "solutions") for a cursor listing, "" when there is none.
func (f Family) ListingName() string {
	switch f.List.Kind {
	case ListPaged:
		return f.Name
	case ListCursor:
		return strings.TrimPrefix(f.List.Path, "/")
	}
	return ""
}

// Limits of the legacy paged listings, from the pages.
const (
	MaxPageNum  = 1000
	MaxPageSize = 500
)

// Shared query and listing endpoints of the newer APIs.
const (
	TasksPath     = "/tasks"
	SolutionsPath = "/solutions"
)

// MaxCursorLimit is the largest limit of POST /tasks and POST /solutions.
const MaxCursorLimit = 500

// ErrUnknownEndpoint reports a create path that no family of the table has.
var ErrUnknownEndpoint = errors.New("klingfamily: unknown endpoint")

// ErrUnknownFamily reports a family name that is not in the table.
var ErrUnknownFamily = errors.New("klingfamily: unknown family")

// All returns every family of the table, in the table's order (legacy
// families first, grouped by path group). The slice is a copy.
func All() []Family { return slices.Clone(table) }

// ForEndpoint returns the family that POST path creates tasks in. path may
// carry the API host, a query or a trailing slash; an unknown path is an
// error wrapping ErrUnknownEndpoint that lists the known ones.
func ForEndpoint(path string) (Family, error) {
	p := cleanPath(path)
	for _, f := range table {
		if f.Create == p {
			return f, nil
		}
	}
	return Family{}, fmt.Errorf("%w %q; known endpoints: %s", ErrUnknownEndpoint, path, strings.Join(Endpoints(), ", "))
}

// Endpoints returns every create path of the table, in the table's order.
func Endpoints() []string {
	out := make([]string, len(table))
	for i, f := range table {
		out[i] = f.Create
	}
	return out
}

// MustByName is ByName for a name written in the code, such as a test's
// family: it panics when the table has no such family, which is a bug in
// the caller rather than bad input.
func MustByName(name string) Family {
	f, err := ByName(name)
	if err != nil {
		panic(err)
	}
	return f
}

// ByName returns the family named name: its Name ("videos/text2video"),
// its create path, or, for a legacy family, the name without its group
// when no other family shares it ("text2video").
func ByName(name string) (Family, error) {
	name = strings.TrimSpace(name)
	if f, err := ForEndpoint(name); err == nil {
		return f, nil
	}
	var found []Family
	for _, f := range table {
		if f.Name == name {
			return f, nil
		}
		if f.Shape == Legacy && strings.TrimPrefix(f.Name, f.Group+"/") == name {
			found = append(found, f)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	return Family{}, fmt.Errorf("%w %q; known families: %s", ErrUnknownFamily, name, strings.Join(Names(), ", "))
}

// Parse reads a comma-separated selection of families, as
// --reconcile-families takes it: "" or "all" selects every family that can
// be queried; "tasks" and "solutions" every family of the newer API and of
// the solutions API; any other item names one family (see ByName). The
// result keeps the table's order and holds each family once.
func Parse(s string) ([]Family, error) {
	want := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		switch item {
		case "":
			continue
		case "all":
			for _, f := range table {
				want[f.Name] = f.Reconcilable()
			}
			continue
		case "tasks", "solutions":
			for _, f := range table {
				if f.Query.Path == "/"+item {
					want[f.Name] = true
				}
			}
			continue
		}
		f, err := ByName(item)
		if err != nil {
			return nil, err
		}
		if !f.Reconcilable() {
			return nil, fmt.Errorf("klingfamily: %s cannot be reconciled: Kling documents no query for it", f.Name)
		}
		want[f.Name] = true
	}
	if len(want) == 0 {
		return Parse("all")
	}
	var out []Family
	for _, f := range table {
		if want[f.Name] {
			out = append(out, f)
		}
	}
	return out, nil
}

// Names returns every family's Name, in the table's order.
func Names() []string {
	out := make([]string, len(table))
	for i, f := range table {
		out[i] = f.Name
	}
	return out
}

// cleanPath reduces an endpoint as a caller may write it (with the host,
// a query, a trailing slash, no leading slash) to the table's form.
func cleanPath(p string) string {
	p = strings.TrimSpace(p)
	if i := strings.Index(p, "://"); i >= 0 {
		p = p[i+3:]
		if j := strings.IndexByte(p, '/'); j >= 0 {
			p = p[j:]
		} else {
			p = "/"
		}
	}
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	p = strings.TrimRight(p, "/")
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}
