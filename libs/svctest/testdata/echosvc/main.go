// Command echosvc is the service svctest's own tests run: it serves
// /readyz (503 until READY_AFTER has passed since its start), /metrics (its
// pid and a few fixed series) and a signed /echo that answers with the
// caller's principal, the request and the value of $ECHO_ENV.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

func main() { os.Exit(run()) }

func run() int {
	readyAfter, err := time.ParseDuration(os.Getenv("READY_AFTER"))
	if err != nil {
		readyAfter = 0
	}
	if os.Getenv("EXIT_AT_START") != "" {
		fmt.Fprintln(os.Stderr, "echosvc: told to exit at start")
		return 3
	}
	started := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if time.Since(started) < readyAfter {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# HELP echo_pid The process id.\n# TYPE echo_pid gauge\necho_pid %d\n", os.Getpid())
		fmt.Fprint(w, "echo_requests_total{result=\"ok\",route=\"/a\"} 2\n")
		fmt.Fprint(w, "echo_requests_total{result=\"ok\",route=\"/b\"} 3 1700000000000\n")
		fmt.Fprint(w, "echo_requests_total{result=\"error\",route=\"/a\"} 7\n")
		fmt.Fprint(w, "echo_requests_total_created 1.7e+09\n")
	})
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/echo/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.URL.Path == "/echo/teapot" {
			http.Error(w, "short and stout", http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"tenant": p.Tenant, "role": p.Role, "subject": p.Subject,
			"method": r.Method, "path": r.URL.Path, "content_type": r.Header.Get("Content-Type"),
			"accept": r.Header.Get("Accept"), "body": string(body), "env": os.Getenv("ECHO_ENV")})
	})
	mux.Handle("/echo/", tenancy.Middleware(os.Getenv("ECHO_AUDIENCE"), []byte(os.Getenv("ECHO_SECRET")))(echo))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv := &http.Server{Addr: os.Getenv("ECHO_ADDR"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "echosvc:", err)
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "echosvc:", err)
		return 1
	}
	return 0
}
