package svcclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

const secret = "svcclient-test-secret-0123456789"

var caller = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:test"}

func newCallee(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) {
		if p, _ := tenancy.PrincipalFrom(r.Context()); p != caller {
			http.Error(w, "wrong identity", http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte(`{"name":"x","q":"` + r.URL.Query().Get("q") + `"}`))
	})
	mux.HandleFunc("GET /problem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"type":"https://canopy.dev/problems/x","status":404}`))
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"name":"` + strings.Repeat("a", 100) + `"}`))
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(tenancy.Middleware("callee", []byte(secret))(mux))
	t.Cleanup(srv.Close)
	return srv
}

func TestGet(t *testing.T) {
	srv := newCallee(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name       string
		base       string
		secret     string
		path       string
		want       string
		wantErr    error
		wantStatus int
		problem    string
	}{
		{name: "ok", path: "/ok?q=a%20b", want: `{"name":"x","q":"a b"}`},
		{name: "trailing slash on the base", base: srv.URL + "/", path: "/ok", want: `{"name":"x","q":""}`},
		{name: "problem answer", path: "/problem", wantStatus: http.StatusNotFound, problem: "https://canopy.dev/problems/x"},
		{name: "unknown route", path: "/nope", wantStatus: http.StatusNotFound},
		{name: "another secret", secret: "another-secret-0123456789abcdef", path: "/ok", wantStatus: http.StatusUnauthorized},
		{name: "body over the limit", path: "/big", wantErr: errDecode},
		{name: "timeout", path: "/slow", wantErr: ErrUnavailable},
		{name: "unreachable", base: closed.URL, path: "/ok", wantErr: ErrUnavailable},
		{name: "no address yet", base: "-", path: "/ok", wantErr: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, sec := srv.URL, secret
			if tt.base == "-" {
				base = ""
			} else if tt.base != "" {
				base = tt.base
			}
			if tt.secret != "" {
				sec = tt.secret
			}
			c, err := New(Config{Audience: "callee", Secret: []byte(sec), BaseURLFunc: func() string { return base },
				Timeout: 200 * time.Millisecond, MaxBody: 64})
			if err != nil {
				t.Fatal(err)
			}
			var v struct{ Name, Q string }
			err = c.GetJSON(context.Background(), caller, tt.path, &v)
			body, getErr := c.Get(context.Background(), caller, tt.path)
			switch {
			case tt.wantStatus != 0:
				se, ok := AsStatus(err)
				if !ok || se.Status != tt.wantStatus || se.ProblemType() != tt.problem {
					t.Fatalf("err %v, want status %d problem %q", err, tt.wantStatus, tt.problem)
				}
			case tt.wantErr == errDecode:
				if err == nil || errors.Is(err, ErrUnavailable) {
					t.Fatalf("err %v, want a decode error", err)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) || !errors.Is(getErr, tt.wantErr) {
					t.Fatalf("err %v / %v, want %v", err, getErr, tt.wantErr)
				}
			default:
				if err != nil || getErr != nil || string(body) != tt.want {
					t.Fatalf("got %q, %v, %v; want %q", body, err, getErr, tt.want)
				}
			}
		})
	}
}

var errDecode = errors.New("decode")

func TestNewChecksItsParts(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"relative url", Config{Audience: "a", Secret: []byte(secret), BaseURL: "127.0.0.1:80"}, ErrBadURL},
		{"not http", Config{Audience: "a", Secret: []byte(secret), BaseURL: "ftp://h"}, ErrBadURL},
		{"empty url", Config{Audience: "a", Secret: []byte(secret)}, ErrBadURL},
		{"no secret", Config{Audience: "a", BaseURL: "http://h"}, ErrNoSecret},
		{"late url", Config{Audience: "a", Secret: []byte(secret), BaseURLFunc: func() string { return "" }}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := New(Config{Secret: []byte(secret), BaseURL: "http://h"}); err == nil {
		t.Error("empty audience accepted")
	}
}

func TestStatusErrorIsShort(t *testing.T) {
	e := &StatusError{Target: "GET /x", Status: 500, Body: []byte(strings.Repeat("b", 4096))}
	if n := len(e.Error()); n > 600 {
		t.Fatalf("message of %d bytes", n)
	}
}

// TestListAll follows the cursors to the last page and stops on a cursor
// that does not advance.
func TestListAll(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /things", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("limit") != "2" {
			http.Error(w, "limit", http.StatusBadRequest)
			return
		}
		switch r.URL.Query().Get("cursor") {
		case "":
			_, _ = w.Write([]byte(`{"things":[{"id":"a"},{"id":"b"}],"next_cursor":"c2"}`))
		case "c2":
			_, _ = w.Write([]byte(`{"things":[{"id":"c"}],"next_cursor":""}`))
		}
	})
	mux.HandleFunc("GET /stuck", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"things":[{"id":"x"}],"next_cursor":"same"}`))
	})
	srv := httptest.NewServer(tenancy.Middleware("callee", []byte(secret))(mux))
	t.Cleanup(srv.Close)
	c, err := New(Config{Audience: "callee", Secret: []byte(secret), BaseURL: srv.URL, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	type thing struct {
		ID string `json:"id"`
	}
	got, err := ListAll[thing](context.Background(), c, caller, "/things", 2, "things")
	if err != nil || len(got) != 3 || got[2].ID != "c" {
		t.Fatalf("ListAll = %+v, %v", got, err)
	}
	got, err = ListAll[thing](context.Background(), c, caller, "/stuck", 2, "things")
	if err != nil || len(got) != 2 {
		t.Fatalf("a cursor that does not advance: %+v, %v", got, err)
	}
	if _, err := ListAll[thing](context.Background(), c, caller, "/missing", 2, "things"); err == nil {
		t.Fatal("a 404 must be an error")
	}
}

// TestDo sends signed commands with a JSON body and extra headers: the
// callee verifies the signature over the body, a 2xx answer's body comes
// back, and any other status is a StatusError.
func TestDo(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /things", func(w http.ResponseWriter, r *http.Request) {
		if p, _ := tenancy.PrincipalFrom(r.Context()); p != caller {
			http.Error(w, "wrong identity", http.StatusForbidden)
			return
		}
		var in struct{ Name string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"id":"` + in.Name + "-" + r.Header.Get("Idempotency-Key") + `"}`))
	})
	mux.HandleFunc("DELETE /things/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "gone" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"type":"about:blank","status":404}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(tenancy.Middleware("callee", []byte(secret))(mux))
	t.Cleanup(srv.Close)
	c, err := New(Config{Audience: "callee", Secret: []byte(secret), BaseURL: srv.URL, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var got struct{ ID string }
	h := http.Header{"Idempotency-Key": {"k1"}}
	if err := c.PostJSON(ctx, caller, "/things", map[string]string{"name": "a"}, h, &got); err != nil || got.ID != "a-k1" {
		t.Fatalf("PostJSON = %+v, %v", got, err)
	}
	status, body, err := c.Do(ctx, caller, http.MethodDelete, "/things/x", nil, nil)
	if err != nil || status != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("DELETE = %d %q %v", status, body, err)
	}
	_, _, err = c.Do(ctx, caller, http.MethodDelete, "/things/gone", nil, nil)
	if se, ok := AsStatus(err); !ok || se.Status != http.StatusNotFound || se.Target != "DELETE /things/gone" {
		t.Fatalf("DELETE of a missing thing: %v", err)
	}
	other, err := New(Config{Audience: "callee", Secret: []byte("another-secret-0123456789abcdef"), BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.PostJSON(ctx, caller, "/things", map[string]string{"name": "a"}, nil, nil); err == nil {
		t.Fatal("a POST signed with another secret was accepted")
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	gone, _ := New(Config{Audience: "callee", Secret: []byte(secret), BaseURL: closed.URL})
	if _, _, err := gone.Do(ctx, caller, http.MethodPost, "/things", nil, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unreachable: %v", err)
	}
}
