package rpc

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// validateCases are the edges of JSON's grammar, valid and not.
var validateCases = []string{
	``, ` `, `{`, `}`, `{}`, `[]`, ` { } `, `[ ]`, `{,}`, `[,]`, `[1,]`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{a:1}`,
	`{"a" : 1 , "b" : [ 1 , 2 ] }`, `{"a":1}x`, `{"a":1} {}`, `{"a":1}}`, `[[[]]]`, `[[[]]`, `[{]}`, `{[]}`,
	`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e`, `1e+`, `1e+5`, `1E-05`, `-1.5e3`, `1.5e3.2`, `12x`, `+1`,
	`true`, `tru`, `truex`, `false`, `fals`, `null`, `nul`, `nulll`, `[true,false,null]`,
	`""`, `"`, `"a`, `"\"`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u00e9"`, `"\u00g9"`, `"\u00e"`, `"\x"`,
	"\"\x01\"", "\"\x7f\"", "\"\xff\xfe\"", "\"é\"", "{\"\xff\":1}", "\t\r\n{}\n",
	`{"a":{"b":{"c":[1,{"d":null}]}},"e":"}"}`, `{"a":"\u005c"}`,
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	strings.Repeat(`{"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth),
	strings.Repeat(`{"a":`, maxDepth) + "{}" + strings.Repeat("}", maxDepth),
	strings.Repeat("[", 100) + strings.Repeat("]", 99),
}

func TestValidateAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range append(validateCases, seeds...) {
		if got, want := validate([]byte(c), nil, nil), json.Valid([]byte(c)); got != want {
			t.Errorf("validate(%.80q) = %v, encoding/json says %v", c, got, want)
		}
	}
}

func TestValidateIndexesTheTopLevelFields(t *testing.T) {
	line := `{ "id" : 12 , "do":"x", "n" : [ 1 , { "k" : "}" } ] , "o":{"a":{}}, "e":{}, "a\u0062":[] , "t" : true }`
	var fields []field
	if !validate([]byte(line), &fields, nil) {
		t.Fatal("refused a valid line")
	}
	want := [][2]string{{"id", "12"}, {"do", `"x"`}, {"n", `[ 1 , { "k" : "}" } ]`}, {"o", `{"a":{}}`}, {"e", "{}"}, {"ab", "[]"}, {"t", "true"}}
	if len(fields) != len(want) {
		t.Fatalf("%d fields, want %d: %q", len(fields), len(want), fields)
	}
	for i, w := range want {
		if string(fields[i].key) != w[0] || string(fields[i].value) != w[1] {
			t.Errorf("field %d = %q: %q, want %q: %q", i, fields[i].key, fields[i].value, w[0], w[1])
		}
	}
	// Nothing is indexed of an array.
	fields = nil
	if !validate([]byte(`[{"a":1}]`), &fields, nil) || len(fields) != 0 {
		t.Errorf("an array's objects were indexed: %q", fields)
	}
}

// BenchmarkParseLong measures Parse of a status reply with 1,000
// connections, beside encoding/json's Valid alone.
func BenchmarkParseLong(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"id":2,"finished":true,"connections":[`)
	for i := range 1000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"connection_id":"0b4b5d8e-1111-4222-8333-444455556666","process_id":12345,"state":{"process_id":12345,"name":"svc","instance":7,"connection_id":"0b4b5d8e-1111-4222-8333-444455556666","verified":true,"outputs":["inline","path","log"]}}`)
	}
	sb.WriteString(`]}`)
	line := []byte(sb.String())
	b.Run("Parse", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			if _, err := Parse(line); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			if !json.Valid(line) {
				b.Fatal("invalid")
			}
		}
	})
}

func TestFieldsAndValuesAgreeWithObjectAndElements(t *testing.T) {
	line := `{"a":1, "b" : [1, "x\"]", {"k":[]}], "c\u0064":{"e":null},"f":"}"}`
	m, err := Parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	var keys, vals []string
	for k, v := range Fields(m.Bytes()) {
		keys, vals = append(keys, string(k)), append(vals, string(v))
	}
	if strings.Join(keys, " ") != "a b cd f" || strings.Join(vals, " ") != `1 [1, "x\"]", {"k":[]}] {"e":null} "}"` {
		t.Errorf("Fields: %q %q", keys, vals)
	}
	b, _ := m.Get("b")
	var elems []string
	for v := range Values(b) {
		elems = append(elems, string(v))
	}
	var want []string
	for _, e := range Elements(b) {
		want = append(want, string(e))
	}
	if strings.Join(elems, "|") != strings.Join(want, "|") || len(elems) != 3 {
		t.Errorf("Values: %q, Elements: %q", elems, want)
	}
	for range Fields([]byte(`[1]`)) {
		t.Error("Fields of an array yielded")
	}
	for range Values([]byte(`{"a":1}`)) {
		t.Error("Values of an object yielded")
	}
	// Stopping early.
	for range Values(b) {
		break
	}
}

// A large relayed reply, written from the relayed message's own bytes,
// says what a small one copied says: its fields as they came, under the
// caller's id and flags.
func TestRelayLargeAndSmall(t *testing.T) {
	for _, size := range []int{10, relayCopyBelow + 100} {
		big := strings.Repeat("x", size)
		src, err := Parse([]byte(`{"id":99,"finished":true,"a":1, "b\u0062" : {"k":"` + big + `"},"a":[2]}`))
		if err != nil {
			t.Fatal(err)
		}
		a, b := socketPair(t)
		server := NewConn(a, Options{Accepted: true, Handlers: Handlers{
			"relay": func(ctx context.Context, call *Call) error { return call.Relay(src) },
		}})
		running(t, server)
		client := NewConn(b, Options{})
		running(t, client)
		reply, err := client.Call(context.Background(), "relay", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"id":2,"finished":true,"a":1,"b\u0062":{"k":"` + big + `"},"a":[2]}`
		if reply.String() != want {
			t.Errorf("relayed (%d): %.120s, want %.120s", size, reply, want)
		}
	}
}
