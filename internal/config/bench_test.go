package config

import (
	"bytes"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	data := []byte(fullDoc)
	getenv := env(EnvProcessorCount, "4")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "/etc/vigil", getenv); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	c, err := Parse([]byte(fullDoc), "/etc/vigil", env(EnvProcessorCount, "4"))
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := c.Encode(&buf); err != nil {
			b.Fatal(err)
		}
	}
}
