// Package httpx is how Canopy services serve HTTP: a chi router with the
// standard middleware (request id, recovery, access log, tracing, body limit),
// a server with /livez, /readyz and /metrics and a graceful, bounded shutdown,
// and RFC 9457 problem details for every error. It holds no routes of any
// service and knows nothing of tenants beyond logging the header.
package httpx
