// Package eventexpr compiles and evaluates the CEL expressions subscribers
// filter events with (SubscribeRequest.filter, ListEventsRequest.filter).
//
// An expression sees one variable, `event`, a kling.gateway.v1.Event with
// its proto field names (`event.job.job_id`), and every enum value of the
// Event's enums by its bare name (`JOB_KIND_AUDIO`,
// `EVENT_TYPE_VIDEO_COMPLETED`) as well as qualified (`JobKind.JOB_KIND_AUDIO`).
// It must be boolean. cel-go is used rather than a hand-written language,
// so the syntax, type checking and cost model are the ones CEL users know.
//
// Filters run once per event per stream, so an expression is compiled once
// and refused when its estimated cost exceeds [MaxCost]; evaluation is also
// cut at that cost, in case an event is larger than the estimate assumed.
package eventexpr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
	lru "github.com/hashicorp/golang-lru/v2"
	"google.golang.org/protobuf/reflect/protoreflect"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// MaxCost bounds an expression's estimated and actual cost, in CEL cost
// units (roughly one per operation, one per ten bytes of string scanned,
// one per byte a regex scans per instruction of its program). Every
// stream pays it per event, so it is kept to about a quarter of a
// millisecond: five streams with the costliest filter accepted stay out
// of other subscribers' way (BenchmarkCostlyFilters; see BENCHMARKS.md).
// It admits any comparison of fields, a scan of an event's outputs with
// string functions and a regex over an id or a name; it refuses nested
// iteration over outputs and all but the smallest regexes over free text
// (contains() is the way to search a prompt).
const MaxCost = 20_000

// MaxSourceBytes bounds the length of an expression.
const MaxSourceBytes = 4096

// Size assumptions of the cost estimate: how many outputs a job has, and
// how long a string or the raw body is, at most. They are generous for
// what Kling sends (at most nine images, prompts of 2,500 characters);
// the free-text fields are assumed longer than the others (ids, names,
// URLs), so a regex over a model name is not charged as if it scanned a
// prompt. An event larger than assumed is still bounded: evaluation stops
// at MaxCost.
const (
	maxListSize   = 32
	maxStringSize = 4096 // free text: prompt, status_message, description
	maxURLSize    = 2048 // fields named url or *_url
	maxShortSize  = 256  // every other string: ids, names, codes
	maxBytesSize  = 1 << 20
)

// longText names the string fields that hold free text.
var longText = map[string]bool{"prompt": true, "status_message": true, "description": true}

// assumedSize is the longest a string field named field is assumed to be.
func assumedSize(field string) uint64 {
	switch {
	case longText[field]:
		return maxStringSize
	case field == "url" || strings.HasSuffix(field, "_url"):
		return maxURLSize
	}
	return maxShortSize
}

// ErrInvalid wraps every reason Compile refuses an expression.
var ErrInvalid = errors.New("eventexpr: invalid filter expression")

// Error is a refused expression: where (1-based line and column, zero when
// the problem is not at one place) and why.
type Error struct {
	Line, Column int
	Reason       string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.Reason
	}
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Reason)
}

// Unwrap makes every Error match ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// Expr is a compiled expression, safe for concurrent use.
type Expr struct {
	src string
	prg cel.Program
	// recent remembers the verdicts on recent events, in a slot chosen by
	// the event's sequence: every stream asks its filter about the same
	// events, and streams with the same expression share one Expr, so a
	// thousand identical filters cost one evaluation per event. There are
	// many slots, not one for the last event, because streams under load
	// run a few events apart and would overwrite each other's verdict,
	// each evaluating nearly every event itself. A verdict names its event by
	// sequence and id, never by pointer, so remembering it keeps no event
	// alive (ListEvents decodes events of up to a megabyte that nothing
	// else holds).
	recent [verdictSlots]atomic.Pointer[verdict]
}

// verdictSlots is how many recent events' verdicts an Expr remembers.
const verdictSlots = 256

// verdict is the outcome of evaluating an Expr on one event: the event's
// sequence and id (an id is unique; the sequence alone is not across the
// logs of several servers in one process, as in tests), and whether it
// was seen without its raw body, which an expression may read.
//
// A verdict is stored before it is known when one caller of Decide
// evaluates for others: done is then closed once the evaluation ended,
// and ready tells whether it produced match (it did not when the
// evaluating caller's context ended first). A verdict stored by Match is
// ready from the start and has no done.
type verdict struct {
	seq      uint64
	id       string
	bodyless bool
	match    bool // written once, before ready is set
	ready    atomic.Bool
	done     chan struct{}
}

