package config

import (
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// position is a place in the document.
type position struct{ line, column int }

// positions indexes the keys of a document, for errors found after
// decoding and to complete go-toml's error keys.
type positions struct {
	// first maps every key path (parts joined by "\x00") to the place of
	// its last part's first occurrence.
	first map[string]position
	// at maps the place of every key part to its full path.
	at map[position][]string
}

func pathKey(parts []string) string { return strings.Join(parts, "\x00") }

// indexPositions records the place of every key and table header of a
// document that has already decoded without a syntax error.
func indexPositions(data []byte) positions {
	pos := positions{first: map[string]position{}, at: map[position][]string{}}
	p := &unstable.Parser{}
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		expr := p.Expression()
		switch expr.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = indexKey(p, pos, nil, expr.Key())
		case unstable.KeyValue:
			indexKeyValue(p, pos, table, expr)
		}
	}
	return pos
}

// indexKey records each prefix of a dotted key under base and returns the
// full path.
func indexKey(p *unstable.Parser, pos positions, base []string, it unstable.Iterator) []string {
	path := append([]string(nil), base...)
	for it.Next() {
		n := it.Node()
		path = append(path, string(n.Data))
		s := p.Shape(n.Raw)
		here := position{s.Start.Line, s.Start.Column}
		if _, ok := pos.first[pathKey(path)]; !ok {
			pos.first[pathKey(path)] = here
		}
		pos.at[here] = append([]string(nil), path...)
	}
	return path
}

func indexKeyValue(p *unstable.Parser, pos positions, base []string, kv *unstable.Node) {
	path := indexKey(p, pos, base, kv.Key())
	if v := kv.Value(); v.Kind == unstable.InlineTable {
		children := v.Children()
		for children.Next() {
			if c := children.Node(); c.Kind == unstable.KeyValue {
				indexKeyValue(p, pos, path, c)
			}
		}
	}
}

// lookup returns the place of a key, or of its nearest ancestor present in
// the document.
func (pos positions) lookup(parts []string) position {
	for n := len(parts); n > 0; n-- {
		if p, ok := pos.first[pathKey(parts[:n])]; ok {
			return p
		}
	}
	return position{}
}
