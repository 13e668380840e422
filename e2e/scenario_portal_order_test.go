package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/redis/go-redis/v9"
)

// The tenant's core flow in the portal: the catalog and its order form,
// the instance page with live progress, bindings and delete, and what a
// viewer and another tenant see.

// portalSignIn opens the portal at hash (a deep link), signs in with key
// and waits for the element sel of the page the link names.
func (b *browser) portalSignIn(baseURL, hash, key, sel string) {
	b.t.Helper()
	b.run("open "+hash, chromedp.Navigate(baseURL+"/"+hash), chromedp.WaitVisible(chromedp.ID("api-key")))
	b.run("sign in for "+hash,
		chromedp.SendKeys(chromedp.ID("api-key"), key),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(sel)))
}

// portalSignOut signs out and waits for the sign-in form.
func (b *browser) portalSignOut() {
	b.t.Helper()
	b.run("sign out",
		chromedp.Click(chromedp.Search(`//button[normalize-space()="Sign out"]`)),
		chromedp.WaitVisible(chromedp.ID("api-key")))
}

// pollPage waits up to timeout for the JavaScript expression to be truthy
// in the page (steps longer than browserStep, such as an instance coming
// up); on failure it saves a screenshot and reports status, an expression
// describing what the page shows.
func (b *browser) pollPage(step, expr, status string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+browserStep)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		b.screenshot("failed-" + step)
		seen := eval[string](b, "describe the page after "+step, status)
		b.t.Fatalf("browser: %s: %v; the page shows: %s", step, err, seen)
	}
}

// setInput replaces an input's value the way typing does (the native value
// setter and an input event, which the page's controlled inputs listen to).
func (b *browser) setInput(sel, value string) {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	v, _ := json.Marshal(value)
	eval[bool](b, "set "+sel, fmt.Sprintf(`(() => { const el = document.querySelector(%s);
		Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, %s);
		el.dispatchEvent(new Event('input', { bubbles: true })); return true; })()`, q, v))
}

// pressButton activates a button with the keyboard (focus, Enter), as a
// keyboard user does. The instance page's buttons are pressed this way: on
// that tall page a mouse click from chromedp can miss, Chromium moving the
// content between the button's mousedown and mouseup (seen: the mouseup
// landed on the endpoints above, so no click).
func pressButton[S chromedp.Selectable](sel S) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.Focus(sel), chromedp.KeyEvent(kb.Enter))
}

// docImage saves what the window shows, from the top of the page, as
// docs/img/<name> when $CANOPY_UPDATE_DOC_IMAGES is set (so a plain run
// leaves the repository clean); the window, not the whole page, keeps the
// images small.
func (b *browser) docImage(name string) {
	b.t.Helper()
	if os.Getenv("CANOPY_UPDATE_DOC_IMAGES") == "" {
		return
	}
	eval[bool](b, "scroll to the top", `(() => { scrollTo(0, 0); return true; })()`)
	png := get(b, "take "+name, chromedp.CaptureScreenshot())
	dir := filepath.Join(repoRoot(b.t), "docs", "img")
	err := os.MkdirAll(dir, 0o755)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name), png, 0o644)
	}
	if err != nil {
		b.t.Logf("docs image %s: %v", name, err)
	}
}

