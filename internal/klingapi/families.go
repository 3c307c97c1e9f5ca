package klingapi

import (
	"fmt"
	"strings"
)

// Family is one legacy task family: the path group and name under /v1.
type Family struct {
	Group string // videos, images or audio
	Name  string // e.g. text2video
}

// String is the family as configured: "videos/text2video".
func (f Family) String() string { return f.Group + "/" + f.Name }

// path is the family's collection path.
func (f Family) path() string { return "/v1/" + f.Group + "/" + f.Name }

// Families are the legacy families Kling documents, in the order a pass
// walks them.
var Families = []Family{
	{"videos", "text2video"},
	{"videos", "image2video"},
	{"videos", "omni-video"},
	{"videos", "multi-image2video"},
	{"videos", "video-extend"},
	{"videos", "lip-sync"},
	{"videos", "effects"},
	{"images", "generations"},
	{"images", "omni-image"},
	{"images", "kolors-virtual-try-on"},
	{"audio", "text-to-audio"},
	{"audio", "video-to-audio"},
}

// ParseFamilies reads a comma-separated list of families, each either
// "group/name" or a bare name that is unique among Families. Empty means
// all of them.
func ParseFamilies(s string) ([]Family, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return append([]Family(nil), Families...), nil
	}
	var out []Family
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		f, ok := lookupFamily(part)
		if !ok {
			return nil, fmt.Errorf("klingapi: unknown task family %q (known: %s)", part, familyNames())
		}
		out = append(out, f)
	}
	return out, nil
}

func lookupFamily(name string) (Family, bool) {
	for _, f := range Families {
		if name == f.String() || name == f.Name {
			return f, true
		}
	}
	return Family{}, false
}

func familyNames() string {
	names := make([]string, len(Families))
	for i, f := range Families {
		names[i] = f.Name
	}
	return strings.Join(names, ",")
}
