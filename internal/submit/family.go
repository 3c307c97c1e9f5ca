package submit

import (
	"slices"

	"github.com/klingfan/klingfan/internal/klingapi"
)

// family is where a task created on one endpoint lives: the create path,
// the body's shape (where callback_url and external_task_id go), and the
// family the reconciler and the crash recovery query it by.
//
// TODO(lead): this reads internal/klingapi's Families, the legacy families
// only, until the one family table of issue #27 (contract-query) lands;
// then endpoints, shapes and external-id lookups come from that table and
// this file shrinks to a lookup in it.
type family struct {
	endpoint string
	fam      klingapi.Family
	// options is set for the newer API, whose create bodies carry
	// callback_url and external_task_id under "options"; the legacy API has
	// them at the top level.
	options bool
}

// families lists every endpoint CreateJob accepts, in the table's order.
func families() []family {
	out := make([]family, 0, len(klingapi.Families))
	for _, f := range klingapi.Families {
		out = append(out, family{endpoint: "/v1/" + f.Group + "/" + f.Name, fam: f})
	}
	return out
}

// familyOf returns the family created on endpoint.
func familyOf(endpoint string) (family, bool) {
	i := slices.IndexFunc(families(), func(f family) bool { return f.endpoint == endpoint })
	if i < 0 {
		return family{}, false
	}
	return families()[i], true
}

// Endpoints returns every create path CreateJob accepts.
func Endpoints() []string {
	fs := families()
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.endpoint
	}
	return out
}

// FamilyOf returns the family a job created on endpoint belongs to, for the
// reconciler: false for an endpoint CreateJob does not accept.
func FamilyOf(endpoint string) (klingapi.Family, bool) {
	f, ok := familyOf(endpoint)
	return f.fam, ok
}
