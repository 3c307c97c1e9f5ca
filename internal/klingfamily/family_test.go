package klingfamily_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/klingfamily"
)

func TestTableIsConsistent(t *testing.T) {
	names, creates := map[string]bool{}, map[string]bool{}
	for _, f := range klingfamily.All() {
		if names[f.Name] || creates[f.Create] {
			t.Errorf("%s: name or create path appears twice", f.Name)
		}
		names[f.Name], creates[f.Create] = true, true
		if (f.Page == "" && f.Note == "") || len(f.Makes) == 0 || f.Shape == 0 || f.Group == "" {
			t.Errorf("%s: row is missing its page, outputs, shape or group: %+v", f.Name, f)
		}
		switch f.Query.Kind {
		case klingfamily.QueryPath:
			if f.Shape != klingfamily.Legacy || f.Query.Path != f.Create || f.List.Kind != klingfamily.ListPaged || f.List.Path != f.Create {
				t.Errorf("%s: a legacy family is queried and listed at its own collection: %+v", f.Name, f)
			}
		case klingfamily.QueryIDs:
			if f.Shape != klingfamily.New || f.List.Kind != klingfamily.ListCursor || f.Query.Path != f.List.Path {
				t.Errorf("%s: a newer-API family is queried and listed at one shared path: %+v", f.Name, f)
			}
		case klingfamily.QueryNone:
			if f.List.Kind != klingfamily.ListNone || f.Reconcilable() {
				t.Errorf("%s: a family without a query has no listing either", f.Name)
			}
		}
	}
}

func TestForEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name, endpoint, want string
	}{
		{"legacy", "/v1/videos/text2video", "videos/text2video"},
		{"trailing slash", "/v1/general/advanced-custom-elements/", "general/advanced-custom-elements"},
		{"full URL with query", "https://api-singapore.klingai.com/v1/videos/avatar/image2video?x=1", "videos/avatar/image2video"},
		{"no leading slash", "v1/images/editing/expand", "images/editing/expand"},
		{"newer API", "/text-to-video/kling-2.6", "text-to-video/kling-2.6"},
		{"solutions", "/solutions/drama_subtitle", "solutions/drama_subtitle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := klingfamily.ForEndpoint(tc.endpoint)
			if err != nil || f.Name != tc.want {
				t.Fatalf("ForEndpoint(%q) = %q, %v; want %q", tc.endpoint, f.Name, err, tc.want)
			}
		})
	}
	_, err := klingfamily.ForEndpoint("/v1/videos/text2music")
	if !errors.Is(err, klingfamily.ErrUnknownEndpoint) {
		t.Fatalf("unknown endpoint: err = %v, want ErrUnknownEndpoint", err)
	}
	for _, known := range []string{"/v1/videos/text2video", "/text-to-video/kling-2.6", "/solutions/drama_subtitle"} {
		if !strings.Contains(err.Error(), known) {
			t.Errorf("the unknown-endpoint error does not list %s: %v", known, err)
		}
	}
}

func TestByName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"videos/text2video", "videos/text2video"},
		{"text2video", "videos/text2video"},
		{"image2video", "videos/image2video"},
		{"avatar/image2video", "videos/avatar/image2video"},
		{"custom-voices", "general/custom-voices"},
		{"/v1/images/editing/expand", "images/editing/expand"},
		{"text-to-video/kling-3.0", "text-to-video/kling-3.0"},
	} {
		f, err := klingfamily.ByName(tc.in)
		if err != nil || f.Name != tc.want {
			t.Errorf("ByName(%q) = %q, %v; want %q", tc.in, f.Name, err, tc.want)
		}
	}
	if _, err := klingfamily.ByName("nope"); !errors.Is(err, klingfamily.ErrUnknownFamily) || !strings.Contains(err.Error(), "videos/text2video") {
		t.Errorf("ByName(nope) = %v, want ErrUnknownFamily listing the known families", err)
	}
}

func TestMustByName(t *testing.T) {
	if f := klingfamily.MustByName("text2video"); f.Name != "videos/text2video" {
		t.Errorf("MustByName(text2video) = %q", f.Name)
	}
	defer func() {
		err, _ := recover().(error)
		if !errors.Is(err, klingfamily.ErrUnknownFamily) {
			t.Errorf("MustByName(nope) panicked with %v, want ErrUnknownFamily", err)
		}
	}()
	klingfamily.MustByName("nope")
	t.Error("MustByName(nope) returned")
}

// TestIssueFamiliesAreQueryable holds the families issue #27 found
// missing: each is in the table with a query endpoint.
func TestIssueFamiliesAreQueryable(t *testing.T) {
	for _, create := range []string{
		"/v1/videos/avatar/image2video", "/v1/videos/motion-control", "/motion-control/kling-2.6",
		"/v1/videos/multi-elements", "/v1/videos/advanced-lip-sync", "/v1/general/custom-voices",
		"/v1/general/advanced-custom-elements", "/v1/images/multi-image2image", "/v1/images/editing/expand",
		"/v1/general/ai-multi-shot", "/solutions/drama_subtitle",
	} {
		f, err := klingfamily.ForEndpoint(create)
		if err != nil || !f.Reconcilable() {
			t.Errorf("%s: %+v, %v; want a queryable family", create, f, err)
		}
	}
}

func TestParse(t *testing.T) {
	reconcilable := 0
	for _, f := range klingfamily.All() {
		if f.Reconcilable() {
			reconcilable++
		}
	}
	for _, tc := range []struct {
		name    string
		in      string
		want    int
		wantErr bool
	}{
		{"default", "", reconcilable, false},
		{"all", "all", reconcilable, false},
		{"two legacy", "text2video,images/generations", 2, false},
		{"newer API", "tasks", 7, false},
		{"solutions", "solutions", 5, false},
		{"each once", "tasks,text-to-video/kling-2.6", 7, false},
		{"unknown", "nope", 0, true},
		{"no query", "audio/tts", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := klingfamily.Parse(tc.in)
			if (err != nil) != tc.wantErr || len(got) != tc.want {
				t.Errorf("Parse(%q) = %d families, %v; want %d", tc.in, len(got), err, tc.want)
			}
		})
	}
}
