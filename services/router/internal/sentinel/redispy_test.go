package sentinel

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// redis-py's Sentinel reads SENTINEL MASTERS and checks the flags before
// it trusts a master; its replica discovery skips s_down replicas.
const redisPyScript = `
import sys
from redis.sentinel import Sentinel
host, port = sys.argv[1], int(sys.argv[2])
s = Sentinel([(host, port)], sentinel_kwargs={"username": "ua", "password": "pa"})
print(s.discover_master("cache"), s.discover_slaves("cache"))
try:
    s.discover_master("other")
    print("other visible")
except Exception as e:
    print(type(e).__name__)
`

func TestRedisPy(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-c", "import redis.sentinel").Run() != nil {
		py = "/usr/bin/python3"
		if exec.Command(py, "-c", "import redis.sentinel").Run() != nil {
			t.Skip("no python3 with redis-py")
		}
	}
	addr, _ := start(t, Config{}, fixture())
	host, port := splitAddr(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", redisPyScript, host, port).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "('10.0.0.1', 6379) [('10.0.0.2', 6380)]\nMasterNotFoundError\n", string(out))
}
