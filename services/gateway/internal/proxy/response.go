package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
)

// readBuffered parses the common upstream answer straight from the bytes
// already buffered on the connection: HTTP/1.1, a final status with a body of
// known Content-Length, plain header lines. It returns false, consuming
// nothing, for anything else — an incomplete header block, a HEAD request,
// 1xx/204/304, Transfer-Encoding, Connection, Trailer or Pragma headers,
// repeated or odd Content-Length, folded, malformed or non-canonicalizable
// lines — which http.ReadResponse then reads from the same bytes, so the
// answer is the same either way. The header block becomes one string that
// the values share; the body is left in br for a pooledBody to read.
func readBuffered(br *bufio.Reader, req *http.Request) (*http.Response, int64, bool) {
	if req.Method == http.MethodHead {
		return nil, 0, false
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 {
		return nil, 0, false
	}
	head := buf[:end+2] // every line with its CRLF
	// Status line: "HTTP/1.1 200 OK".
	eol := bytes.Index(head, crlf)
	line := head[:eol]
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || (len(line) > 12 && line[12] != ' ') {
		return nil, 0, false
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return nil, 0, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil, 0, false
	}
	for _, c := range line[9:] {
		if !validValueByte(c) {
			return nil, 0, false
		}
	}
	lines := bytes.Count(head, crlf) - 1
	s := string(head) // the one copy: status and values are substrings of it
	resp := &http.Response{
		Status: s[9:eol], StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: make(http.Header, lines), Request: req,
	}
	vals := make([]string, lines)
	length := int64(-1)
	for pos := eol + 2; pos < len(head); {
		eol := pos + bytes.Index(head[pos:], crlf)
		kv := head[pos:eol]
		colon := bytes.IndexByte(kv, ':')
		if colon <= 0 {
			return nil, 0, false
		}
		key, ok := headerKey(kv[:colon])
		if !ok {
			return nil, 0, false
		}
		vs, ve := pos+colon+1, eol
		for vs < ve && (s[vs] == ' ' || s[vs] == '\t') {
			vs++
		}
		for ve > vs && (s[ve-1] == ' ' || s[ve-1] == '\t') {
			ve--
		}
		for i := vs; i < ve; i++ {
			if !validValueByte(s[i]) {
				return nil, 0, false
			}
		}
		value := s[vs:ve]
		switch key {
		case "Transfer-Encoding", "Connection", "Trailer", "Pragma":
			return nil, 0, false
		case "Content-Length":
			if length >= 0 {
				return nil, 0, false
			}
			if length = parseLength(value); length < 0 {
				return nil, 0, false
			}
		}
		if vv := resp.Header[key]; vv == nil {
			vals[0] = value
			resp.Header[key], vals = vals[:1:1], vals[1:]
		} else {
			resp.Header[key] = append(vv, value)
		}
		pos = eol + 2
	}
	if length < 0 {
		return nil, 0, false
	}
	_, _ = br.Discard(end + 4)
	resp.ContentLength = length
	if length == 0 {
		resp.Body = http.NoBody
	}
	return resp, length, true
}

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
)

// headerKey returns the canonical form of a header name made only of token
// characters; common names come without an allocation.
func headerKey(k []byte) (string, bool) {
	switch string(k) {
	case "Content-Type":
		return "Content-Type", true
	case "Content-Length":
		return "Content-Length", true
	case "Date":
		return "Date", true
	case "Server":
		return "Server", true
	case "Cache-Control":
		return "Cache-Control", true
	case "Etag":
		return "Etag", true
	case "Last-Modified":
		return "Last-Modified", true
	case "Location":
		return "Location", true
	case "Vary":
		return "Vary", true
	case "X-Request-Id":
		return "X-Request-Id", true
	case "Content-Encoding":
		return "Content-Encoding", true
	case "Retry-After":
		return "Retry-After", true
	}
	for _, c := range k {
		if !tokenByte(c) {
			return "", false
		}
	}
	return textproto.CanonicalMIMEHeaderKey(string(k)), true
}

// parseLength parses a Content-Length value, or returns -1.
func parseLength(v string) int64 {
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// tokenByte reports whether c may appear in a header name (RFC 9110 tchar).
func tokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validValueByte reports whether c may appear in a header value as
// net/textproto accepts it: visible ASCII, space, tab and obs-text.
func validValueByte(c byte) bool {
	return c == '\t' || (c >= 0x20 && c != 0x7f)
}

// readDirect reads a Content-Length body straight from the connection, ending with
// io.EOF on its last byte and io.ErrUnexpectedEOF when the connection ends
// first, as net/http's body does.
func (b *pooledBody) readDirect(buf []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(buf)) > b.left {
		buf = buf[:b.left]
	}
	n, err := b.br.Read(buf)
	b.left -= int64(n)
	if b.left == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
