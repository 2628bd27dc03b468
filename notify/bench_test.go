package notify

import (
	"io"
	"strings"
	"testing"
)

func BenchmarkMarshal(b *testing.B) {
	m := Message{Ready: Bool(true), Status: "Running with 4 children."}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReader(b *testing.B) {
	const lines = 1000
	input := strings.Repeat("{\"healthy\":true}\n{\"status\":\"working\"}\n", lines/2)
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		rd := NewReader(strings.NewReader(input), nil)
		n := 0
		for {
			_, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != lines {
			b.Fatalf("read %d messages", n)
		}
	}
}

func BenchmarkEncodeSystemd(b *testing.B) {
	m := Message{Ready: Bool(true), Status: "Running with 4 children."}
	b.ReportAllocs()
	for b.Loop() {
		if len(EncodeSystemd(m)) == 0 {
			b.Fatal("empty")
		}
	}
}
