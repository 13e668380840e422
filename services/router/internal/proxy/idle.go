package proxy

import (
	"context"
	"net"
	"time"
)

// Idle connections are found by asking the kernel (TCP_INFO's
// tcpi_last_data_recv and tcpi_last_data_sent) instead of with read
// deadlines: a deadline must be pushed forward after every read, which
// needs a user-space copy loop and gives up splice, the reason forwarding
// costs almost nothing. The kernel keeps both timestamps per socket anyway;
// a sweep reads them every IdleTimeout/4 (between 10 ms and 30 s), so a
// connection is closed between IdleTimeout and about 1.25 × IdleTimeout
// after its last byte.

// sweep closes idle connections until ctx ends.
func (p *Proxy) sweep(ctx context.Context) {
	every := min(max(p.cfg.IdleTimeout/4, 10*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.closeIdle(time.Now())
		}
	}
}

// closeIdle closes the connections that moved no data for IdleTimeout.
func (p *Proxy) closeIdle(now time.Time) {
	p.mu.Lock()
	var cs []*conn
	for _, ep := range p.eps {
		for c := range ep.conns {
			if now.Sub(c.since) >= p.cfg.IdleTimeout {
				cs = append(cs, c)
			}
		}
	}
	p.mu.Unlock()
	for _, c := range cs {
		idle := now.Sub(c.since)
		for _, s := range []*net.TCPConn{c.client, c.backend} {
			d, ok := sinceData(s)
			if !ok { // closed meanwhile, or no TCP_INFO here
				idle = 0
				break
			}
			idle = min(idle, d)
		}
		if idle >= p.cfg.IdleTimeout {
			p.log.Debug("proxy: closing idle connection", "instance", c.ep.id, "endpoint", c.ep.kind,
				"backend", c.addr, "idle", idle)
			c.close()
		}
	}
}
