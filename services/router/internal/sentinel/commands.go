package sentinel

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is the Redis version the port reports (HELLO, INFO): the
// Sentinel protocol it speaks is Redis 7's.
const Version = "7.2.0"

type command struct {
	// arity as Redis counts it: n exactly, -n at least n (the name
	// included).
	arity int
	// open: allowed before AUTH.
	open bool
	// inSubscribe: allowed in RESP2 subscribe mode.
	inSubscribe bool
	run         func(c *conn, w *writer, args [][]byte) (quit bool)
}

var commands = map[string]command{
	"ping":         {arity: -1, open: true, inSubscribe: true, run: (*conn).ping},
	"auth":         {arity: -2, open: true, run: (*conn).auth},
	"hello":        {arity: -1, open: true, run: (*conn).hello},
	"quit":         {arity: -1, open: true, inSubscribe: true, run: (*conn).quit},
	"reset":        {arity: 1, open: true, inSubscribe: true, run: (*conn).reset},
	"client":       {arity: -2, open: true, run: (*conn).client},
	"role":         {arity: 1, run: (*conn).role},
	"info":         {arity: -1, run: (*conn).info},
	"sentinel":     {arity: -2, run: (*conn).sentinel},
	"subscribe":    {arity: -2, inSubscribe: true, run: (*conn).subscribe},
	"psubscribe":   {arity: -2, inSubscribe: true, run: (*conn).psubscribe},
	"unsubscribe":  {arity: -1, inSubscribe: true, run: (*conn).unsubscribe},
	"punsubscribe": {arity: -1, inSubscribe: true, run: (*conn).punsubscribe},
}

// exec runs one command, writing its reply to w, and reports whether the
// connection ends after it.
func (c *conn) exec(w *writer, args [][]byte) bool {
	name := strings.ToLower(string(args[0]))
	cmd, ok := commands[name]
	if !ok {
		w.err(unknownCommand(args))
		c.s.count("unknown", true)
		return false
	}
	label := name
	if name == "sentinel" && len(args) > 1 {
		label = "sentinel|" + strings.ToLower(string(args[1]))
		if _, known := sentinelSubs[strings.ToLower(string(args[1]))]; !known {
			label = "sentinel|unknown"
		}
	}
	before := w.errs
	defer func() { c.s.count(label, w.errs > before) }()

	if (cmd.arity > 0 && len(args) != cmd.arity) || len(args) < -cmd.arity {
		w.err(fmt.Sprintf("ERR wrong number of arguments for '%s' command", name))
		return false
	}
	c.mu.Lock()
	authed, proto, subscribed := c.authed, c.proto, len(c.channels)+len(c.patterns) > 0
	c.mu.Unlock()
	if !authed && !cmd.open {
		w.err("NOAUTH Authentication required.")
		return false
	}
	if proto == 2 && subscribed && !cmd.inSubscribe {
		w.err(fmt.Sprintf("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", label))
		return false
	}
	return cmd.run(c, w, args)
}

// unknownCommand is Redis's reply to an unknown command, quoting the
// start of its arguments.
func unknownCommand(args [][]byte) string {
	var sb strings.Builder
	for _, a := range args[1:] {
		if sb.Len() >= 128 {
			break
		}
		s := string(a)
		if room := 128 - sb.Len(); len(s) > room {
			s = s[:room]
		}
		sb.WriteString("'" + s + "' ")
	}
	name := string(args[0])
	if len(name) > 128 {
		name = name[:128]
	}
	return fmt.Sprintf("ERR unknown command '%s', with args beginning with: %s", name, sb.String())
}

func (c *conn) ping(w *writer, args [][]byte) bool {
	if len(args) > 2 {
		w.err("ERR wrong number of arguments for 'ping' command")
		return false
	}
	c.mu.Lock()
	inSub := c.proto == 2 && len(c.channels)+len(c.patterns) > 0
	c.mu.Unlock()
	switch {
	case inSub:
		w.array(2)
		w.bulk("pong")
		if len(args) == 2 {
			w.bulk(string(args[1]))
		} else {
			w.bulk("")
		}
	case len(args) == 2:
		w.bulk(string(args[1]))
	default:
		w.simple("PONG")
	}
	return false
}

func (c *conn) quit(w *writer, _ [][]byte) bool {
	w.simple("OK")
	return true
}

func (c *conn) reset(w *writer, _ [][]byte) bool {
	c.mu.Lock()
	c.authed, c.tenant, c.proto, c.name = false, "", 2, ""
	clear(c.channels)
	clear(c.patterns)
	c.mu.Unlock()
	w.proto = 2
	w.simple("RESET")
	return false
}

// login checks a binding's account; AUTH <password> is the "default"
// user's, as in Redis 6+.
func (c *conn) login(user, pass string) bool {
	tenant, ok := c.s.tbl.Authenticate(redisEngine, user, pass)
	if !ok {
		return false
	}
	c.mu.Lock()
	c.authed, c.tenant = true, tenant
	c.mu.Unlock()
	return true
}

const wrongPass = "WRONGPASS invalid username-password pair or user is disabled."

func (c *conn) auth(w *writer, args [][]byte) bool {
	var user, pass string
	switch len(args) {
	case 2:
		user, pass = "default", string(args[1])
	case 3:
		user, pass = string(args[1]), string(args[2])
	default:
		w.err("ERR syntax error")
		return false
	}
	if !c.login(user, pass) {
		w.err(wrongPass)
		return false
	}
	w.simple("OK")
	return false
}

