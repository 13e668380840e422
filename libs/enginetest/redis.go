package enginetest

import (
	"strconv"
	"testing"
)

// Redis prepares a redis-server on a free loopback port with its data in
// p.Dir and nothing saved: no RDB saves and, unless extra says otherwise
// ("--appendonly", "yes"), no AOF. With a user, the default user is off
// and user (password) may do everything; without one, the default user
// is open. Nothing runs until Start.
func Redis(t testing.TB, user, password string, extra ...string) *Proc {
	t.Helper()
	return New(t, "redis-server", func(p *Proc, _ bool) []string {
		args := []string{"--port", strconv.Itoa(p.Port), "--bind", "127.0.0.1", "--dir", p.Dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"}
		if user != "" {
			args = append(args, "--user", "default", "off", "--user", user, "on", ">"+password, "~*", "&*", "+@all")
		}
		return append(args, extra...)
	}, nil)
}
