package proxy

import (
	"bufio"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestReadBufferedMatchesReadResponse checks that every answer the direct
// parser takes comes out as http.ReadResponse makes it, and that it leaves
// the others (consuming nothing) to http.ReadResponse.
func TestReadBufferedMatchesReadResponse(t *testing.T) {
	const next = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext" // a second answer on the connection
	for _, tc := range []struct {
		name   string
		method string
		raw    string
		direct bool
	}{
		{"common", "GET", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nDate: Wed, 02 Dec 2026 14:00:00 GMT\r\n\r\n{\"a\":\"xyz\"}", true},
		{"no reason", "GET", "HTTP/1.1 404\r\nContent-Length: 2\r\n\r\nno", true},
		{"long reason", "POST", "HTTP/1.1 502 Bad  Gateway \r\nContent-Length: 0\r\n\r\n", true},
		{"empty body", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
		{"lower-case and odd names", "GET", "HTTP/1.1 201 Created\r\ncontent-length: 3\r\nx-seen-TENANT: acme\r\nX_Under: 1\r\n\r\nabc", true},
		{"repeated header", "GET", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nVary: Accept\r\nSet-Cookie: b=2\r\nContent-Length: 1\r\n\r\nx", true},
		{"blanks around values", "GET", "HTTP/1.1 200 OK\r\nX-A:   spaced \t \r\nX-B:\r\nX-C:\tx\r\nContent-Length: 1\r\n\r\nx", true},
		{"obs-text value", "GET", "HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\r\nContent-Length: 1\r\n\r\nx", true},
		{"head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false},
		{"no content", "GET", "HTTP/1.1 204 No Content\r\n\r\n", false},
		{"not modified", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false},
		{"continue", "GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", false},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", false},
		{"close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", false},
		{"pragma", "GET", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 1\r\n\r\nx", false},
		{"trailer", "GET", "HTTP/1.1 200 OK\r\nTrailer: X-T\r\nContent-Length: 1\r\n\r\nx", false},
		{"no length", "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", false},
		{"two lengths", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", false},
		{"bad length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx", false},
		{"http/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", false},
		{"folded", "GET", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 1\r\n\r\nx", false},
		{"space before colon", "GET", "HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 1\r\n\r\nx", false},
		{"no colon", "GET", "HTTP/1.1 200 OK\r\nX-A\r\nContent-Length: 1\r\n\r\nx", false},
		{"bare LF in value", "GET", "HTTP/1.1 200 OK\r\nX-A: a\nb\r\nContent-Length: 1\r\n\r\nx", false},
		{"control byte", "GET", "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 1\r\n\r\nx", false},
		{"bad code", "GET", "HTTP/1.1 2x0 OK\r\nContent-Length: 1\r\n\r\nx", false},
		{"short body", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://upstream/x", nil)
			raw := tc.raw
			if !strings.HasPrefix(tc.name, "short") {
				raw += next
			}
			br := bufio.NewReaderSize(strings.NewReader(raw), 4096)
			if _, err := br.Peek(1); err != nil {
				t.Fatal(err)
			}
			got, length, direct := readBuffered(br, req)
			if direct != tc.direct {
				t.Fatalf("direct = %v, want %v", direct, tc.direct)
			}
			want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), req)
			if !direct {
				if br.Buffered() != len(raw) {
					t.Fatalf("declined but consumed %d bytes", len(raw)-br.Buffered())
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadResponse: %v", err)
			}
			if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto ||
				got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor || got.ContentLength != want.ContentLength ||
				got.Close != want.Close || got.Request != want.Request || length != want.ContentLength {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
			if !reflect.DeepEqual(got.Header, want.Header) {
				t.Errorf("header\n got %q\nwant %q", got.Header, want.Header)
			}
			if (got.Body == http.NoBody) != (want.Body == http.NoBody) {
				t.Errorf("NoBody: got %v, want %v", got.Body == http.NoBody, want.Body == http.NoBody)
			}
			wantBody, wantErr := io.ReadAll(want.Body)
			b := &pooledBody{br: br, left: length}
			gotBody, gotErr := io.ReadAll(readerFunc(b.readDirect))
			if string(gotBody) != string(wantBody) || gotErr != wantErr {
				t.Errorf("body %q, %v; want %q, %v", gotBody, gotErr, wantBody, wantErr)
			}
			if gotErr == nil {
				rest, _ := io.ReadAll(br)
				if string(rest) != next {
					t.Errorf("left on the connection %q, want the next answer", rest)
				}
			}
		})
	}
}

func TestReadBufferedDeclinesAnIncompleteHeader(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, raw[:20])
		_, _ = io.WriteString(pw, raw[20:])
		_ = pw.Close()
	}()
	br := bufio.NewReader(pr)
	if _, err := br.Peek(1); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://upstream/x", nil)
	if _, _, direct := readBuffered(br, req); direct {
		t.Fatal("parsed a header block that was not all buffered")
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("fallback: %v %v", resp, err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
