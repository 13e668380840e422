package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"time"
)

// connPool is a keep-alive pool of plain HTTP/1.1 connections to one
// upstream, used on the calling goroutine: the request is written and the
// response read by the handler's own goroutine, with no per-connection read
// and write loops to hand off to (http.Transport's two goroutine switches and
// their wake-ups were the largest avoidable cost of a proxied request). It
// speaks only what the proxy needs: one request at a time per connection,
// bodiless requests written directly and others by http.Request.Write, the
// common answer parsed in place (readBuffered) and others by
// http.ReadResponse.
type connPool struct {
	addr          string
	dialer        *net.Dialer
	headerTimeout time.Duration
	idleTimeout   time.Duration
	maxIdle       int

	mu   sync.Mutex
	idle []*upConn // most recently used last
}

type upConn struct {
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// aLongTimeAgo is a deadline that makes blocked reads and writes fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// probeAfter is how long a connection may sit idle before it is checked for
// a close by the upstream (e.g. its idle timeout or a restart) before reuse.
const probeAfter = time.Second

func newConnPool(addr string, dialTimeout, headerTimeout time.Duration, maxIdle int) *connPool {
	return &connPool{addr: addr, dialer: &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		headerTimeout: headerTimeout, idleTimeout: 90 * time.Second, maxIdle: maxIdle}
}

// errNothingReceived wraps a failure on a reused connection before any byte
// of the response arrived: the upstream most likely closed the idle
// connection, so a replayable request may go again on a fresh one.
type errNothingReceived struct{ err error }

func (e errNothingReceived) Error() string { return e.err.Error() }
func (e errNothingReceived) Unwrap() error { return e.err }

// RoundTrip sends req on a pooled (or new) connection and reads the response
// headers. The response body returns the connection to the pool when it was
// read to the end and closed. A connection error keeps the shape
// http.Transport gives it (*net.OpError with Op "dial" for a failed dial), a
// cancelled ctx is reported as ctx.Err().
func (p *connPool) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	replayable := (req.Method == http.MethodGet || req.Method == http.MethodHead) && (req.Body == nil || req.Body == http.NoBody)
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx, !replayable)
		if err != nil {
			return nil, err
		}
		resp, err := p.do(ctx, c, req, reused)
		if err == nil {
			return resp, nil
		}
		var nothing errNothingReceived
		if errors.As(err, &nothing) && replayable && attempt == 0 && ctx.Err() == nil {
			continue
		}
		// A non-replayable request keeps the errNothingReceived mark: the
		// balancer may send it to another replica when its Idempotency-Key
		// makes that safe (Target.failover).
		return nil, err
	}
}

func (p *connPool) get(ctx context.Context, probeAlways bool) (*upConn, bool, error) {
	now := time.Now()
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		idleFor := now.Sub(c.idleSince)
		var stale []*upConn
		if idleFor >= p.idleTimeout {
			stale, p.idle = p.idle, nil // everything below it is older still
		}
		p.mu.Unlock()
		if idleFor >= p.idleTimeout {
			_ = c.nc.Close()
			for _, s := range stale {
				_ = s.nc.Close()
			}
			break
		}
		if (probeAlways || idleFor >= probeAfter) && !alive(c) {
			_ = c.nc.Close()
			continue
		}
		return c, true, nil
	}
	nc, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, false, err
	}
	return &upConn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 8<<10)}, false, nil
}

func (p *connPool) put(c *upConn) {
	c.idleSince = time.Now()
	p.mu.Lock()
	if len(p.idle) < p.maxIdle {
		p.idle = append(p.idle, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = c.nc.Close()
}

// CloseIdleConnections closes the idle connections; the pool stays usable.
func (p *connPool) CloseIdleConnections() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		_ = c.nc.Close()
	}
}

func (p *connPool) do(ctx context.Context, c *upConn, req *http.Request, reused bool) (*http.Response, error) {
	w := abortWatch{ctx: ctx, nc: c.nc}
	fail := func(err error, nothingReceived bool) (*http.Response, error) {
		w.disarm()
		_ = c.nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if nothingReceived && reused {
			return nil, errNothingReceived{err}
		}
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return fail(err, true)
	}
	if req.Body != nil && req.Body != http.NoBody {
		w.arm() // sending a body may block on a slow upstream
	}
	if err := writeRequest(c.bw, req); err != nil {
		return fail(err, true)
	}
	deadline, quick, err := p.awaitAnswer(c, &w)
	if err != nil {
		return fail(err, true)
	}
	resp, length, direct := readBuffered(c.br, req)
	if quick && (!direct || ctx.Err() != nil) {
		// The rest of the header may take long: wait for it watched, within
		// the header timeout (or find the client gone).
		if err := w.setReadDeadline(deadline); err != nil {
			return fail(err, false)
		}
	}
	for !direct {
		var err error
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err, false)
		}
		// Skip informational answers (100 Continue, 103 Early Hints).
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	if direct && length > int64(c.br.Buffered()) {
		w.arm() // reading the rest of the body may block
	}
	if w.cancelled() {
		return fail(ctx.Err(), false)
	}
	keep := !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols && !req.Close
	if resp.Body == http.NoBody {
		// Nothing to read (HEAD, 204, 304, empty body): the connection is free now.
		if w.disarm() && keep {
			p.put(c)
		} else {
			_ = c.nc.Close()
		}
		return resp, nil
	}
	if direct {
		resp.Body = &pooledBody{br: c.br, left: length, c: c, p: p, watch: w, keep: keep}
	} else {
		w.arm()
		if w.cancelled() {
			return fail(ctx.Err(), false)
		}
		resp.Body = &pooledBody{rc: resp.Body, c: c, p: p, watch: w, keep: keep}
	}
	return resp, nil
}

