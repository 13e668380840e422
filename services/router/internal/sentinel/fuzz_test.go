package sentinel

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// FuzzCommands drives the reader and the command table with arbitrary
// input: no panic, a command never larger than the bound, and never a
// word of another tenant's instance (tenant B's "other" at 10.0.2.1).
func FuzzCommands(f *testing.F) {
	for _, seed := range []string{
		authA + resp("SENTINEL", "get-master-addr-by-name", "other"),
		authA + "HELLO 3\r\n" + resp("SENTINEL", "masters") + "ROLE\r\nINFO\r\n",
		authA + resp("SUBSCRIBE", "+switch-master") + "PING\r\nUNSUBSCRIBE\r\n",
		"HELLO 3 AUTH ua pa SETNAME x\r\nSENTINEL replicas cache\r\nSENTINEL sentinels other\r\n",
		"*1\r\n$9223372036854775807\r\n",
		"PING \"a\\x41\" 'b\\'c'\r\n",
		"*2\r\n$4\r\nAUTH\r\n$2\r\npa\r\nRESET\r\nCLIENT SETNAME a\r\nCLIENT GETNAME\r\n",
	} {
		f.Add([]byte(seed))
	}
	const max = 512
	srv, err := New(Config{Addr: "127.0.0.1:26399", MaxRequestBytes: max}, fixture(),
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newConn(srv, nil, 1)
		rd := newReader(bytes.NewReader(data), max)
		for range 64 {
			args, err := rd.command()
			if err != nil {
				return
			}
			size := 0
			for _, a := range args {
				size += len(a)
			}
			if size > maxInline {
				t.Fatalf("command of %d bytes read", size)
			}
			if args == nil {
				continue
			}
			w := c.writer()
			quit := c.exec(w, args)
			c.mu.Lock()
			tenant := c.tenant
			c.mu.Unlock()
			out := string(w.b)
			// Replies echo some input (PING, unknown commands): judge
			// only those whose input names nothing of a tenant.
			in := string(bytes.Join(args, []byte(" ")))
			if strings.Contains(in, "10.0.") || strings.Contains(in, "other") || strings.Contains(in, "cache") {
				continue
			}
			if tenant != "t-b" && (strings.Contains(out, "10.0.2.1") || strings.Contains(out, "$5\r\nother\r\n")) {
				t.Fatalf("tenant %q saw tenant B: %q", tenant, out)
			}
			if tenant != "t-a" && (strings.Contains(out, "10.0.0.") || strings.Contains(out, "$5\r\ncache\r\n")) {
				t.Fatalf("tenant %q saw tenant A: %q", tenant, out)
			}
			if quit {
				return
			}
		}
	})
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"peers", Config{Addr: "0.0.0.0:26380", Peers: []string{"r2:26380", "10.0.0.9:26380"}}, true},
		{"bad addr", Config{Addr: "nope"}, false},
		{"bad peer", Config{Peers: []string{"r2"}}, false},
		{"negative conns", Config{MaxConns: -1}, false},
		{"negative idle", Config{IdleTimeout: -1}, false},
		{"negative request", Config{MaxRequestBytes: -1}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}