func (c *conn) hello(w *writer, args [][]byte) bool {
	ver := 0
	if len(args) > 1 {
		v, err := strconv.ParseInt(string(args[1]), 10, 64)
		if err != nil || v < 0 || v > 1<<31 {
			w.err("ERR Protocol version is not an integer or out of range")
			return false
		}
		if v < 2 || v > 3 {
			w.err("NOPROTO unsupported protocol version")
			return false
		}
		ver = int(v)
	}
	var user, pass, name string
	auth, setName := false, false
	for i := 2; i < len(args); i++ {
		opt := strings.ToLower(string(args[i]))
		switch {
		case opt == "auth" && i+2 < len(args):
			user, pass, auth = string(args[i+1]), string(args[i+2]), true
			i += 2
		case opt == "setname" && i+1 < len(args):
			name, setName = string(args[i+1]), true
			i++
		default:
			w.err(fmt.Sprintf("ERR Syntax error in HELLO option '%s'", args[i]))
			return false
		}
	}
	if setName && !validName(name) {
		w.err("ERR Client names cannot contain spaces, newlines or special characters.")
		return false
	}
	if auth && !c.login(user, pass) {
		w.err(wrongPass)
		return false
	}
	c.mu.Lock()
	if !c.authed {
		c.mu.Unlock()
		w.err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return false
	}
	if ver != 0 {
		c.proto = ver
	}
	if setName {
		c.name = name
	}
	proto := c.proto
	c.mu.Unlock()
	w.proto = proto
	w.mapLen(6)
	w.bulk("server")
	w.bulk("redis")
	w.bulk("version")
	w.bulk(Version)
	w.bulk("proto")
	w.int(int64(proto))
	w.bulk("id")
	w.int(c.id)
	w.bulk("mode")
	w.bulk("sentinel")
	w.bulk("modules")
	w.array(0)
	return false
}

// validName is Redis's rule for client names: printable, no spaces.
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}

func (c *conn) client(w *writer, args [][]byte) bool {
	sub := strings.ToLower(string(args[1]))
	arity := map[string]int{"setname": 3, "getname": 2, "setinfo": 4, "id": 2}
	n, known := arity[sub]
	if !known {
		c.mu.Lock()
		authed := c.authed
		c.mu.Unlock()
		if !authed {
			w.err("NOAUTH Authentication required.")
			return false
		}
		w.err(fmt.Sprintf("ERR unknown subcommand '%s'. Try CLIENT HELP.", truncate(string(args[1]))))
		return false
	}
	if len(args) != n {
		w.err(fmt.Sprintf("ERR wrong number of arguments for 'client|%s' command", sub))
		return false
	}
	switch sub {
	case "setname":
		if !validName(string(args[2])) {
			w.err("ERR Client names cannot contain spaces, newlines or special characters.")
			return false
		}
		c.mu.Lock()
		c.name = string(args[2])
		c.mu.Unlock()
		w.simple("OK")
	case "getname":
		c.mu.Lock()
		name := c.name
		c.mu.Unlock()
		if name == "" {
			w.null()
		} else {
			w.bulk(name)
		}
	case "setinfo":
		switch strings.ToLower(string(args[2])) {
		case "lib-name", "lib-ver":
			w.simple("OK")
		default:
			w.err(fmt.Sprintf("ERR Unrecognized option '%s'", truncate(string(args[2]))))
		}
	case "id":
		w.int(c.id)
	}
	return false
}

func truncate(s string) string {
	if len(s) > 128 {
		return s[:128]
	}
	return s
}

func (c *conn) role(w *writer, _ [][]byte) bool {
	views := c.s.tbl.Tenant(c.tenantName(), redisEngine)
	w.array(2)
	w.bulk("sentinel")
	w.array(len(views))
	for _, v := range views {
		w.bulk(v.Name)
	}
	return false
}

func (c *conn) tenantName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tenant
}

func (c *conn) info(w *writer, args [][]byte) bool {
	section := "default"
	if len(args) > 1 {
		section = strings.ToLower(string(args[1]))
	}
	all := section == "default" || section == "all" || section == "everything"
	var sb strings.Builder
	if all || section == "server" {
		_, port := splitAddr(c.s.cfg.Addr)
		fmt.Fprintf(&sb, "# Server\r\nredis_version:%s\r\nredis_mode:sentinel\r\nrun_id:%s\r\ntcp_port:%s\r\n", Version, c.s.myID, port)
	}
	if all || section == "sentinel" {
		if sb.Len() > 0 {
			sb.WriteString("\r\n")
		}
		views := c.s.tbl.Tenant(c.tenantName(), redisEngine)
		fmt.Fprintf(&sb, "# Sentinel\r\nsentinel_masters:%d\r\nsentinel_tilt:0\r\nsentinel_tilt_since_seconds:-1\r\nsentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\nsentinel_simulate_failure_flags:0\r\n", len(views))
		for i, v := range views {
			m := c.s.describe(v)
			fmt.Fprintf(&sb, "master%d:name=%s,status=%s,address=%s:%s,slaves=%d,sentinels=%d\r\n",
				i, v.Name, m.status(), m.ip, m.port, len(m.replicas), len(c.s.others())+1)
		}
	}
	w.bulk(sb.String())
	return false
}
