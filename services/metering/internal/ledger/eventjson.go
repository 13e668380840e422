package ledger

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// parseEventFast decodes an ingested event as the ingestion API writes it
// (encoding/json of meter.Event: exact member names, plain strings) without
// reflection; decoding is the ledger's largest cost per event. ok is false
// for anything else — an escape in a string, null, an unknown or
// differently cased member, invalid UTF-8, bad syntax — and the caller
// then decodes with encoding/json, so the result is always what
// json.Unmarshal gives.
func parseEventFast(b []byte) (e meter.Event, ok bool) {
	p := jsonScanner{b: b}
	if !p.consume('{') {
		return e, false
	}
	if p.consume('}') {
		return e, p.end()
	}
	for {
		key, ok := p.plainString()
		if !ok || !p.consume(':') {
			return e, false
		}
		var dst *string
		switch key {
		case "specversion":
			dst = &e.SpecVersion
		case "id":
			dst = &e.ID
		case "source":
			dst = &e.Source
		case "type":
			dst = &e.Type
		case "subject":
			dst = &e.Subject
		case "datacontenttype":
			dst = &e.DataContentType
		case "tenantid":
			dst = &e.TenantID
		case "time":
			p.space()
			start := p.i
			if _, ok := p.plainString(); !ok {
				return e, false
			}
			if err := e.Time.UnmarshalJSON(b[start:p.i]); err != nil {
				return e, false
			}
		case "data":
			p.space()
			start := p.i
			if !p.skipValue() || !json.Valid(b[start:p.i]) {
				return e, false
			}
			e.Data = json.RawMessage(b[start:p.i:p.i])
		default:
			return e, false
		}
		if dst != nil {
			if *dst, ok = p.plainString(); !ok {
				return e, false
			}
		}
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			return e, p.end()
		}
		return e, false
	}
}

// jsonScanner walks a JSON text for parseEventFast.
type jsonScanner struct {
	b []byte
	i int
}

func (p *jsonScanner) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// consume skips white space and c, reporting whether c was there.
func (p *jsonScanner) consume(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (p *jsonScanner) end() bool {
	p.space()
	return p.i == len(p.b)
}

// plainString reads a string without escapes or control characters, of
// valid UTF-8.
func (p *jsonScanner) plainString() (string, bool) {
	if !p.consume('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return "", false
			}
			return string(s), true
		case c == '\\' || c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// skipValue moves past one value (its syntax is checked by json.Valid
// afterwards): a string (escapes allowed), an object or array (strings in
// it respected), or a bare number or literal.
func (p *jsonScanner) skipValue() bool {
	if p.i >= len(p.b) {
		return false
	}
	depth := 0
	for p.i < len(p.b) {
		switch c := p.b[p.i]; c {
		case '"':
			p.i++
			for p.i < len(p.b) && p.b[p.i] != '"' {
				if p.b[p.i] == '\\' {
					p.i++
				}
				p.i++
			}
			if p.i >= len(p.b) {
				return false
			}
			p.i++
			if depth == 0 {
				return true
			}
		case '{', '[':
			depth++
			p.i++
		case '}', ']':
			if depth == 0 {
				return true // the end of the enclosing object
			}
			depth--
			p.i++
			if depth == 0 {
				return true
			}
		case ',':
			if depth == 0 {
				return true
			}
			p.i++
		default:
			p.i++
		}
	}
	return depth == 0
}