// TestScenarioPortalOrderRedis: a tenant signs in, orders a single-az Redis
// through the catalog's form, watches the instance page's progress reach
// ready without a reload, creates a binding, connects with the credentials
// the page shows (PING, SET/GET) and deletes the instance through the
// confirmation dialog.
func TestScenarioPortalOrderRedis(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	tenantID := "ptorder-" + randHex(3)
	tenant := p.newTenant(t, tenantID, "tenant-admin")
	b := newBrowser(t)

	const plan = `article[data-plan="redis-dev-single-az"]`
	b.portalSignIn(p.URL, "#/catalog", tenant.key, plan)
	card := b.textOf("read the redis plan", plan)
	for _, want := range []string{"Redis Dev (single AZ)", "1 node in 1 zone", "0.5 vCPU", "per node-hour", "Order"} {
		if !strings.Contains(card, want) {
			t.Errorf("the redis-dev-single-az card shows %q, want %q in it", card, want)
		}
	}
	if modes := eval[[]string](b, "read the deployment modes", `[...document.querySelectorAll('section.mode h2')].map((h) => h.id)`); len(modes) != 3 {
		t.Errorf("the catalog groups plans under %v, want the three deployment modes", modes)
	}
	b.screenshot("catalog")
	checkA11y(t, b.ctx, "catalog")
	b.docImage("portal-catalog.png")

	b.run("open the order form",
		chromedp.Click(chromedp.CSS(plan+` a.button`)),
		chromedp.WaitVisible(chromedp.ID("order-name")),
		chromedp.WaitVisible(chromedp.ID("param-maxmemory-policy")))
	// The parameter inputs come from the plan's JSON Schema, with defaults.
	if v := get(b, "read the maxmemory-policy default", chromedp.Value(chromedp.ID("param-maxmemory-policy"))); v != "noeviction" {
		t.Errorf("maxmemory-policy starts at %q, want the schema's default noeviction", v)
	}
	if v := get(b, "read the timeout default", chromedp.Value(chromedp.ID("param-timeout"))); v != "0" {
		t.Errorf("timeout starts at %q, want the schema's default 0", v)
	}
	b.screenshot("order-form")
	checkA11y(t, b.ctx, "order-form")
	checkKeyboard(t, b.ctx, "order-form", mainNav, "#order-name", "#param-maxmemory-policy")

	// A marker a reload would lose: the page must update itself.
	eval[bool](b, "mark the page", `window.canopyNoReload = true`)
	name := "cache-" + randHex(2)
	b.run("order",
		chromedp.SendKeys(chromedp.ID("order-name"), name),
		chromedp.Click(chromedp.CSS(`.order-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="instance"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="operation"]`)))
	hash := eval[string](b, "read the instance's address", `location.hash`)
	id := strings.TrimPrefix(hash, "#/instances/")
	if id == hash || id == "" {
		t.Fatalf("after the order the page is at %q, want #/instances/<id>", hash)
	}
	t.Cleanup(func() { bestEffortDelete(t, admin, id) })
	first := eval[string](b, "read the first state", `document.querySelector('[data-testid="instance"]').dataset.state`)
	b.screenshot("instance-progress")
	// Record every step the page marks as current while it comes up.
	eval[bool](b, "watch the steps", `(() => { window.canopySteps = [];
		const note = () => document.querySelectorAll('[data-testid="steps"] [data-status="current"]').forEach((li) => {
			if (!window.canopySteps.includes(li.dataset.step)) window.canopySteps.push(li.dataset.step); });
		note(); new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true }); return true; })()`)

	const state = `JSON.stringify({hash: location.hash, instance: document.querySelector('[data-testid="instance"]')?.dataset.state,
		operation: document.querySelector('[data-testid="operation"]')?.dataset.state, problem: document.querySelector('.problem')?.innerText})`
	b.pollPage("watch the instance come up",
		`document.querySelector('[data-testid="instance"]')?.dataset.state === 'ready' && document.querySelector('[data-testid="operation"]')?.dataset.state === 'succeeded'`,
		state, readyTimeout)
	if !eval[bool](b, "check the page was not reloaded", `window.canopyNoReload === true`) {
		t.Fatal("the instance page reloaded itself on the way to ready; it must update in place")
	}
	steps := eval[[]string](b, "read the steps seen", `window.canopySteps`)
	t.Logf("the page first showed the instance %s, then marked these steps current: %v", first, steps)
	if first != "provisioning" {
		t.Errorf("the instance page first showed state %q, want provisioning (the order had just been accepted)", first)
	}
	if done := eval[int](b, "count the steps done", `document.querySelectorAll('[data-testid="steps"] [data-status="done"]').length`); done < 5 {
		t.Errorf("a succeeded create shows %d steps done, want placing, creating, replicating, verifying and ready", done)
	}
	// Live health: the node's probe reaches up without a reload.
	b.pollPage("see the node healthy", `document.querySelector('[data-testid="node-health"] .badge-ok') !== null`, state, healthTimeout)
	nodes := b.textOf("read the nodes", `table[data-testid="nodes"] tbody`)
	var inst instance
	tenant.must("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst)
	if len(inst.Nodes) != 1 || !strings.Contains(nodes, "primary") || !strings.Contains(nodes, inst.Nodes[0].Address) || !strings.Contains(nodes, inst.Nodes[0].AZ) {
		t.Errorf("the nodes table shows %q, want the primary with its AZ and address (%+v)", nodes, inst.Nodes)
	}
	b.screenshot("instance-ready")
	checkA11y(t, b.ctx, "instance")
	b.docImage("portal-instance.png")

	// A binding: the credentials are shown once, with a redis-cli command.
	b.run("create a binding",
		chromedp.SendKeys(chromedp.ID("binding-name"), "app"),
		chromedp.Click(chromedp.Search(`//button[normalize-space()="Create binding"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="credentials"]`)))
	host := b.textOf("read the host", `[data-testid="cred-host"]`)
	port := b.textOf("read the port", `[data-testid="cred-port"]`)
	user := b.textOf("read the username", `[data-testid="cred-username"]`)
	password := b.textOf("read the password", `[data-testid="cred-password"]`)
	command := b.textOf("read the command", `[data-testid="cred-command"]`)
	b.screenshot("binding-credentials")
	checkA11y(t, b.ctx, "binding-credentials")
	if want := fmt.Sprintf("redis-cli -h %s -p %s --user '%s' --pass '%s'", host, port, user, password); command != want {
		t.Errorf("the command shown is %q, want %q", command, want)
	}
	if _, err := strconv.Atoi(port); err != nil || host == "" || user == "" || len(password) < 16 {
		t.Fatalf("incomplete credentials on the page: host %q port %q user %q password of %d characters", host, port, user, len(password))
	}

	ctx, cancel := context.WithTimeout(context.Background(), replicaTimeout)
	defer cancel()
	rc := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(host, port), Username: user, Password: password,
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, MaxRetries: -1, PoolSize: 1})
	defer rc.Close()
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING %s:%s as %s with the page's credentials: %v", host, port, user, err)
	}
	token := "portal-" + randHex(6)
	if err := rc.Set(ctx, "portal:key", token, 0).Err(); err != nil {
		t.Fatalf("SET with the page's credentials: %v", err)
	}
	if got, err := rc.Get(ctx, "portal:key").Result(); err != nil || got != token {
		t.Fatalf("GET with the page's credentials: %q %v, want %q", got, err, token)
	}
	rc.Close()

	// Shown once: after dismissing them, and after a reload, no password.
	b.run("dismiss the credentials", pressButton(chromedp.CSS(`[data-testid="credentials"] > button`)),
		chromedp.WaitNotPresent(chromedp.CSS(`[data-testid="credentials"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table[data-testid="bindings"] tr[data-binding="app"]`)))
	b.run("reload the instance page", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`tr[data-binding="app"]`)))
	if eval[bool](b, "look for the password", fmt.Sprintf(`document.body.innerText.includes(%q)`, password)) {
		t.Error("the password is still on the page after the credentials were dismissed and the page reloaded")
	}

	// Delete: the dialog's button stays disabled until the name is typed.
	b.run("open the delete dialog",
		pressButton(chromedp.Search(`//main//button[normalize-space()="Delete instance"]`)),
		chromedp.WaitVisible(chromedp.ID("delete-confirm")))
	const confirm = `dialog[data-testid="delete-dialog"] button[type="submit"]`
	if !eval[bool](b, "check the delete button waits for the name", fmt.Sprintf(`document.querySelector(%q).disabled`, confirm)) {
		t.Error("the dialog's delete button is enabled before the instance's name is typed")
	}
	b.run("type a wrong name", chromedp.SendKeys(chromedp.ID("delete-confirm"), name[:len(name)-1]))
	if !eval[bool](b, "check the delete button refuses a wrong name", fmt.Sprintf(`document.querySelector(%q).disabled`, confirm)) {
		t.Error("the dialog's delete button is enabled with a wrong name typed")
	}
	b.run("confirm the delete",
		chromedp.SendKeys(chromedp.ID("delete-confirm"), name[len(name)-1:]),
		chromedp.WaitEnabled(chromedp.CSS(confirm)))
	b.screenshot("delete-dialog")
	checkA11y(t, b.ctx, "delete-dialog")
	b.run("delete", pressButton(chromedp.CSS(confirm)))
	b.pollPage("watch the instance go", `document.querySelector('[data-testid="deleted"]') !== null`, state, deleteTimeout)
	b.screenshot("instance-deleted")
	b.run("open the instances list", chromedp.Navigate(p.URL+"/#/instances"),
		chromedp.WaitVisible(chromedp.ID("instances-title")), chromedp.WaitVisible(chromedp.CSS(`.empty, table[data-testid="instances"]`)))
	if list := b.textOf("read the instances list", "main"); strings.Contains(list, name) {
		t.Errorf("the deleted instance %s is still listed: %q", name, list)
	}
	tenant.must("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst)
	if inst.State != "deleted" {
		t.Errorf("instance %s after the portal's delete: state %q, want deleted", id, inst.State)
	}
}