// of reports whether v is the verdict on ev.
func (v *verdict) of(ev *gatewayv1.Event) bool {
	return v != nil && v.seq == ev.GetSequence() && v.bodyless == (len(ev.GetRawBody()) == 0) && v.id == ev.GetId()
}

// newVerdict returns a verdict on ev, not ready yet.
func newVerdict(ev *gatewayv1.Event) *verdict {
	return &verdict{seq: ev.GetSequence(), id: ev.GetId(), bodyless: len(ev.GetRawBody()) == 0}
}

// maxShared bounds how many distinct expressions are kept for sharing,
// the least recently compiled going first.
const maxShared = 1024

// shared maps an expression's source to its compiled Expr, so streams with
// the same filter share the program and its remembered verdicts.
var shared = sync.OnceValue(func() *lru.Cache[string, *Expr] {
	c, err := lru.New[string, *Expr](maxShared)
	if err != nil {
		panic(err) // only for a size below one
	}
	return c
})

// environment is built once: declaring the Event's types walks its whole
// descriptor.
var environment = sync.OnceValues(func() (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.Types(&gatewayv1.Event{}),
		cel.Container(string((&gatewayv1.Event{}).ProtoReflect().Descriptor().ParentFile().Package())),
		cel.Variable("event", cel.ObjectType(string((&gatewayv1.Event{}).ProtoReflect().Descriptor().FullName()))),
	}
	for _, e := range []protoreflect.EnumDescriptor{
		gatewayv1.EventType(0).Descriptor(),
		gatewayv1.JobKind(0).Descriptor(),
		gatewayv1.JobStatus(0).Descriptor(),
		gatewayv1.SourceFormat(0).Descriptor(),
	} {
		values := e.Values()
		for i := range values.Len() {
			v := values.Get(i)
			opts = append(opts, cel.Constant(string(v.Name()), cel.IntType, types.Int(v.Number())))
		}
	}
	return cel.NewEnv(opts...)
})

// Compile parses, type-checks and cost-checks src. Errors wrap ErrInvalid
// and, as an *Error, say where the problem is.
func Compile(src string) (*Expr, error) {
	if e, ok := shared().Get(src); ok {
		return e, nil
	}
	e, err := compile(src)
	if err != nil {
		return nil, err
	}
	// Two callers compiling the same new source at once may each keep
	// their own Expr: they only miss sharing verdicts.
	if prev, ok, _ := shared().PeekOrAdd(src, e); ok {
		return prev, nil
	}
	return e, nil
}

// compile builds a new Expr from src.
func compile(src string) (*Expr, error) {
	if len(src) > MaxSourceBytes {
		return nil, &Error{Reason: fmt.Sprintf("longer than %d bytes", MaxSourceBytes)}
	}
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Reason: "empty expression"}
	}
	env, err := environment()
	if err != nil {
		return nil, fmt.Errorf("eventexpr: building the CEL environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		errs := iss.Errors()
		first := errs[0]
		return nil, &Error{Line: first.Location.Line(), Column: first.Location.Column() + 1, Reason: first.Message}
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, &Error{Reason: fmt.Sprintf("must be a boolean expression, got %s", ast.OutputType())}
	}
	regexes, err := checkRegexes(src, ast)
	if err != nil {
		return nil, err
	}
	est, err := env.EstimateCost(ast, sizes{})
	if err != nil {
		return nil, &Error{Reason: "cost cannot be estimated: " + err.Error()}
	}
	if est.Max > MaxCost {
		return nil, &Error{Reason: fmt.Sprintf("too costly: estimated cost up to %d, the limit is %d (avoid nested iteration over outputs)", est.Max, MaxCost)}
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(MaxCost),
		cel.CostTracking(regexCharges(regexes)), cel.OptimizeRegex(regexOptimizations()...))
	if err != nil {
		return nil, &Error{Reason: err.Error()}
	}
	return &Expr{src: src, prg: prg}, nil
}

// String returns the source of the expression.
func (e *Expr) String() string { return e.src }

// Match reports whether the expression is true for ev. An evaluation
// error (a missing map key, the cost limit) counts as no match: a filter
// that cannot say yes does not pass the event.
func (e *Expr) Match(ev *gatewayv1.Event) bool {
	if match, ok := e.Remembered(ev); ok {
		return match
	}
	match := e.eval(ev)
	if slot := e.slot(ev); slot != nil {
		v := newVerdict(ev)
		v.match = match
		v.ready.Store(true)
		slot.Store(v)
	}
	return match
}

// Slots bounds how many evaluations run at once (a *semaphore.Weighted).
type Slots interface {
	Acquire(ctx context.Context, n int64) error
	Release(n int64)
}

