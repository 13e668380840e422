package e2e

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestScenarioPortalOperator: the platform admin, in a real browser, creates
// a tenant and a key for it on the tenants pages (the key, read from the
// page where it is shown once, works against the API; the quota and rate
// limit saved there are the API's; revoking there ends the key), cordons and
// uncordons a host on the inventory map (the API agrees each time; the
// inventory is left as found), and the placement simulator explains a
// refusal; the fleet, broker credential and audit pages show what exists.
func TestScenarioPortalOperator(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	b := newBrowser(t)

	b.run("sign in as the platform admin",
		chromedp.Navigate(p.URL+"/#/tenants"),
		chromedp.WaitVisible(chromedp.ID("api-key")),
		chromedp.SendKeys(chromedp.ID("api-key"), p.AdminKey),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("tenants-title")),
		chromedp.WaitVisible(chromedp.CSS(`table[data-testid="tenants"], .empty`)))
	for _, nav := range []string{"Fleet", "Tenants", "Inventory", "Simulator", "Brokers", "Audit"} {
		b.run("find "+nav+" in the navigation", chromedp.WaitVisible(chromedp.Search(`//nav//a[normalize-space()="`+nav+`"]`)))
	}

	// A tenant, then a key for it: shown once, and it works.
	tenantID := "portal-op-" + randHex(3)
	b.run("create a tenant",
		chromedp.SendKeys(chromedp.ID("tenant-id"), tenantID),
		chromedp.SendKeys(chromedp.ID("tenant-name"), "Portal operator "+tenantID),
		chromedp.Click(chromedp.Search(`//button[normalize-space()="Create tenant"]`)),
		chromedp.WaitVisible(chromedp.ID("tenant-title")),
		chromedp.WaitVisible(chromedp.ID("quota-max_instances")),
		chromedp.WaitVisible(chromedp.ID("rate-requests_per_second")))
	if h := b.textOf("read the tenant page's title", "#tenant-title"); !strings.Contains(h, tenantID) {
		t.Fatalf("the tenant page's title is %q, want the new tenant %s", h, tenantID)
	}
	admin.must("GET", "/api/v1/tenants/"+tenantID, nil, http.StatusOK, nil)
	b.run("create a key for the tenant",
		chromedp.SendKeys(chromedp.ID("key-name"), "portal-e2e"),
		selectOption("#key-role", "tenant-member"),
		chromedp.Click(chromedp.Search(`//button[normalize-space()="Create key"]`)),
		chromedp.WaitVisible(chromedp.ID("new-key-value")),
		chromedp.WaitVisible(chromedp.CSS(`table[data-testid="keys"]`)))
	key := get(b, "read the shown key", chromedp.Value(chromedp.ID("new-key-value")))
	if !strings.HasPrefix(key, "cnp_") {
		t.Fatalf("the page shows the new key as %q, want a cnp_ key", key)
	}
	if row := b.textOf("read the keys table", `table[data-testid="keys"] tbody`); !strings.Contains(row, "portal-e2e") || !strings.Contains(row, "tenant-member") {
		t.Fatalf("the keys table shows %q, want the new key with its role", row)
	}
	b.screenshot("tenant")
	checkA11y(t, b.ctx, "tenant")
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	p.client(t, key).must("GET", "/api/v1/instances", nil, http.StatusOK, &list)
	if len(list.Items) != 0 {
		t.Fatalf("a new tenant's key lists %d instances, want none", len(list.Items))
	}
	// Quota and rate limit, saved on the page, are what the API answers.
	b.run("set the quota and the rate limit",
		setInput("#quota-max_instances", "5"),
		setInput("#quota-max_memory_mb", "8192"),
		chromedp.Click(chromedp.Search(`//form[@aria-labelledby="quota-title"]//button[normalize-space()="Save"]`)),
		chromedp.WaitVisible(chromedp.Search(`//form[@aria-labelledby="quota-title"]//*[normalize-space()="Saved."]`)),
		setInput("#rate-requests_per_second", "20"),
		setInput("#rate-burst", "40"),
		chromedp.Click(chromedp.Search(`//form[@aria-labelledby="rate-title"]//button[normalize-space()="Save"]`)),
		chromedp.WaitVisible(chromedp.Search(`//form[@aria-labelledby="rate-title"]//*[normalize-space()="Saved."]`)))
	var quota struct {
		MaxInstances int64 `json:"max_instances"`
		MaxMemoryMB  int64 `json:"max_memory_mb"`
	}
	admin.must("GET", "/api/v1/tenants/"+tenantID+"/quota", nil, http.StatusOK, &quota)
	var rate struct {
		RPS     int  `json:"requests_per_second"`
		Burst   int  `json:"burst"`
		Default bool `json:"default"`
	}
	admin.must("GET", "/api/v1/tenants/"+tenantID+"/rate-limit", nil, http.StatusOK, &rate)
	if quota.MaxInstances != 5 || quota.MaxMemoryMB != 8192 || rate.RPS != 20 || rate.Burst != 40 || rate.Default {
		t.Fatalf("after saving on the page the API has quota %+v and rate limit %+v, want 5 instances, 8192 MiB, 20/s burst 40", quota, rate)
	}

	// Revoking on the page ends the key.
	b.run("revoke the key",
		chromedp.Click(chromedp.Search(`//table[@data-testid="keys"]//button[normalize-space()="Revoke"]`)),
		chromedp.Click(chromedp.CSS(`button[aria-label="Confirm revoking portal-e2e"]`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@data-testid="keys"]//*[normalize-space()="revoked"]`)))
	p.client(t, key).mustProblem("GET", "/api/v1/instances", nil, http.StatusUnauthorized)

	b.run("back to the tenants list",
		chromedp.Navigate(p.URL+"/#/tenants"),
		chromedp.WaitVisible(chromedp.CSS(`table[data-testid="tenants"] a[href="#/tenants/`+tenantID+`"]`)))
	b.screenshot("tenants")
	checkA11y(t, b.ctx, "tenants")
	checkKeyboard(t, b.ctx, "tenants", mainNav, "#tenant-id", signOut)

	// Cordon a host on the map, and uncordon it again.
	hostID := quietReadyHost(t, admin)
	t.Cleanup(func() {
		// Leave the shared inventory as found, even when a step failed.
		if hostState(t, admin, hostID) == "cordoned" {
			admin.must("POST", "/api/v1/inventory/hosts/"+hostID+":uncordon", nil, http.StatusOK, nil)
		}
	})
	hostSel := `[data-testid="host-` + hostID + `"]`
	b.run("open the inventory",
		chromedp.Navigate(p.URL+"/#/inventory"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="region-e2e"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="region-e2e-west"]`)),
		chromedp.WaitVisible(chromedp.CSS(hostSel+`[data-state="ready"] meter`)))
	b.run("cordon "+hostID,
		chromedp.Click(chromedp.CSS(`button[aria-label="Cordon `+hostID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(hostSel+`[data-state="cordoned"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Uncordon `+hostID+`"]`)))
	if s := hostState(t, admin, hostID); s != "cordoned" {
		t.Fatalf("after cordoning on the page, the API says host %s is %q", hostID, s)
	}
	if badge := b.textOf("read the host's state", hostSel+` .badge`); badge != "cordoned" {
		t.Fatalf("the cordoned host shows %q", badge)
	}
	b.screenshot("inventory")
	checkA11y(t, b.ctx, "inventory")
	checkKeyboard(t, b.ctx, "inventory", mainNav, `button[aria-label="Uncordon `+hostID+`"]`)
	b.run("uncordon "+hostID,
		chromedp.Click(chromedp.CSS(`button[aria-label="Uncordon `+hostID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(hostSel+`[data-state="ready"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Cordon `+hostID+`"]`)))
	if s := hostState(t, admin, hostID); s != "ready" {
		t.Fatalf("after uncordoning on the page, the API says host %s is %q", hostID, s)
	}

	// The simulator: multi-az in a region of one AZ is refused, and says why.
	b.run("open the simulator",
		chromedp.Navigate(p.URL+"/#/simulator"),
		chromedp.WaitVisible(chromedp.ID("sim-plan")),
		chromedp.WaitReady(chromedp.CSS(`#sim-region option[value="e2e-west"]`)))
	b.run("simulate a multi-az placement in e2e-west",
		selectOption("#sim-plan", "custom"),
		chromedp.WaitVisible(chromedp.ID("sim-mode")),
		selectOption("#sim-mode", "multi-az"),
		selectOption("#sim-region", "e2e-west"),
		chromedp.Click(chromedp.Search(`//button[normalize-space()="Simulate"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="sim-explanation"]`)))
	why := b.textOf("read the explanation", `[data-testid="sim-explanation"]`)
	if !strings.Contains(why, "multi-az") || !strings.Contains(why, "e2e-west") {
		t.Fatalf("the simulator explains the refusal as %q, want the multi-az rule and the region", why)
	}
	if filters := b.textOf("read the filter counts", `[data-testid="sim-refusal"] table`); !strings.Contains(filters, "spread") || !strings.Contains(filters, "requested-region") {
		t.Fatalf("the refusal's filter table shows %q, want the spread and requested-region filters' counts", filters)
	}
	t.Logf("the simulator explains: %s", why)
	b.screenshot("simulator")
	checkA11y(t, b.ctx, "simulator")
	checkKeyboard(t, b.ctx, "simulator", mainNav, "#sim-plan", `form button[type="submit"]`)

	// The other operator pages show what exists.
	b.run("open the fleet",
		chromedp.Navigate(p.URL+"/#/fleet"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="fleet-summary"]`)),
		chromedp.WaitVisible(chromedp.ID("fleet-state")))
	b.screenshot("fleet")
	checkA11y(t, b.ctx, "fleet")
	b.run("open the broker credentials",
		chromedp.Navigate(p.URL+"/#/broker-credentials"),
		chromedp.WaitVisible(chromedp.ID("cred-name")),
		chromedp.WaitVisible(chromedp.CSS(`table[data-testid="broker-credentials"], .empty`)))
	b.screenshot("brokers")
	checkA11y(t, b.ctx, "brokers")
	b.run("open the audit log of the new tenant",
		chromedp.Navigate(p.URL+"/#/audit?tenant="+tenantID),
		chromedp.WaitVisible(chromedp.CSS(`table[data-testid="audit"]`)))
	if log := b.textOf("read the audit log", `table[data-testid="audit"] tbody`); !strings.Contains(log, "/api/v1/tenants/"+tenantID+"/api-keys") {
		t.Fatalf("the tenant's audit log shows %q, want the key's creation", log)
	}
	b.screenshot("audit")
	checkA11y(t, b.ctx, "audit")
}

// selectOption picks value in the <select> matching sel the way a user
// does: the value changes and a change event fires (chromedp.SetValue
// fires none, and the page listens for it).
func selectOption(sel, value string) chromedp.Action[chromedp.Void] {
	js, _ := json.Marshal(sel)
	v, _ := json.Marshal(value)
	return chromedp.Evaluate[chromedp.Void](`(() => { const e = document.querySelector(` + string(js) + `);
		if (!e) throw new Error('no element ' + ` + string(js) + `);
		e.value = ` + string(v) + `;
		if (e.value !== ` + string(v) + `) throw new Error('no option ' + ` + string(v) + `);
		e.dispatchEvent(new Event('change', { bubbles: true })); })()`)
}

// setInput types value into the input matching sel over what it held (an
// input event fires, as when a user edits the field).
func setInput(sel, value string) chromedp.Action[chromedp.Void] {
	js, _ := json.Marshal(sel)
	v, _ := json.Marshal(value)
	return chromedp.Evaluate[chromedp.Void](`(() => { const e = document.querySelector(` + string(js) + `);
		if (!e) throw new Error('no element ' + ` + string(js) + `);
		e.value = ` + string(v) + `;
		e.dispatchEvent(new Event('input', { bubbles: true })); })()`)
}

// quietReadyHost is a ready host of region e2e with the least memory
// allocated: cordoning it for a moment disturbs other scenarios least.
func quietReadyHost(t *testing.T, admin *client) string {
	t.Helper()
	var page struct {
		Items []struct {
			ID        string    `json:"id"`
			Region    string    `json:"region"`
			State     string    `json:"state"`
			Allocated resources `json:"allocated"`
		} `json:"items"`
	}
	admin.must("GET", "/api/v1/inventory/hosts?region=e2e&state=ready&limit=500", nil, http.StatusOK, &page)
	if len(page.Items) == 0 {
		t.Fatal("no ready host in region e2e")
	}
	sort.SliceStable(page.Items, func(i, j int) bool {
		return page.Items[i].Allocated.MemoryMB < page.Items[j].Allocated.MemoryMB
	})
	return page.Items[0].ID
}

// hostState is the host's state as the scheduling API says.
func hostState(t *testing.T, admin *client, id string) string {
	t.Helper()
	var h struct {
		State string `json:"state"`
	}
	admin.must("GET", "/api/v1/inventory/hosts/"+id, nil, http.StatusOK, &h)
	return h.State
}
