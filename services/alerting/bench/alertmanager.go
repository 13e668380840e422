package alertbench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// AlertmanagerBinary is Debian's name for Alertmanager.
const AlertmanagerBinary = "prometheus-alertmanager"

// Alertmanager is the peer: Debian's prometheus-alertmanager with its own
// configuration (one route to the receiver), storage in a temporary
// directory and clustering off.
type Alertmanager struct {
	// Binary is the program (default prometheus-alertmanager on PATH).
	Binary string
}

// Name is the table's name of the target.
func (Alertmanager) Name() string { return "alertmanager" }

// amConfig is the one-route configuration.
const amConfig = `route:
  receiver: bench
  group_by: [alertname, %s]
  group_wait: %s
  group_interval: %s
  repeat_interval: %s
receivers:
- name: bench
  webhook_configs:
  - url: %q
    send_resolved: true
`

// Start runs a fresh Alertmanager.
func (a Alertmanager) Start(ctx context.Context, receiverURL string, t Timers) (Server, error) {
	bin := a.Binary
	if bin == "" {
		bin = AlertmanagerBinary
	}
	dir, err := os.MkdirTemp("", "alertbench-am-")
	if err != nil {
		return nil, fmt.Errorf("alertmanager dir: %w", err)
	}
	cfg := fmt.Sprintf(amConfig, LabelGroup, promDuration(t.GroupWait), promDuration(t.GroupInterval),
		promDuration(t.RepeatInterval), receiverURL)
	cfgFile := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("alertmanager config: %w", err)
	}
	addr, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p, err := startProc(bin, []string{
		"--config.file=" + cfgFile,
		"--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--cluster.listen-address=",
		"--log.level=warn",
	}, nil)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &amServer{p: p, dir: dir, addr: addr}
	if err := p.waitHTTP(ctx, "http://"+addr+"/-/ready", 30*time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("alertmanager: %w", err)
	}
	return s, nil
}

// promDuration formats d the way Prometheus configuration accepts it.
func promDuration(d time.Duration) string {
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// amServer is one running Alertmanager.
type amServer struct {
	p    *proc
	dir  string
	addr string
}

func (s *amServer) PushURL() string                              { return "http://" + s.addr + "/api/v2/alerts" }
func (s *amServer) Signer() func(req *http.Request, body []byte) { return nil }
func (s *amServer) LogTail() string                              { return s.p.log.tail() }

func (s *amServer) CPU() (float64, float64, error) {
	own, err := ProcCPU(s.p.cmd.Process.Pid)
	return own, 0, err
}

func (s *amServer) Stop() {
	s.p.stop()
	os.RemoveAll(s.dir)
}
