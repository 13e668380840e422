package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The alerting resources as a user reads them.

// webhookMessage is Alertmanager's webhook payload, version 4, as a
// receiver decodes it.
type webhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []webhookAlert    `json:"alerts"`
}

type webhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

type alertReceiver struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	URL           string   `json:"url"`
	HasSecret     bool     `json:"has_secret"`
	GroupBy       []string `json:"group_by"`
	GroupWait     string   `json:"group_wait"`
	GroupInterval string   `json:"group_interval"`
	SendResolved  bool     `json:"send_resolved"`
}

type apiAlert struct {
	Fingerprint string            `json:"fingerprint"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      *time.Time        `json:"endsAt"`
	Status      struct {
		State       string   `json:"state"`
		SilencedBy  []string `json:"silencedBy"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

type silence struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
	EndsAt time.Time `json:"endsAt"`
}

type itemList[T any] struct {
	Items []T `json:"items"`
}

// signatureTolerance is how old a signed timestamp a receiver accepts.
const signatureTolerance = 5 * time.Minute

// notificationTimeout bounds waiting for a notification once its cause is
// visible: group_wait (1s here) plus delivery, with room for a loaded
// machine.
const notificationTimeout = 60 * time.Second

var fingerprintRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// received is one notification as the receiver got it.
type received struct {
	Msg   webhookMessage
	SigOK error // nil when the signature verified
	At    time.Time
}

// webhookSink is a tenant's webhook receiver: it verifies the signature as
// docs/alerting.md tells receivers to, and keeps every notification.
type webhookSink struct {
	secret []byte
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	bad    []string // bodies that did not decode
}

