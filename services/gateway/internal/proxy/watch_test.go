package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// rawUpstream answers each request on a connection with answer, which writes
// the raw response (in parts, with pauses, as a test needs).
func rawUpstream(t *testing.T, answer func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					answer(nc)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestConnPoolWaitsPastQuickWait checks that answers whose header or body
// come in parts after quickWait are read whole, within the header timeout.
func TestConnPoolWaitsPastQuickWait(t *testing.T) {
	pause := func() { time.Sleep(3 * quickWait) } // the upstream being slow, not the test waiting
	for _, tc := range []struct {
		name  string
		parts []string
	}{
		{"slow first byte", []string{"", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"}},
		{"header in parts", []string{"HTTP/1.1 200 OK\r\nContent-", "Length: 2\r\n\r\nok"}},
		{"body in parts", []string{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no", "k"}},
		{"chunked in parts", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\no\r\n", "1\r\nk\r\n0\r\n\r\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawUpstream(t, func(nc net.Conn) {
				for i, part := range tc.parts {
					if i > 0 {
						pause()
					}
					_, _ = io.WriteString(nc, part)
				}
			})
			p := newConnPool(addr, time.Second, 2*time.Second, 8)
			for range 2 { // the second on the reused connection
				code, body, err := get(t, p, context.Background(), http.MethodGet, "http://"+addr+"/", nil)
				if err != nil || code != 200 || body != "ok" {
					t.Fatalf("got %d %q %v", code, body, err)
				}
			}
		})
	}
}

// TestConnPoolAbortsWhenTheClientGoes checks that a cancelled request stops
// waiting for a slow upstream (header or body) long before any timeout.
func TestConnPoolAbortsWhenTheClientGoes(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	for _, tc := range []struct {
		name   string
		answer string // sent before the upstream stalls
	}{
		{"waiting for the header", ""},
		{"waiting for the body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawUpstream(t, func(nc net.Conn) {
				_, _ = io.WriteString(nc, tc.answer)
				<-block
			})
			p := newConnPool(addr, time.Second, time.Minute, 8)
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(5*quickWait, cancel)
			start := time.Now()
			_, _, err := get(t, p, ctx, http.MethodGet, "http://"+addr+"/", nil)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.answer == "" && !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want context.Canceled", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v to notice the cancel", d)
			}
		})
	}
	t.Run("cancelled before", func(t *testing.T) {
		addr := rawUpstream(t, func(net.Conn) {})
		p := newConnPool(addr, time.Second, time.Minute, 8)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := get(t, p, ctx, http.MethodGet, "http://"+addr+"/", nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	})
}