// Decide is Match for callers that share the expression and ask about the
// same event at about the same time, as the streams with one filter do
// when one Publish wakes them all: the first to ask evaluates, holding one
// of slots, and the others wait for its verdict. Had each waited for a slot
// of its own to find the verdict remembered there, a thousand streams
// would pass through the slots one after another for every event. It
// returns ctx's error when ctx ends first.
func (e *Expr) Decide(ctx context.Context, ev *gatewayv1.Event, slots Slots) (bool, error) {
	slot := e.slot(ev)
	if slot == nil { // not from the log: nobody else asks about it
		if err := slots.Acquire(ctx, 1); err != nil {
			return false, err
		}
		defer slots.Release(1)
		return e.eval(ev), nil
	}
	for {
		v := slot.Load()
		if v.of(ev) {
			if v.ready.Load() {
				return v.match, nil
			}
			if v.done != nil {
				select {
				case <-v.done:
				case <-ctx.Done():
					return false, ctx.Err()
				}
				if v.ready.Load() {
					return v.match, nil
				}
				// Its caller's context ended before it could evaluate:
				// take over.
			}
		}
		mine := newVerdict(ev)
		mine.done = make(chan struct{})
		if slot.CompareAndSwap(v, mine) {
			return e.decide(ctx, ev, mine, slots)
		}
	}
}

// decide evaluates ev for v, which Decide stored for others to wait on,
// and closes v.done whatever happens.
func (e *Expr) decide(ctx context.Context, ev *gatewayv1.Event, v *verdict, slots Slots) (bool, error) {
	defer close(v.done)
	if err := slots.Acquire(ctx, 1); err != nil {
		return false, err
	}
	defer slots.Release(1)
	v.match = e.eval(ev)
	v.ready.Store(true)
	return v.match, nil
}

// Remembered returns the verdict on ev when a recent Match or Decide found
// it, so a caller can tell a cheap answer from an evaluation.
func (e *Expr) Remembered(ev *gatewayv1.Event) (match, ok bool) {
	slot := e.slot(ev)
	if slot == nil {
		return false, false
	}
	if v := slot.Load(); v.of(ev) && v.ready.Load() {
		return v.match, true
	}
	return false, false
}

// slot returns where ev's verdict is remembered, or nil for an event not
// from the log (sequence 0), which nothing names.
func (e *Expr) slot(ev *gatewayv1.Event) *atomic.Pointer[verdict] {
	seq := ev.GetSequence()
	if seq == 0 {
		return nil
	}
	key := seq << 1
	if len(ev.GetRawBody()) == 0 {
		key |= 1
	}
	return &e.recent[key%verdictSlots]
}

// eval evaluates the expression on ev. Events are not modified once
// published, which is what makes remembering the verdict safe.
func (e *Expr) eval(ev *gatewayv1.Event) bool {
	out, _, err := e.prg.Eval(eventActivation{ev})
	if err != nil {
		return false
	}
	b, ok := out.Value().(bool)
	return ok && b
}

// eventActivation binds `event` without the map an activation usually
// needs, since Match runs for every event on every filtered stream.
type eventActivation struct{ ev *gatewayv1.Event }

func (a eventActivation) ResolveName(name string) (any, bool) {
	if name == "event" {
		return a.ev, true
	}
	return nil, false
}

func (a eventActivation) Parent() interpreter.Activation { return nil }

// sizes bounds the sizes the cost estimate cannot know.
type sizes struct{}

func (sizes) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	var limit uint64
	switch n.Type().Kind() {
	case types.ListKind, types.MapKind:
		limit = maxListSize
	case types.StringKind:
		limit = maxStringSize
		if p := n.Path(); len(p) > 0 {
			limit = assumedSize(p[len(p)-1])
		}
	case types.BytesKind:
		limit = maxBytesSize
	default:
		return nil
	}
	if s := n.ComputedSize(); s != nil {
		return s
	}
	return &cost.SizeEstimate{Min: 0, Max: limit}
}

// EstimateCallCost charges `matches` by its regex's compiled size (see
// regexCost); other calls keep CEL's standard costs.
func (s sizes) EstimateCallCost(function, _ string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	if !isMatches(function) {
		return nil
	}
	if target == nil {
		if len(args) != 2 {
			return nil
		}
		target, args = &args[0], args[1:]
	}
	if len(args) != 1 {
		return nil
	}
	pattern, ok := literalString(args[0].Expr())
	if !ok {
		return nil // refused by checkRegexes
	}
	insts, err := regexProgramSize(pattern)
	if err != nil {
		return nil
	}
	n := uint64(maxStringSize)
	if est := s.EstimateSize(*target); est != nil {
		n = est.Max
	}
	return cost.NewCallEstimate(cost.Estimate{Min: regexCost(0, insts), Max: regexCost(n, insts)}, nil)
}
