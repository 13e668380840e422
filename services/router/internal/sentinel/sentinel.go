package sentinel

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// redisEngine: only Redis instances are Sentinel masters.
const redisEngine = table.Redis

// Fixed values of the fields a real Sentinel reports from its own probing
// and configuration; clients read none of them but some print them.
const (
	downAfterMS     = "30000"
	failoverTimeout = "180000"
)

var sentinelSubs = map[string]int{
	"masters": 2, "master": 3, "replicas": 3, "slaves": 3, "sentinels": 3,
	"get-master-addr-by-name": 3, "myid": 2, "ckquorum": 3, "help": 2,
	// Canopy decides failovers: what would change a Sentinel's
	// monitoring is refused.
	"failover": -3, "monitor": -2, "remove": -2, "set": -2, "reset": -2,
	"flushconfig": -2, "config": -2, "is-master-down-by-addr": -2,
	"simulate-failure": -2, "debug": -2, "info-cache": -2, "pending-scripts": -2,
}

var sentinelHelp = []string{
	"SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"CKQUORUM <master-name>",
	"    Check if the current Sentinel configuration is able to reach the quorum",
	"    needed to failover a master and the majority needed to authorize the",
	"    failover.",
	"GET-MASTER-ADDR-BY-NAME <master-name>",
	"    Return the ip and port number of the master with that name.",
	"MASTER <master-name>",
	"    Show the state and info of the specified master.",
	"MASTERS",
	"    Show a list of monitored masters and their state.",
	"MYID",
	"    Return the ID of the Sentinel instance.",
	"REPLICAS <master-name>",
	"    Show a list of replicas for this master and their state.",
	"SENTINELS <master-name>",
	"    Show a list of Sentinel instances for this master and their state.",
	"HELP",
	"    Print this help.",
}

func (c *conn) sentinel(w *writer, args [][]byte) bool {
	sub := strings.ToLower(string(args[1]))
	n, known := sentinelSubs[sub]
	if !known {
		w.err(fmt.Sprintf("ERR unknown subcommand '%s'. Try SENTINEL HELP.", truncate(string(args[1]))))
		return false
	}
	if (n > 0 && len(args) != n) || len(args) < -n {
		w.err(fmt.Sprintf("ERR wrong number of arguments for 'sentinel|%s' command", sub))
		return false
	}
	tenant := c.tenantName()
	switch sub {
	case "masters":
		views := c.s.tbl.Tenant(tenant, redisEngine)
		w.array(len(views))
		for _, v := range views {
			w.fields(c.s.masterFields(c.s.describe(v)))
		}
	case "master":
		if v, ok := c.s.master(tenant, string(args[2])); ok {
			w.fields(c.s.masterFields(c.s.describe(v)))
		} else {
			w.err("ERR No such master with that name")
		}
	case "replicas", "slaves":
		v, ok := c.s.master(tenant, string(args[2]))
		if !ok {
			w.err("ERR No such master with that name")
			break
		}
		m := c.s.describe(v)
		w.array(len(m.replicas))
		for _, r := range m.replicas {
			w.fields(replicaFields(m, r))
		}
	case "sentinels":
		if _, ok := c.s.master(tenant, string(args[2])); !ok {
			w.err("ERR No such master with that name")
			break
		}
		others := c.s.others()
		w.array(len(others))
		for _, addr := range others {
			w.fields(sentinelFields(addr))
		}
	case "get-master-addr-by-name":
		v, ok := c.s.master(tenant, string(args[2]))
		if !ok {
			w.nullArray()
			break
		}
		m := c.s.describe(v)
		if !m.known {
			w.nullArray()
			break
		}
		w.array(2)
		w.bulk(m.ip)
		w.bulk(m.port)
	case "myid":
		w.bulk(c.s.myID)
	case "ckquorum":
		if _, ok := c.s.master(tenant, string(args[2])); !ok {
			w.err("ERR No such master with that name")
			break
		}
		w.simple(fmt.Sprintf("OK %d usable Sentinels. Quorum and failover authorization can be reached", len(c.s.others())+1))
	case "help":
		w.array(len(sentinelHelp))
		for _, l := range sentinelHelp {
			w.simple(l)
		}
	default:
		w.err(fmt.Sprintf("ERR SENTINEL %s is not available: Canopy manages this instance's failover", strings.ToUpper(sub)))
	}
	return false
}

// master returns the tenant's Redis instance called name; another
// tenant's instance is as unknown as a missing one.
func (s *Server) master(tenant, name string) (table.View, bool) {
	if tenant == "" {
		return table.View{}, false
	}
	v, ok := s.tbl.ByName(tenant, name)
	if !ok || v.Engine != redisEngine {
		return table.View{}, false
	}
	return v, true
}

// others are the peers' addresses but this server's own.
func (s *Server) others() []string {
	out := make([]string, 0, len(s.cfg.Peers))
	for _, p := range s.cfg.Peers {
		if p != s.cfg.Addr {
			out = append(out, p)
		}
	}
	return out
}

// masterState is an instance as a Sentinel describes it.
type masterState struct {
	name      string
	known     bool // a primary with an address is known
	ip, port  string
	runID     string
	down      bool
	switching bool
	epoch     int64
	replicas  []table.Node
}

