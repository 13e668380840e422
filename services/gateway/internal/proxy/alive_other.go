//go:build !unix

package proxy

// alive cannot peek without blocking here; a stale connection shows up as a
// failed exchange, which replayable requests retry on a fresh connection.
func alive(c *upConn) bool { return c.br.Buffered() == 0 }
