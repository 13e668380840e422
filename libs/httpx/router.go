package httpx

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// DefaultMaxBodyBytes bounds request bodies when no other limit is set.
const DefaultMaxBodyBytes = 1 << 20

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

type bodyLimitKey struct{}

func bodyLimited(r *http.Request) bool {
	v, _ := r.Context().Value(bodyLimitKey{}).(bool)
	return v
}

// RouterOption adjusts NewRouter.
type RouterOption func(*routerOptions)

type routerOptions struct {
	maxBody   int64
	accessLog bool
	tracing   bool
}

// WithMaxBodyBytes sets the request body limit (default 1 MiB).
func WithMaxBodyBytes(n int64) RouterOption { return func(o *routerOptions) { o.maxBody = n } }

// WithoutAccessLog turns the per-request log line off (hot proxy paths log elsewhere).
func WithoutAccessLog() RouterOption { return func(o *routerOptions) { o.accessLog = false } }

// WithoutTracing turns the OTel handler off.
func WithoutTracing() RouterOption { return func(o *routerOptions) { o.tracing = false } }

// NewRouter returns a chi router with the middleware every Canopy API has:
// request id (honouring an incoming X-Request-Id), panic recovery as a 500
// problem, a structured access log, OTel server spans and a body size limit.
func NewRouter(logger *slog.Logger, opts ...RouterOption) chi.Router {
	o := routerOptions{maxBody: DefaultMaxBodyBytes, accessLog: true, tracing: true}
	for _, opt := range opts {
		opt(&o)
	}
	r := chi.NewRouter()
	r.Use(requestID)
	r.Use(recoverer(logger))
	if o.accessLog {
		r.Use(accessLog(logger))
	}
	if o.tracing {
		r.Use(func(next http.Handler) http.Handler {
			return otelhttp.NewHandler(next, "http.server", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
				return r.Method + " " + r.URL.Path
			}))
		})
	}
	r.Use(limitBody(o.maxBody))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, r, NewProblem(http.StatusNotFound, "no such resource"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, r, NewProblem(http.StatusMethodNotAllowed, r.Method+" is not allowed here"))
	})
	return r
}

func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if id == "" || len(id) > 128 {
			id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		ctx := context.WithValue(r.Context(), middleware.RequestIDKey, id)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func recoverer(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if rec := recover(); rec != nil {
					if rec == http.ErrAbortHandler {
						panic(rec)
					}
					logger.ErrorContext(r.Context(), "panic in handler", "panic", rec, "method", r.Method, "path", r.URL.Path,
						"request_id", middleware.GetReqID(r.Context()))
					WriteProblem(w, r, NewProblem(http.StatusInternalServerError, "internal error; quote the request id when reporting it"))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

func accessLog(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			logger.LogAttrs(r.Context(), level, "http request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
				slog.Int("bytes", ww.BytesWritten()), slog.Duration("duration", time.Since(start)),
				slog.String("request_id", middleware.GetReqID(r.Context())),
				slog.String("tenant", r.Header.Get("X-Canopy-Tenant")))
		})
	}
}

func limitBody(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n > 0 && r.Body != nil && r.Body != http.NoBody {
				if r.ContentLength > n {
					WriteProblem(w, r, NewProblem(http.StatusRequestEntityTooLarge, "request body too large"))
					return
				}
				r.Body = http.MaxBytesReader(w, r.Body, n)
				r = r.WithContext(context.WithValue(r.Context(), bodyLimitKey{}, true))
			}
			next.ServeHTTP(w, r)
		})
	}
}