func newWebhookSink(t *testing.T, secret string) *webhookSink {
	t.Helper()
	s := &webhookSink{secret: []byte(secret)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		verr := verifySignature(s.secret, r.Header.Get("X-Canopy-Timestamp"), r.Header.Get("X-Canopy-Signature"), body, time.Now())
		var m webhookMessage
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := json.Unmarshal(body, &m); err != nil {
			s.bad = append(s.bad, string(body))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.got = append(s.got, received{Msg: m, SigOK: verr, At: time.Now()})
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// verifySignature is what a receiver does: HMAC-SHA256 keyed by the
// receiver's secret over "<timestamp>.<body>", sent as "sha256=<hex>", the
// timestamp within the tolerance.
func verifySignature(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time) error {
	sec, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp header %q: %w", tsHeader, err)
	}
	if skew := now.Sub(time.Unix(sec, 0)).Abs(); skew > signatureTolerance {
		return fmt.Errorf("timestamp %d is %s off", sec, skew)
	}
	hexSig, ok := strings.CutPrefix(sigHeader, "sha256=")
	if !ok {
		return fmt.Errorf("signature header %q has no sha256= prefix", sigHeader)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("signature header: %w", err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(tsHeader + "."))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("signature does not match the body")
	}
	return nil
}

// all returns a copy of the notifications so far.
func (s *webhookSink) all() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// find returns the first notification with status whose alerts include
// one matching labels with alertStatus.
func (s *webhookSink) find(status, alertStatus string, labels map[string]string) (received, webhookAlert, bool) {
	for _, n := range s.all() {
		if n.Msg.Status != status {
			continue
		}
		for _, a := range n.Msg.Alerts {
			if a.Status == alertStatus && labelsMatch(a.Labels, labels) {
				return n, a, true
			}
		}
	}
	return received{}, webhookAlert{}, false
}

// summary describes what the sink got, for a timeout's message.
func (s *webhookSink) summary() string {
	var out []string
	for _, n := range s.all() {
		var as []string
		for _, a := range n.Msg.Alerts {
			as = append(as, a.Labels["alertname"]+"/"+a.Labels["node"]+"="+a.Status)
		}
		out = append(out, n.Msg.Status+"["+strings.Join(as, " ")+"]")
	}
	return fmt.Sprintf("%d notifications: %s", len(out), strings.Join(out, ", "))
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// waitNotification waits for a notification (status, with an alert of
// alertStatus matching labels) and checks its shape: webhook v4, signed.
func waitNotification(t *testing.T, s *webhookSink, what, status, alertStatus string, labels map[string]string) (received, webhookAlert) {
	t.Helper()
	var n received
	var a webhookAlert
	waitFor(t, what, notificationTimeout, func() (bool, string) {
		var ok bool
		n, a, ok = s.find(status, alertStatus, labels)
		return ok, s.summary()
	})
	if n.SigOK != nil {
		t.Fatalf("%s: signature does not verify: %v", what, n.SigOK)
	}
	m := n.Msg
	if m.Version != "4" || m.GroupKey == "" || m.Receiver == "" || m.ExternalURL == "" || len(m.Alerts) == 0 {
		t.Fatalf("%s: not a webhook v4 message: version %q, groupKey %q, receiver %q, externalURL %q, %d alerts",
			what, m.Version, m.GroupKey, m.Receiver, m.ExternalURL, len(m.Alerts))
	}
	if !fingerprintRE.MatchString(a.Fingerprint) {
		t.Fatalf("%s: fingerprint %q is not 16 hex digits", what, a.Fingerprint)
	}
	if a.StartsAt.IsZero() {
		t.Fatalf("%s: alert without startsAt", what)
	}
	if alertStatus == "firing" && !a.EndsAt.IsZero() && a.EndsAt.Year() > 1 {
		t.Fatalf("%s: firing alert with endsAt %v (Alertmanager sends the zero time)", what, a.EndsAt)
	}
	if alertStatus == "resolved" && !a.EndsAt.After(a.StartsAt) {
		t.Fatalf("%s: resolved alert ends %v, not after it started %v", what, a.EndsAt, a.StartsAt)
	}
	return n, a
}

// TestScenarioAlerting: a tenant adds a signed webhook receiver and orders a
// MySQL HA instance; one replica hangs and is then killed (kill -9). The
// health checker reports it down, the default NodeDown rule fires and the
// receiver gets a webhook v4 notification whose HMAC verifies. A silence
// mutes the alert (silencedBy shows it); the silence is expired, the
// platform restarts the killed node, and the receiver gets the resolved
// notification. A Prometheus-style alert pushed to /api/v2/alerts is
// listed with the tenant's label. Another tenant sees none of it and its
// receiver gets nothing.
//
// The replica is hung (SIGSTOP) before it is killed: a process killed
// outright is restarted by the driver's supervisor within about a second,
// which can be quicker than the health checker's fall threshold, so the
// alert would depend on a race. A hung node is down for as long as the
// test needs; killing it then is the crash the platform heals.
func TestScenarioAlerting(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	start := time.Now()
	before := admin.allocation()
	acmeID, otherID := "alerts-"+randHex(3), "quiet-"+randHex(3)
	acme := p.newTenant(t, acmeID, "tenant-admin")
	other := p.newTenant(t, otherID, "tenant-admin")

	// 1. Receivers: a short group_wait and group_interval, so the test does
	//    not wait Alertmanager's 30s and 5m.
	sink := newWebhookSink(t, "acme-webhook-secret")
	otherSink := newWebhookSink(t, "other-webhook-secret")
	var rc alertReceiver
	status, body, err := acme.do("POST", "/api/v1/alert-receivers", map[string]any{"name": "oncall", "url": sink.srv.URL,
		"secret": "acme-webhook-secret", "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h", "send_resolved": true})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create receiver: %d %s %v", status, body, err)
	}
	if err := json.Unmarshal(body, &rc); err != nil {
		t.Fatal(err)
	}
	if !rc.HasSecret || strings.Contains(string(body), "acme-webhook-secret") {
		t.Fatalf("receiver answer must say has_secret and never show the secret: %s", body)
	}
	other.must("POST", "/api/v1/alert-receivers", map[string]any{"name": "oncall", "url": otherSink.srv.URL,
		"secret": "other-webhook-secret", "group_wait": "1s", "group_interval": "2s"}, http.StatusCreated, nil)
	t.Cleanup(func() { _ = acme.call("DELETE", "/api/v1/alert-receivers/"+rc.ID, nil, http.StatusNoContent, nil) })

	// 2. A MySQL HA instance, every node up.
	var acc instanceAccepted
	acme.must("POST", "/api/v1/instances", map[string]any{"name": "db", "plan_id": acme.planID("mysql-ha-multi-az")}, http.StatusAccepted, &acc)
	id := acc.Instance.ID
	t.Cleanup(func() { bestEffortDelete(t, admin, id) })
	waitOperation(t, acme, acc.OperationID, readyTimeout)
	var inst instance
	acme.must("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst)
	waitAllUp(t, acme, inst)
	var victim string
	for _, n := range inst.Nodes {
		if n.Role == "replica" {
			victim = n.ID
			break
		}
	}
	pid := nodePID(p.StateDir, victim)
	if pid == 0 {
		t.Fatalf("no process works in the directory of node %s of %s", victim, id)
	}

	// 3. The replica hangs: down, NodeDown fires, the receiver is told.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("stop node %s (pid %d): %v", victim, pid, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	t0 := time.Now()
	nodeDown := map[string]string{"alertname": "NodeDown", "instance": id, "node": victim, "tenant": acmeID, "severity": "critical"}
	fired, firing := waitNotification(t, sink, "a firing NodeDown notification for node "+victim, "firing", "firing", nodeDown)
	t.Logf("NodeDown notified %.2fs after the replica hung (groupKey %s)", time.Since(t0).Seconds(), fired.Msg.GroupKey)
	if fired.Msg.Receiver != "oncall" || fired.Msg.CommonLabels["tenant"] != acmeID {
		t.Fatalf("firing notification: receiver %q, common labels %v", fired.Msg.Receiver, fired.Msg.CommonLabels)
	}
	if firing.Annotations["summary"] == "" {
		t.Fatalf("NodeDown without a summary: %v", firing.Annotations)
	}
	if firing.Labels["az"] == "" || firing.Labels["region"] == "" {
		t.Fatalf("NodeDown without the node's az and region (to route and silence by zone): %v", firing.Labels)
	}
	var listed itemList[apiAlert]
	acme.must("GET", "/api/v1/alerts?state=firing&filter="+url.QueryEscape(`alertname="NodeDown"`), nil, http.StatusOK, &listed)
	if !slices.ContainsFunc(listed.Items, func(a apiAlert) bool { return a.Fingerprint == firing.Fingerprint }) {
		t.Fatalf("the firing alert %s is not listed: %+v", firing.Fingerprint, listed.Items)
	}

	// 4. A silence mutes it: the alert names the silence in silencedBy.
	var sil silence
	acme.must("POST", "/api/v1/silences", map[string]any{
		"matchers": []map[string]any{{"name": "alertname", "value": "NodeDown", "isRegex": false},
			{"name": "node", "value": victim, "isRegex": false}},
		"startsAt": time.Now().UTC(), "endsAt": time.Now().Add(time.Hour).UTC(), "createdBy": "e2e", "comment": "replica maintenance",
	}, http.StatusCreated, &sil)
	if sil.ID == "" || sil.Status.State != "active" {
		t.Fatalf("silence: %+v", sil)
	}
	waitFor(t, "the alert to show it is silenced by "+sil.ID, 15*time.Second, func() (bool, string) {
		var a apiAlert
		if err := acme.call("GET", "/api/v1/alerts/"+firing.Fingerprint, nil, http.StatusOK, &a); err != nil {
			return false, err.Error()
		}
		return slices.Contains(a.Status.SilencedBy, sil.ID), fmt.Sprintf("state %s, silencedBy %v", a.Status.State, a.Status.SilencedBy)
	})

	// 5. The silence ends (a resolved alert under an active silence is
	//    muted too), then the node is killed and the platform restarts it:
	//    up again, NodeDown resolves and the receiver is told.
	var expired silence
	acme.must("DELETE", "/api/v1/silences/"+sil.ID, nil, http.StatusOK, &expired)
	if expired.Status.State != "expired" {
		t.Fatalf("expired silence: %+v", expired)
	}
	waitFor(t, "the alert to be unsilenced", 15*time.Second, func() (bool, string) {
		var a apiAlert
		if err := acme.call("GET", "/api/v1/alerts/"+firing.Fingerprint, nil, http.StatusOK, &a); err != nil {
			return false, err.Error()
		}
		return len(a.Status.SilencedBy) == 0, fmt.Sprintf("silencedBy %v", a.Status.SilencedBy)
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill node %s (pid %d): %v", victim, pid, err)
	}
	t0 = time.Now()
	waitFor(t, "a new process for node "+victim+" after kill -9", healthTimeout, func() (bool, string) {
		np := nodePID(p.StateDir, victim)
		return np != 0 && np != pid, fmt.Sprintf("pid %d", np)
	})
	waitHealth(t, acme, inst, victim, "up")
	res, resolved := waitNotification(t, sink, "a resolved NodeDown notification for node "+victim, "resolved", "resolved", nodeDown)
	t.Logf("NodeDown resolved and notified %.2fs after kill -9", time.Since(t0).Seconds())
	if resolved.Fingerprint != firing.Fingerprint || !resolved.StartsAt.Equal(firing.StartsAt) {
		t.Fatalf("resolved alert %s (started %v) is not the one that fired, %s (started %v)",
			resolved.Fingerprint, resolved.StartsAt, firing.Fingerprint, firing.StartsAt)
	}
	if res.Msg.GroupKey != fired.Msg.GroupKey {
		t.Fatalf("resolved in group %q, fired in %q", res.Msg.GroupKey, fired.Msg.GroupKey)
	}

	// 6. Prometheus pushes an alert as it does to an Alertmanager: 200, and
	//    it is listed as the tenant's (the tenant label is the caller's,
	//    whatever the push said).
	pushed := []map[string]any{{
		"labels":      map[string]string{"alertname": "DiskAlmostFull", "severity": "warning", "job": "node", "tenant": otherID},
		"annotations": map[string]string{"summary": "disk 91% full"},
		"startsAt":    time.Now().UTC().Format(time.RFC3339), "generatorURL": "http://prometheus.example/graph?g0.expr=disk",
	}}
	if status, body, err := acme.do("POST", "/api/v2/alerts", pushed); err != nil || status != http.StatusOK {
		t.Fatalf("push: %d %s %v", status, body, err)
	}
	waitFor(t, "the pushed alert to be listed", 15*time.Second, func() (bool, string) {
		var l itemList[apiAlert]
		if err := acme.call("GET", "/api/v1/alerts?filter="+url.QueryEscape(`alertname="DiskAlmostFull"`), nil, http.StatusOK, &l); err != nil {
			return false, err.Error()
		}
		for _, a := range l.Items {
			if a.Labels["tenant"] == acmeID && a.Labels["job"] == "node" && a.Status.State == "firing" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", l.Items)
	})
	waitNotification(t, sink, "a notification of the pushed alert", "firing", "firing",
		map[string]string{"alertname": "DiskAlmostFull", "tenant": acmeID})

	// 7. The other tenant sees none of it: no alert, no silence, no
	//    receiver of acme's, 404 on acme's alert, nothing delivered.
	var theirs itemList[apiAlert]
	other.must("GET", "/api/v1/alerts", nil, http.StatusOK, &theirs)
	for _, a := range theirs.Items {
		if a.Labels["tenant"] != otherID {
			t.Errorf("tenant %s sees an alert of %q: %v", otherID, a.Labels["tenant"], a.Labels)
		}
	}
	other.mustProblem("GET", "/api/v1/alerts/"+firing.Fingerprint, nil, http.StatusNotFound)
	other.mustProblem("GET", "/api/v1/silences/"+sil.ID, nil, http.StatusNotFound)
	other.mustProblem("GET", "/api/v1/alert-receivers/"+rc.ID, nil, http.StatusNotFound)
	var theirSilences itemList[silence]
	other.must("GET", "/api/v1/silences", nil, http.StatusOK, &theirSilences)
	if len(theirSilences.Items) != 0 {
		t.Errorf("tenant %s sees silences: %+v", otherID, theirSilences.Items)
	}
	if got := otherSink.all(); len(got) != 0 {
		t.Errorf("the other tenant's receiver got %d notifications: %s", len(got), otherSink.summary())
	}
	for _, n := range sink.all() {
		if n.SigOK != nil {
			t.Errorf("a notification's signature does not verify: %v", n.SigOK)
		}
		for _, a := range n.Msg.Alerts {
			if a.Labels["tenant"] != acmeID {
				t.Errorf("acme's receiver got an alert of %q: %v", a.Labels["tenant"], a.Labels)
			}
		}
	}

	acme.must("DELETE", "/api/v1/instances/"+id, nil, http.StatusAccepted, &acc)
	waitOperation(t, acme, acc.OperationID, deleteTimeout)
	checkNothingLeft(t, p, acme, admin, before, []instance{inst})
	t.Logf("scenario total %.2fs", time.Since(start).Seconds())
}