// TestScenarioPortalFormError: a parameter value the API refuses shows the
// API's own field message under that field, and the problem's detail above
// the form; nothing is ordered.
//
// The order form is novalidate and leaves ranges and patterns to the API
// (they are shown as hints): the message under the field is the API's, one
// wording for the portal, the CLI and the OSB. So an out-of-range timeout
// reaches the server, which refuses it against the plan's JSON Schema.
func TestScenarioPortalFormError(t *testing.T) {
	p := platformFor(t)
	tenantID := "ptform-" + randHex(3)
	tenant := p.newTenant(t, tenantID, "tenant-member")
	planID := tenant.planID("redis-dev-single-az")
	b := newBrowser(t)

	b.portalSignIn(p.URL, "#/catalog?plan="+planID, tenant.key, "#param-timeout")
	name := "form-" + randHex(2)
	b.run("fill the order", chromedp.SendKeys(chromedp.ID("order-name"), name))
	b.setInput("#param-timeout", "999999")
	b.run("order with a timeout out of range",
		chromedp.Click(chromedp.CSS(`.order-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("param-timeout-error")))

	// The same order through the API: the page must show its words.
	prob := tenant.mustProblem("POST", "/api/v1/instances", map[string]any{"name": name, "plan_id": planID,
		"parameters": map[string]any{"timeout": 999999}}, http.StatusUnprocessableEntity)
	reason := ""
	for _, e := range prob.Errors {
		if e.Field == "parameters.timeout" {
			reason = e.Reason
		}
	}
	if reason == "" {
		t.Fatalf("the API names no parameters.timeout in %+v", prob)
	}
	if got := b.textOf("read the field's error", "#param-timeout-error"); got != reason {
		t.Errorf("under the timeout field the page shows %q, want the API's reason %q", got, reason)
	}
	if top := b.textOf("read the order's problem", ".order-form .problem"); !strings.Contains(top, prob.Detail) {
		t.Errorf("above the form the page shows %q, want the problem's detail %q", top, prob.Detail)
	}
	if inv := get(b, "read aria-invalid", chromedp.AttributeValue(chromedp.ID("param-timeout"), "aria-invalid")); inv.Value != "true" {
		t.Errorf("the timeout input has aria-invalid %+v, want true", inv)
	}
	if focused := eval[string](b, "read the focused element", `document.activeElement.id`); focused != "param-timeout" {
		t.Errorf("after the refusal the focus is on %q, want the field the API named (param-timeout)", focused)
	}
	b.screenshot("order-form-error")
	checkA11y(t, b.ctx, "order-form-error")

	// A name the API refuses moves the message to the name; the timeout's goes.
	b.setInput("#param-timeout", "300")
	b.setInput("#order-name", "Not_A_Name")
	b.run("order with a bad name",
		chromedp.Click(chromedp.CSS(`.order-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("order-name-error")),
		chromedp.WaitNotPresent(chromedp.ID("param-timeout-error")))
	if got := b.textOf("read the name's error", "#order-name-error"); got == "" {
		t.Error("no message under the name field")
	}
	var list struct {
		Items []instance `json:"items"`
	}
	tenant.must("GET", "/api/v1/instances", nil, http.StatusOK, &list)
	if len(list.Items) != 0 {
		t.Errorf("refused orders left instances: %+v", list.Items)
	}
}

// TestScenarioPortalViewer: a tenant-viewer sees an instance's page with
// its nodes and bindings but no control that would change anything (and
// no order buttons in the catalog); a user of another tenant opening the
// same instance's address sees "Instance not found".
func TestScenarioPortalViewer(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	suffix := randHex(3)
	owner := p.newTenant(t, "ptview-"+suffix, "tenant-admin")
	viewer := p.newKey(t, "ptview-"+suffix, "tenant-viewer")
	other := p.newTenant(t, "ptother-"+suffix, "tenant-admin")

	var acc instanceAccepted
	owner.must("POST", "/api/v1/instances", map[string]any{"name": "viewed", "plan_id": owner.planID("redis-dev-single-az")}, http.StatusAccepted, &acc)
	id := acc.Instance.ID
	t.Cleanup(func() { bestEffortDelete(t, admin, id) })
	waitOperation(t, owner, acc.OperationID, readyTimeout)
	owner.must("POST", "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "app"}, http.StatusCreated, nil)

	b := newBrowser(t)
	b.portalSignIn(p.URL, "#/instances/"+id, viewer.key, `tr[data-binding="app"]`)
	b.run("wait for the nodes", chromedp.WaitVisible(chromedp.CSS(`table[data-testid="nodes"]`)))
	if who := b.textOf("read who is signed in", `[data-testid="who"]`); !strings.Contains(who, "tenant-viewer") {
		t.Fatalf("signed in as %q, want a tenant-viewer", who)
	}
	// Every button left in the page is a copy button; no form inputs.
	buttons := eval[[]string](b, "list the buttons", `[...document.querySelectorAll('main button, main a.button')].map((x) => x.textContent.trim())`)
	for _, label := range buttons {
		if label != "Copy" {
			t.Errorf("a viewer sees the button %q on the instance page (buttons: %v)", label, buttons)
		}
	}
	for _, sel := range []string{"#binding-name", `dialog[data-testid="delete-dialog"]`, ".row-actions"} {
		if eval[bool](b, "look for "+sel, fmt.Sprintf(`document.querySelector(%q) !== null`, sel)) {
			t.Errorf("a viewer's instance page has %s", sel)
		}
	}
	b.screenshot("viewer-instance")

	b.run("open the catalog", chromedp.Navigate(p.URL+"/#/catalog"), chromedp.WaitVisible(chromedp.CSS(`article[data-plan="redis-dev-single-az"]`)))
	if n := eval[int](b, "count the order buttons", `document.querySelectorAll('main a.button, main button').length`); n != 0 {
		t.Errorf("a viewer sees %d order buttons in the catalog", n)
	}
	b.run("open the instances list", chromedp.Navigate(p.URL+"/#/instances"), chromedp.WaitVisible(chromedp.CSS(`table[data-testid="instances"]`)))
	if eval[bool](b, "look for the order link", `[...document.querySelectorAll('main a')].some((a) => a.textContent.includes('Order'))`) {
		t.Error("a viewer sees an order link on the instances page")
	}
	b.run("follow the instance's link", chromedp.Click(chromedp.Search(`//table[@data-testid="instances"]//a[normalize-space()="viewed"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="instance"]`)))

	// Another tenant: the same address is not found.
	b.portalSignOut()
	b.run("sign in as another tenant",
		chromedp.Navigate(p.URL+"/#/instances/"+id),
		chromedp.WaitVisible(chromedp.ID("api-key")),
		chromedp.SendKeys(chromedp.ID("api-key"), other.key),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".empty h2")))
	if got := b.textOf("read the not-found page", ".empty h2"); got != "Instance not found" {
		t.Errorf("another tenant opening %s sees %q, want Instance not found", id, got)
	}
	if eval[bool](b, "look for the instance's name", `document.querySelector('main').innerText.includes('viewed')`) {
		t.Error("another tenant's not-found page shows the instance's name")
	}
	b.screenshot("other-tenant-not-found")
}
