package eventexpr

import (
	"fmt"
	"math"
	"regexp"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// Regular expressions are charged by the size of their compiled program,
// not by the length of their source: Go's regexp runs in time linear in
// the input, but the factor is the number of instructions of the program,
// and a short pattern with large repeat counts (`(?s).{999}.{999}z`, 19
// bytes) compiles to thousands. CEL's own model charges by pattern length,
// so such a pattern passed as cheap and took tens of milliseconds per
// event. Here a call costs one unit per regexStepsPerUnit of (input bytes
// + 1) × instructions, at compile time with the input size the estimate
// assumes and at run time with the real one, before the regex runs: a
// call whose input would exceed the budget is not run at all.

// regexStepsPerUnit is how many byte × instruction steps of a regex make
// one cost unit. A step of Go's regexp, in the worst case (a program
// whose every instruction stays live), takes about as long as one of
// CEL's base operations, so one step costs one unit.
const regexStepsPerUnit = 1

// regexCost is the cost of running a program of insts instructions over
// n bytes.
func regexCost(n uint64, insts int) uint64 {
	steps := (n + 1) * uint64(insts)
	if insts > 0 && steps/uint64(insts) != n+1 {
		return math.MaxUint64
	}
	return (steps + regexStepsPerUnit - 1) / regexStepsPerUnit
}

// regexProgramSize returns the number of instructions pattern compiles to.
func regexProgramSize(pattern string) (int, error) { return types.RegexProgramSize(pattern) }

// isMatches reports whether a call is the standard `matches`, in either
// form: `s.matches(re)` or `matches(s, re)`.
func isMatches(function string) bool { return function == overloads.Matches }

// checkRegexes refuses a `matches` call whose pattern is not a constant
// (its cost could not be known before the event arrives) or whose own
// cost, on a string of the size the estimate assumes, is over MaxCost. The
// error names the clause, so a user sees which one to change; the cost of
// the whole expression is checked afterwards. It returns the program size
// of every pattern, for charging at run time.
func checkRegexes(src string, a *cel.Ast) (map[string]int, error) {
	native := a.NativeRep()
	info := native.SourceInfo()
	var sizes map[string]int
	for _, call := range celast.MatchDescendants(celast.NavigateAST(native), celast.FunctionMatcher(overloads.Matches)) {
		c := call.AsCall()
		args := c.Args()
		target := c.Target()
		if !c.IsMemberFunction() {
			if len(args) != 2 {
				continue
			}
			target, args = args[0], args[1:]
		}
		if len(args) != 1 {
			continue
		}
		start, clause := clauseText(src, info, call)
		loc := info.GetLocationByOffset(start)
		pattern, ok := literalString(args[0])
		if !ok {
			return nil, &Error{Line: loc.Line(), Column: loc.Column() + 1,
				Reason: fmt.Sprintf("%s: matches() takes a constant pattern, so that its cost is known before any event arrives", clause)}
		}
		insts, err := regexProgramSize(pattern)
		if err != nil {
			return nil, &Error{Line: loc.Line(), Column: loc.Column() + 1, Reason: fmt.Sprintf("%s: invalid regex: %v", clause, err)}
		}
		n := uint64(maxStringSize)
		if s, ok := literalString(target); ok {
			n = uint64(len(s))
		} else if target != nil && target.Kind() == celast.SelectKind {
			n = assumedSize(target.AsSelect().FieldName()) // as sizes.EstimateSize assumes
		}
		if cost := regexCost(n, insts); cost > MaxCost {
			return nil, &Error{Line: loc.Line(), Column: loc.Column() + 1, Reason: fmt.Sprintf(
				"%s is too costly: the regex compiles to %d instructions, which on a string of up to %d bytes costs up to %d; the limit for a whole filter is %d (use smaller repeat counts, or match a shorter field)",
				clause, insts, n, cost, MaxCost)}
		}
		if sizes == nil {
			sizes = make(map[string]int)
		}
		sizes[pattern] = insts
	}
	return sizes, nil
}

// literalString returns e's value when it is a string literal.
func literalString(e celast.Expr) (string, bool) {
	if e == nil || e.Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().Value().(string)
	return s, ok
}

// clauseText returns the source of call, from its first character (its
// target's, or its name's) to the closing parenthesis after its last
// argument, and the offset it starts at.
func clauseText(src string, info *celast.SourceInfo, call celast.NavigableExpr) (int32, string) {
	start, stop := int32(math.MaxInt32), int32(0)
	walk(call, func(e celast.NavigableExpr) {
		if r, ok := info.GetOffsetRange(e.ID()); ok {
			start, stop = min(start, r.Start), max(stop, r.Stop)
		}
	})
	runes := []rune(src) // offsets count code points
	if start >= stop || int(stop) > len(runes) {
		return 0, "matches()"
	}
	// A global call's own offset is its opening parenthesis.
	if name := []rune(overloads.Matches); int(start) >= len(name) && string(runes[int(start)-len(name):start]) == overloads.Matches {
		start -= int32(len(name))
	}
	end := int(stop)
	for end < len(runes) && runes[end] != ')' {
		end++
	}
	return start, string(runes[start:min(end+1, len(runes))])
}

func walk(e celast.NavigableExpr, fn func(celast.NavigableExpr)) {
	fn(e)
	for _, c := range e.Children() {
		walk(c, fn)
	}
}

// regexCharges is the run-time side of the model: CEL's cost tracker asks
// it what each `matches` call cost, by the program sizes checkRegexes
// found.
type regexCharges map[string]int

// CallCost implements cost.ActualCostEstimator.
func (r regexCharges) CallCost(function, _ string, args []ref.Val, _ ref.Val) *uint64 {
	if !isMatches(function) || len(args) != 2 {
		return nil
	}
	in, ok := args[0].(types.String)
	pattern, ok2 := args[1].(types.String)
	if !ok || !ok2 {
		return nil
	}
	insts, known := r[string(pattern)]
	if !known {
		return nil
	}
	c := regexCost(uint64(len(in)), insts)
	return &c
}

// regexOptimizations replace every `matches` call (whose pattern is a
// constant: checkRegexes made sure) with one that compiles the pattern
// once and refuses, before running it, an input that would cost more than
// a whole evaluation may.
func regexOptimizations() []*interpreter.RegexOptimization {
	factory := func(call interpreter.InterpretableCall, pattern string) (interpreter.InterpretableCall, error) {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return nil, err
		}
		insts, err := regexProgramSize(pattern)
		if err != nil {
			return nil, err
		}
		return interpreter.NewCall(call.ID(), call.Function(), call.OverloadID(), call.Args(), func(values ...ref.Val) ref.Val {
			if len(values) != 2 {
				return types.NoSuchOverloadErr()
			}
			in, ok := values[0].(types.String)
			if !ok {
				return types.NoSuchOverloadErr()
			}
			if c := regexCost(uint64(len(in)), insts); c > MaxCost {
				return types.NewErr("matches() on %d bytes would cost %d, over the limit of %d", len(in), c, MaxCost)
			}
			return types.Bool(re.MatchString(string(in)))
		}), nil
	}
	// By overload id, which takes precedence over the standard
	// optimization registered by function name.
	return []*interpreter.RegexOptimization{
		{Function: overloads.Matches, OverloadID: overloads.MatchesString, RegexIndex: 1, Factory: factory},
		{Function: overloads.Matches, OverloadID: overloads.Matches, RegexIndex: 1, Factory: factory},
	}
}