func (s *Server) describe(v table.View) masterState {
	m := masterState{name: v.Name, switching: v.Switching, epoch: v.FailoverToken, ip: "", port: "0"}
	if p, ok := v.Primary(); ok {
		if host, port, err := net.SplitHostPort(p.Address); err == nil {
			m.known, m.ip, m.port, m.runID, m.down = true, host, port, p.ID, p.Down
		}
	}
	// Fenced nodes are left out: a former primary must serve nobody, and
	// a client given it, even flagged, might still read from it.
	for _, n := range v.Nodes {
		if n.Role != table.Replica || n.Address == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(n.Address); err != nil {
			continue
		}
		m.replicas = append(m.replicas, n)
	}
	return m
}

func (m masterState) flags() string {
	var f []string
	if m.down || !m.known {
		f = append(f, "s_down", "o_down")
	}
	f = append(f, "master")
	if !m.known {
		f = append(f, "disconnected")
	}
	if m.switching {
		f = append(f, "failover_in_progress")
	}
	return strings.Join(f, ",")
}

// status is INFO's master status: ok, sdown or odown.
func (m masterState) status() string {
	if m.down || !m.known {
		return "odown"
	}
	return "ok"
}

func (s *Server) masterFields(m masterState) []string {
	others := len(s.others())
	return []string{
		"name", m.name,
		"ip", m.ip,
		"port", m.port,
		"runid", m.runID,
		"flags", m.flags(),
		"link-pending-commands", "0",
		"link-refcount", "1",
		"last-ping-sent", "0",
		"last-ok-ping-reply", "0",
		"last-ping-reply", "0",
		"down-after-milliseconds", downAfterMS,
		"info-refresh", "0",
		"role-reported", "master",
		"role-reported-time", "0",
		"config-epoch", strconv.FormatInt(m.epoch, 10),
		"num-slaves", strconv.Itoa(len(m.replicas)),
		"num-other-sentinels", strconv.Itoa(others),
		"quorum", strconv.Itoa((others+1)/2 + 1),
		"failover-timeout", failoverTimeout,
		"parallel-syncs", "1",
	}
}

func replicaFields(m masterState, n table.Node) []string {
	host, port, _ := net.SplitHostPort(n.Address)
	flags, link := "slave", "ok"
	if n.Down {
		// go-redis and redis-py skip replicas flagged s_down.
		flags, link = "s_down,slave,disconnected", "err"
	}
	masterHost, masterPort := "?", "0"
	if m.known {
		masterHost, masterPort = m.ip, m.port
	}
	return []string{
		"name", net.JoinHostPort(host, port),
		"ip", host,
		"port", port,
		"runid", n.ID,
		"flags", flags,
		"link-pending-commands", "0",
		"link-refcount", "1",
		"last-ping-sent", "0",
		"last-ok-ping-reply", "0",
		"last-ping-reply", "0",
		"down-after-milliseconds", downAfterMS,
		"info-refresh", "0",
		"role-reported", "slave",
		"role-reported-time", "0",
		"master-link-down-time", "0",
		"master-link-status", link,
		"master-host", masterHost,
		"master-port", masterPort,
		"slave-priority", "100",
		"slave-repl-offset", "0",
		"replica-announced", "1",
	}
}

func sentinelFields(addr string) []string {
	host, port := splitAddr(addr)
	return []string{
		"name", addr,
		"ip", host,
		"port", port,
		"runid", "",
		"flags", "sentinel",
		"link-pending-commands", "0",
		"link-refcount", "1",
		"last-ping-sent", "0",
		"last-ok-ping-reply", "0",
		"last-ping-reply", "0",
		"down-after-milliseconds", downAfterMS,
		"last-hello-message", "0",
		"voted-leader", "?",
		"voted-leader-epoch", "0",
	}
}

// Pub/sub. Only +switch-master is ever published; any channel or pattern
// may be subscribed to, as on a real Sentinel.

func (c *conn) subscribe(w *writer, args [][]byte) bool {
	c.subscribeTo(w, args[1:], "subscribe", false)
	return false
}

func (c *conn) psubscribe(w *writer, args [][]byte) bool {
	c.subscribeTo(w, args[1:], "psubscribe", true)
	return false
}

func (c *conn) subscribeTo(w *writer, names [][]byte, kind string, pattern bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	set := c.channels
	if pattern {
		set = c.patterns
	}
	for _, n := range names {
		set[string(n)] = struct{}{}
		w.push(3)
		w.bulk(kind)
		w.bulk(string(n))
		w.int(int64(len(c.channels) + len(c.patterns)))
	}
}

func (c *conn) unsubscribe(w *writer, args [][]byte) bool {
	c.unsubscribeFrom(w, args[1:], "unsubscribe", false)
	return false
}

func (c *conn) punsubscribe(w *writer, args [][]byte) bool {
	c.unsubscribeFrom(w, args[1:], "punsubscribe", true)
	return false
}

func (c *conn) unsubscribeFrom(w *writer, names [][]byte, kind string, pattern bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	set := c.channels
	if pattern {
		set = c.patterns
	}
	if len(names) == 0 {
		if len(set) == 0 {
			w.push(3)
			w.bulk(kind)
			w.null()
			w.int(int64(len(c.channels) + len(c.patterns)))
			return
		}
		for n := range set {
			names = append(names, []byte(n))
		}
	}
	for _, n := range names {
		delete(set, string(n))
		w.push(3)
		w.bulk(kind)
		w.bulk(string(n))
		w.int(int64(len(c.channels) + len(c.patterns)))
	}
}
