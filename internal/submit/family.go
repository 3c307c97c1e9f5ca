package submit

import (
	"errors"
	"strings"

	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/klingfamily"
)

// family is where a task created on one endpoint lives, from the family
// table: the create path, the body's shape (the newer and solutions APIs
// take callback_url and external_task_id under "options", the legacy API
// at the top level) and how a task is looked up by its external id.
type family struct {
	klingfamily.Family
}

// options reports whether the family's create body takes callback_url and
// external_task_id under "options".
func (f family) options() bool { return f.Shape == klingfamily.New }

// lookupByExternal reports whether Kling documents a lookup by external
// task id for the family, which resolves a create whose answer was lost.
func (f family) lookupByExternal() bool {
	return f.Query.Kind != klingfamily.QueryNone && f.Query.ByExternal
}

// familyOf returns the family created on endpoint; an unknown endpoint is
// an InvalidArgument naming the known ones.
func familyOf(endpoint string) (family, error) {
	f, err := klingfamily.ForEndpoint(endpoint)
	if errors.Is(err, klingfamily.ErrUnknownEndpoint) {
		return family{}, errkind.Invalid("endpoint", "unknown create path "+quote(endpoint)+"; known: "+strings.Join(klingfamily.Endpoints(), ", "))
	}
	if err != nil {
		return family{}, err
	}
	return family{f}, nil
}

func quote(s string) string { return `"` + s + `"` }
