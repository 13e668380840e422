package alertbench

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// TestLoadBodyReachesReceiver: a push body as the load writes it, wrapped
// into a webhook v4 payload the way a server would, is recorded per alert
// once; repeats and other runs' alerts are counted apart.
func TestLoadBodyReachesReceiver(t *testing.T) {
	rcv, err := StartReceiver(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rcv.Close() })
	run := rcv.NewRun("r1", 10)

	var buf bytes.Buffer
	start := time.Now()
	Load{Groups: 100, GroupWait: time.Second}.body(&buf, "r1", batch{0, 3}, start, start)
	var pushed []struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
	}
	if err := json.Unmarshal(buf.Bytes(), &pushed); err != nil {
		t.Fatalf("push body is not an Alertmanager v2 alert array: %v\n%s", err, buf.Bytes())
	}
	if len(pushed) != 3 || pushed[1].Labels[LabelGroup] != "w0-g1" || pushed[1].Labels[LabelAlertID] != "1" {
		t.Fatalf("pushed %+v", pushed)
	}

	type alert struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	}
	alerts := []alert{
		{"firing", pushed[0].Labels}, {"firing", pushed[1].Labels}, {"firing", pushed[1].Labels},
		{"resolved", pushed[2].Labels},
		{"firing", map[string]string{LabelRun: "other", LabelAlertID: "2"}},
	}
	body, _ := json.Marshal(map[string]any{"version": "4", "alerts": alerts})
	resp, err := http.Post(rcv.URL(), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("receiver answered %s", resp.Status)
	}
	if got := run.Delivered(); got != 2 {
		t.Errorf("delivered %d, want 2 (alerts 0 and 1; 2 only resolved)", got)
	}
	if got := run.repeats.Load(); got != 1 {
		t.Errorf("repeats %d, want 1", got)
	}
	if ok, bad := rcv.Posts(); ok != 1 || bad != 0 {
		t.Errorf("posts ok %d bad %d", ok, bad)
	}
}

func TestProcCPU(t *testing.T) {
	if _, err := ProcCPU(1); err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if _, err := ProcCPU(-1); err == nil {
		t.Fatal("no error for a missing process")
	}
}
