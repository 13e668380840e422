package alertbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // the bench drops its databases

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// Canopy is Canopy's alerting service, the binary built from
// services/alerting/cmd/alerting, configured through the environment as
// main reads it (libs/launch.Platform's unprefixed names and the
// service's CANOPY_ALERTING_*), on a fresh database per start.
type Canopy struct {
	// Binary is the built service.
	Binary string
	// DSN is the MySQL server DSN without a database.
	DSN string
	// Brokers are the Kafka brokers (the bench's embedded one).
	Brokers []string
	// Secret is CANOPY_INTERNAL_SECRET; pushes and API calls are signed
	// with it as a platform-admin, the way the gateway signs them.
	Secret string
	// Env adds settings (e.g. CANOPY_ALERTING_DELIVERY_WORKERS).
	Env []string
}

// Name is the table's name of the target.
func (Canopy) Name() string { return "canopy" }

// benchPrincipal is who the bench is to the service.
var benchPrincipal = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:alertbench"}

// BuildCanopy builds cmd/alerting of the module at moduleDir into dir.
func BuildCanopy(ctx context.Context, moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "canopy-alerting-bench")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/alerting")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/alerting: %w: %s", err, out)
	}
	return bin, nil
}

// Start runs the service on a new database canopy_alertbench_<rand> and
// creates the platform receiver (same grouping and timers as
// Alertmanager's route) through its API.
func (c Canopy) Start(ctx context.Context, receiverURL string, t Timers) (Server, error) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	s := &canopyServer{c: c, db: "canopy_alertbench_" + hex.EncodeToString(rnd[:])}
	var err error
	if s.root, err = sql.Open("mysql", c.DSN); err != nil {
		return nil, fmt.Errorf("canopy: mysql: %w", err)
	}
	if s.addr, err = freePort(); err != nil {
		s.root.Close()
		return nil, err
	}
	env := append([]string{
		"CANOPY_ALERTING_ADDR=" + s.addr,
		"CANOPY_ALERTING_DATABASE=" + s.db,
		"CANOPY_ALERTING_ALLOW_PRIVATE_WEBHOOKS=true",
		"CANOPY_ALERTING_EXTERNAL_URL=http://127.0.0.1:8080",
		"CANOPY_MYSQL_DSN=" + c.DSN,
		"CANOPY_KAFKA_BROKERS=" + strings.Join(c.Brokers, ","),
		"CANOPY_INTERNAL_SECRET=" + c.Secret,
		"CANOPY_LOG_LEVEL=warn",
	}, c.Env...)
	if s.p, err = startProc(c.Binary, nil, env); err != nil {
		s.root.Close()
		return nil, err
	}
	if err := s.p.waitHTTP(ctx, "http://"+s.addr+"/readyz", 90*time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("canopy: %w", err)
	}
	if err := s.createReceiver(ctx, receiverURL, t); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// canopyServer is one running alerting service.
type canopyServer struct {
	c    Canopy
	p    *proc
	db   string
	addr string
	root *sql.DB
}

// receiverRequest is POST /api/v1/alert-receivers.
type receiverRequest struct {
	Name           string   `json:"name"`
	URL            string   `json:"url"`
	GroupBy        []string `json:"group_by"`
	GroupWait      string   `json:"group_wait"`
	GroupInterval  string   `json:"group_interval"`
	RepeatInterval string   `json:"repeat_interval"`
	SendResolved   bool     `json:"send_resolved"`
}

// createReceiver adds the platform receiver the alerts route to.
func (s *canopyServer) createReceiver(ctx context.Context, url string, t Timers) error {
	body, err := json.Marshal(receiverRequest{
		Name: "bench", URL: url, GroupBy: []string{"alertname", LabelGroup},
		GroupWait: t.GroupWait.String(), GroupInterval: t.GroupInterval.String(),
		RepeatInterval: t.RepeatInterval.String(), SendResolved: true,
	})
	if err != nil {
		return fmt.Errorf("canopy receiver: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.addr+"/api/v1/alert-receivers", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("canopy receiver: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	s.sign(req, body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("canopy receiver: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("canopy receiver: %s: %s", resp.Status, msg)
	}
	return nil
}

// sign signs a request as the bench's platform-admin.
func (s *canopyServer) sign(req *http.Request, body []byte) {
	tenancy.NewSigner([]byte(s.c.Secret)).SignRequest(req, body, tenancy.AudienceAlerting, benchPrincipal)
}

func (s *canopyServer) PushURL() string                              { return "http://" + s.addr + "/api/v2/alerts" }
func (s *canopyServer) Signer() func(req *http.Request, body []byte) { return s.sign }
func (s *canopyServer) LogTail() string                              { return s.p.log.tail() }

// CPU is the service's CPU and the MariaDB server's (all of its clients).
func (s *canopyServer) CPU() (float64, float64, error) {
	own, err := ProcCPU(s.p.cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	return own, mariadbCPU(s.root), nil
}

// Stop ends the service and drops its database.
func (s *canopyServer) Stop() {
	s.p.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = s.root.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+s.db+"`")
	s.root.Close()
}

// mariadbCPU is the CPU seconds of the MariaDB server behind db (0 when it
// runs elsewhere).
func mariadbCPU(db *sql.DB) float64 {
	var pidFile string
	if err := db.QueryRow("SELECT @@pid_file").Scan(&pidFile); err != nil {
		return 0
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(string(raw)), &pid); err != nil {
		return 0
	}
	cpu, _ := ProcCPU(pid)
	return cpu
}
