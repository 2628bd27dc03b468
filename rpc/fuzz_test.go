package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"reflect"
	"testing"
	"time"
)

// seeds are lines the original sent or received (see
// shared/protocol/original-transcripts), and oddities around them.
var seeds = []string{
	`{"id":2,"do":"register","state":{"process_id":16086}}`,
	`{"id":2,"finished":true,"connection_id":"cf5fd66f-e57d-403d-8476-b4be4a6d78e6"}`,
	`{"id":3,"do":"thread_dump"}`,
	`{"id":7,"do":"thread_dump","path":null,"log":null}`,
	`{"id":4,"do":"forward","connection_id":"cf5fd66f","operation":{"do":"thread_dump"}}`,
	`{"id":6,"finished":true,"failed":true,"error":"Connection not found","connection_id":"0000"}`,
	`{"id":5,"finished":true,"failed":true,"error":{"class":"NoMethodError","message":"undefined method","backtrace":["a:1"]}}`,
	`{"id":2,"do":"status"`,
	`{"do":"status"}`, `{"id":99,"finished":true}`, `[1,2,3]`, `{"id":0,"do":"status"}`,
	`{"id":"abc","do":"status"}`, `{"id":null,"do":"status"}`, `null`, `42`, ``, `"hello"`,
	"{\"id\":10,\"do\":\"status\"}\r",
	`{"id":2,"d\u006f":"status","a\"b":"x\\y","":{}}`,
	`{ "id" : 12 , "do" : "x" , "n" : [ 1 , { "k" : "}" } ] , "t" : true }`,
	`{"id":1e3,"do":"x"}`, `{"id":-1,"do":"x"}`, `{"id":2,"id":4,"do":"x"}`,
}

// FuzzParse checks that the field scanner agrees with encoding/json on every
// valid object and never panics on anything else.
func FuzzParse(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := Parse(bytes.Clone(line))
		var want map[string]json.RawMessage
		jerr := json.Unmarshal(line, &want)
		if err != nil {
			if jerr == nil && want != nil {
				t.Fatalf("Parse refused an object encoding/json accepts: %q: %v", line, err)
			}
			return
		}
		if jerr != nil {
			t.Fatalf("Parse accepted %q that encoding/json refuses: %v", line, jerr)
		}
		got := make(map[string]any)
		for _, k := range m.Keys() {
			v, _ := m.Get(k)
			var x any
			if err := json.Unmarshal(v, &x); err != nil {
				t.Fatalf("field %q has invalid value %q in %q", k, v, line)
			}
			got[k] = x
		}
		wantv := make(map[string]any)
		for k, v := range want {
			var x any
			_ = json.Unmarshal(v, &x)
			wantv[k] = x
		}
		if !reflect.DeepEqual(got, wantv) {
			t.Fatalf("fields of %q: got %v, want %v", line, got, wantv)
		}
		// An array field's elements, indexed or not, are what Elements finds,
		// this object's among them.
		long := []byte(`{"a":[`)
		for i := range indexAbove + 6 {
			if i > 0 {
				long = append(long, [...]string{",", " , ", ",\t"}[i%3]...)
			}
			long = append(long, line...)
		}
		long = append(long, "]}"...)
		ml, err := Parse(long)
		if err != nil {
			t.Fatalf("Parse refused an array of %q: %v", line, err)
		}
		if elems, _ := ml.GetArray("a"); len(elems) != indexAbove+6 {
			t.Fatalf("an array of %q: %d elements, want %d", line, len(elems), indexAbove+6)
		}
		for _, m := range []*Message{m, ml} {
			for _, k := range m.Keys() {
				if v, _ := m.Get(k); len(v) > 0 && v[0] == '[' {
					elems, _ := m.GetArray(k)
					if want := Elements(v); !reflect.DeepEqual(elems, want) {
						t.Fatalf("elements of %q in %q: got %q, want %q", k, m.Bytes(), elems, want)
					}
				}
			}
		}
		// Re-encoding under a new id gives valid JSON with the same fields.
		out := append(m.appendFields(header(nil, []byte("5"), false, false), "id"), '}')
		var back map[string]any
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("re-encoded %q as invalid %q: %v", line, out, err)
		}
		if back["id"] != 5.0 {
			t.Fatalf("re-encoded id: %q", out)
		}
	})
}

// FuzzValidate checks that the validator accepts what encoding/json's
// Valid accepts, and nothing else.
func FuzzValidate(f *testing.F) {
	for _, s := range append(seeds, validateCases...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validate(b, nil, nil), json.Valid(b); got != want {
			t.Fatalf("validate(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

// FuzzConnRead feeds arbitrary bytes to a connection's reader: it must never
// panic, must answer what it can, and must end when the input ends.
func FuzzConnRead(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s + "\n"))
	}
	f.Add([]byte("{\"id\":2,\"do\":\"echo\",\"value\":1}\n\n\n[]\n{\"id\":4,\"do\":\"echo\"}"))
	f.Fuzz(func(t *testing.T, input []byte) {
		a, b := socketPair(t)
		c := NewConn(a, Options{Accepted: true, Handlers: echoHandlers(), MaxLineSize: 512})
		done := make(chan error, 1)
		go func() { done <- c.Run(context.Background()) }()
		go func() { _, _ = io.Copy(io.Discard, b) }()
		_, _ = b.Write(input)
		_ = b.(interface{ CloseWrite() error }).CloseWrite()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after end of input")
		}
		b.Close()
	})
}