// quickWait is how long an answer is awaited before the exchange is watched
// for the client going away (see abortWatch).
const quickWait = 10 * time.Millisecond

// awaitAnswer waits for the first byte of the answer, until deadline (the
// header timeout; zero for none). Unless w is armed already, the first
// quickWait of it goes unwatched: quick then reports that this shorter read
// deadline is still set and w unarmed. A slower answer arms w.
func (p *connPool) awaitAnswer(c *upConn, w *abortWatch) (deadline time.Time, quick bool, err error) {
	now := time.Now()
	if p.headerTimeout > 0 {
		deadline = now.Add(p.headerTimeout)
	}
	if w.stop == nil {
		if q := now.Add(quickWait); deadline.IsZero() || q.Before(deadline) {
			_ = c.nc.SetReadDeadline(q)
			_, err := c.br.Peek(1)
			if err == nil {
				return deadline, true, nil
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return deadline, false, err
			}
		}
	}
	if err := w.setReadDeadline(deadline); err != nil {
		return deadline, false, err
	}
	_, err = c.br.Peek(1)
	return deadline, false, err
}

// abortWatch aborts blocked reads and writes on a connection once ctx ends
// (the client went away), as http.Transport does. Arming it
// (context.AfterFunc) costs several allocations per request, so do arms it
// only when the exchange may block: a request body to send, an answer slower
// than quickWait, a header or body not yet all buffered. A client that goes
// away during the unwatched wait is noticed when it ends.
type abortWatch struct {
	ctx  context.Context
	nc   net.Conn
	stop func() bool // nil until armed
}

func (w *abortWatch) arm() {
	if w.stop == nil {
		nc := w.nc
		w.stop = context.AfterFunc(w.ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	}
}

// disarm stops the watch and reports whether it never fired, i.e. the
// connection's deadlines are still the exchange's own.
func (w *abortWatch) disarm() bool { return w.stop == nil || w.stop() }

// cancelled reports whether ctx ended while w is armed: a deadline set after
// the watch fired would have undone its abort, so callers check this after
// setting one.
func (w *abortWatch) cancelled() bool { return w.stop != nil && w.ctx.Err() != nil }

// setReadDeadline sets the read deadline (zero: none) and arms w, in that
// order, so the watch's abort always comes last.
func (w *abortWatch) setReadDeadline(t time.Time) error {
	_ = w.nc.SetReadDeadline(t)
	w.arm()
	if w.cancelled() {
		return w.ctx.Err()
	}
	return nil
}

// pooledBody returns its connection to the pool once read to the end and
// closed; a body closed early takes its connection with it.
type pooledBody struct {
	rc    io.ReadCloser // the body as http.ReadResponse framed it; nil when read directly:
	br    *bufio.Reader // the connection, holding
	left  int64         // this many more bytes of a Content-Length body
	c     *upConn
	p     *connPool
	watch abortWatch
	keep  bool
	eof   bool
	done  bool
}

func (b *pooledBody) Read(buf []byte) (int, error) {
	if b.done {
		return 0, errors.New("read on closed upstream body")
	}
	var n int
	var err error
	if b.rc != nil {
		n, err = b.rc.Read(buf)
	} else {
		n, err = b.readDirect(buf)
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *pooledBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	if !b.eof {
		// Do not let Close drain a body nobody wants from a slow upstream.
		_ = b.c.nc.Close()
		if b.rc != nil {
			_ = b.rc.Close()
		}
		b.watch.disarm()
		return nil
	}
	if b.rc != nil {
		_ = b.rc.Close()
	}
	if b.watch.disarm() && b.keep {
		b.p.put(b.c)
	} else {
		_ = b.c.nc.Close()
	}
	return nil
}

// writeRequest writes req as HTTP/1.1. Requests without a body (nearly all
// proxied ones) are written directly; others go through http.Request.Write,
// which frames the body.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	if req.Body != nil && req.Body != http.NoBody {
		if err := req.Write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	bw.WriteString(host)
	bw.WriteString("\r\n")
	if _, ok := req.Header["User-Agent"]; !ok {
		bw.WriteString("User-Agent: Go-http-client/1.1\r\n") // as http.Request.Write
	}
	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vv {
			if v == "" && k == "User-Agent" {
				continue // an empty User-Agent means none, as in http.Request.Write
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			writeHeaderValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	return bw.Flush()
}

var headerNewlineToSpace = strings.NewReplacer("\r", " ", "\n", " ")

// writeHeaderValue writes v with line breaks turned into spaces and
// surrounding blanks trimmed, as http.Header.Write does.
func writeHeaderValue(bw *bufio.Writer, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = headerNewlineToSpace.Replace(v)
	}
	bw.WriteString(textproto.TrimString(v))
}
