package normalize

import (
	"encoding/json"
	"testing"
)

// FuzzScanObject checks the scanner against encoding/json, whose verdict it
// must never contradict: whatever it accepts is a valid object whose
// members, last occurrence winning, are exactly what decoding into a map
// yields. It may decline valid input, which then takes the general path.
func FuzzScanObject(f *testing.F) {
	for _, s := range []string{
		`{}`, ` {"a" : 1 , "b":[1,{"c":null}],"a":"x\u00e9\n"} `, `{"\u0065vent":true}`,
		`{"a":-0.5e+3}`, `{"a":01}`, `{"a":"\x01"}`, `{"a":"` + "\xff" + `"}`, `{"a":1}x`, `{"a":[1,]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		o, ok := scanObject(string(body))
		var m map[string]json.RawMessage
		err := json.Unmarshal(body, &m)
		if !ok {
			return
		}
		if err != nil || m == nil {
			t.Fatalf("scanner accepted %q, encoding/json: %v", body, err)
		}
		for k, v := range m {
			if !o.has(k) || o.get(k) != string(v) {
				t.Fatalf("member %q = %q, want %q", k, o.get(k), v)
			}
		}
		for _, mem := range o {
			if _, ok := m[mem.key]; !ok {
				t.Fatalf("extra member %q", mem.key)
			}
		}
		for _, mem := range o {
			if k := kind(mem.raw); k == '{' {
				if _, ok := scanObject(mem.raw); !ok {
					t.Fatalf("nested object %q declined", mem.raw)
				}
			} else if k == '[' {
				var a []json.RawMessage
				elems, ok := scanArray(mem.raw)
				if json.Unmarshal([]byte(mem.raw), &a) != nil || !ok || len(a) != len(elems) {
					t.Fatalf("array %q: %d elements, want %d", mem.raw, len(elems), len(a))
				}
				for i := range a {
					if string(a[i]) != elems[i] {
						t.Fatalf("element %d = %q, want %q", i, elems[i], a[i])
					}
				}
			}
		}
	})
}
