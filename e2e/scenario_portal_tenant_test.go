package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestScenarioPortalTenantPages: in a real browser, a tenant with a ready
// single-az Redis uses the pages of the services after provisioning: the
// alerts page (create a silence, expire it), the settings page (create an
// API key, read it once, it works, revoke it, it stops working), the usage
// page (a chart or its empty state, and a CSV link), and the instance's
// tabs — failovers (no switchover for one node), change data, and backups:
// "Back up now" until the backup is completed.
func TestScenarioPortalTenantPages(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	tenantID := "portalx-" + randHex(3)
	tenant := p.newTenant(t, tenantID, "tenant-admin")

	var acc instanceAccepted
	tenant.must("POST", "/api/v1/instances", map[string]any{"name": "pages-cache", "plan_id": tenant.planID("redis-dev-single-az")}, http.StatusAccepted, &acc)
	id := acc.Instance.ID
	t.Cleanup(func() { bestEffortDelete(t, admin, id) })
	waitOperation(t, tenant, acc.OperationID, readyTimeout)

	b := newBrowser(t)
	b.run("sign in as the tenant",
		chromedp.Navigate(p.URL+"/#/alerts"),
		chromedp.WaitVisible(chromedp.ID("api-key")),
		chromedp.SendKeys(chromedp.ID("api-key"), tenant.key),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("alerts-title")))

	// Alerts: the three sections, a silence created and expired.
	b.run("the alerts page",
		chromedp.WaitVisible(chromedp.CSS(`.empty, table[data-testid="alerts"]`)),
		chromedp.WaitVisible(chromedp.ID("silences-title")),
		chromedp.WaitVisible(chromedp.ID("receivers-title")))
	b.run("create a silence",
		chromedp.SendKeys(chromedp.ID("silence-matchers"), `alertname="PortalCheck"`),
		chromedp.SendKeys(chromedp.ID("silence-comment"), "browser test"),
		chromedp.Click(chromedp.CSS(`[data-testid="silence-form"] button[type="submit"]`)),
		chromedp.Poll[chromedp.Void](`(document.querySelector('table[data-testid="silences"]')||{}).innerText?.includes('PortalCheck')`, chromedp.WithPollingMutation()))
	b.screenshot("alerts")
	checkA11y(t, b.ctx, "alerts")
	checkKeyboard(t, b.ctx, "alerts", mainNav, `[data-testid="silence-form"] button[type="submit"]`)
	b.run("expire the silence",
		chromedp.Click(chromedp.Search(`//table[@data-testid="silences"]//button[normalize-space()="Expire"]`)),
		chromedp.Click(chromedp.Search(`//table[@data-testid="silences"]//button[normalize-space()="Expire now"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`table[data-testid="silences"]`)))
	var silences struct {
		Items []struct {
			Status struct {
				State string `json:"state"`
			} `json:"status"`
		} `json:"items"`
	}
	tenant.must("GET", "/api/v1/silences", nil, http.StatusOK, &silences)
	if len(silences.Items) != 1 || silences.Items[0].Status.State != "expired" {
		t.Fatalf("after expiring the page's silence the API lists %+v, want one expired silence", silences.Items)
	}

	// Settings: the quota, and a key shown once, working, then revoked.
	b.run("the settings page",
		chromedp.Navigate(p.URL+"/#/settings"),
		chromedp.WaitVisible(chromedp.ID("settings-title")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="quota"] .card`)),
		chromedp.WaitVisible(chromedp.CSS(`table[data-testid="keys"]`)))
	if q := b.textOf("read the quota", `[data-testid="quota"] .card`); !strings.Contains(q, "Instances") || !strings.Contains(q, "1 of") {
		t.Fatalf("the quota shows %q, want the one instance counted", q)
	}
	b.run("create a viewer key",
		chromedp.SendKeys(chromedp.ID("key-name"), "ci-e2e"),
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById('key-role'); s.value = 'tenant-viewer'; s.dispatchEvent(new Event('change', { bubbles: true })); })()`),
		chromedp.Click(chromedp.CSS(`[data-testid="key-form"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="new-key-value"]`)))
	key := b.textOf("read the new key", `[data-testid="new-key-value"]`)
	if !strings.HasPrefix(key, "cnp_") {
		t.Fatalf("the page shows the new key as %q, want a cnp_ key", key)
	}
	b.screenshot("settings-new-key")
	viewer := p.client(t, key)
	viewer.must("GET", "/api/v1/instances/"+id, nil, http.StatusOK, nil)
	viewer.mustProblem("POST", "/api/v1/instances/"+id+"/backups", nil, http.StatusForbidden)
	b.run("dismiss the key",
		chromedp.Click(chromedp.Search(`//button[normalize-space()="I have stored it"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`[data-testid="new-key"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-key-name="ci-e2e"]`)))
	if shown := eval[bool](b, "look for the key", fmt.Sprintf(`document.body.innerHTML.includes(%q)`, key)); shown {
		t.Fatal("the key is still in the page after it was dismissed")
	}
	b.run("revoke the key",
		chromedp.Click(chromedp.CSS(`[data-testid="revoke-ci-e2e"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="revoke-ci-e2e-confirm"]`)),
		chromedp.Poll[chromedp.Void](`(document.querySelector('tr[data-key-name="ci-e2e"]')||{}).innerText?.includes('revoked')`, chromedp.WithPollingMutation()))
	if status, _, err := viewer.do("GET", "/api/v1/instances/"+id, nil); err != nil || status != http.StatusUnauthorized {
		t.Fatalf("the revoked key answers %d (%v), want 401", status, err)
	}
	b.screenshot("settings")
	checkA11y(t, b.ctx, "settings")
	checkKeyboard(t, b.ctx, "settings", mainNav, "#key-name")

	// Usage: once metering has counted the instance's node-hours, the page
	// draws them (and their cost) as bars; the CSV link is the API's CSV.
	waitFor(t, "node_hours of the instance", 90*time.Second, func() (bool, string) {
		v, status := tenant.usageValue(url.Values{"window": {"hour"}, "group_by": {"instance"}}.Encode(), "node_hours", id)
		return v > 0, status
	})
	b.run("the usage page",
		chromedp.Navigate(p.URL+"/#/usage"),
		chromedp.WaitVisible(chromedp.ID("usage-title")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="usage-chart"] svg.bar-chart rect.bar`)))
	if bars := eval[int](b, "count the bars", `[...document.querySelectorAll('[data-testid="usage-chart"] rect.bar')].filter((r) => r.getAttribute('height') > 0).length`); bars == 0 {
		t.Fatal("the usage chart draws no bar for the instance's node-hours")
	}
	csv := eval[string](b, "read the CSV link", `document.querySelector('[data-testid="usage-csv"]').getAttribute('href')`)
	tenant.with("Accept", "text/csv").must("GET", csv, nil, http.StatusOK, nil)
	b.screenshot("usage")
	checkA11y(t, b.ctx, "usage")
	checkKeyboard(t, b.ctx, "usage", mainNav, `[data-testid="usage-csv"]`)

	// The instances list with the tenant's instance in it.
	b.run("the instances page",
		chromedp.Navigate(p.URL+"/#/instances"),
		chromedp.WaitVisible(chromedp.CSS(`table[data-testid="instances"] tbody tr`)))
	checkA11y(t, b.ctx, "instances")

	// The instance's tabs on their own route.
	base := p.URL + "/#/instances/" + id
	b.run("the failovers tab",
		chromedp.Navigate(base+"/failovers"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="tab-failovers"] .empty`)))
	if txt := b.textOf("read the failovers tab", `[data-testid="tab-failovers"]`); !strings.Contains(txt, "needs a replica") {
		t.Fatalf("a one-node instance's failovers tab shows %q, want why it cannot switch over", txt)
	}
	b.screenshot("failovers")
	checkA11y(t, b.ctx, "failovers")
	b.run("the change data tab",
		chromedp.Navigate(base+"/streams"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="tab-streams"] .empty`)))
	checkA11y(t, b.ctx, "streams")
	b.run("the backups tab",
		chromedp.Navigate(base+"/backups"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="backup-now"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="restore-window"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="backup-now"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table[data-testid="backups"] tr`)))
	// A backup takes longer than a browser step; the page polls by itself.
	ctx, cancel := context.WithTimeout(b.ctx, backupTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`table[data-testid="backups"] tr[data-status="completed"]`))); err != nil {
		b.screenshot("failed-backup")
		t.Fatalf("browser: the backup did not complete on the page: %v", err)
	}
	b.run("the restore form once a backup exists",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="restore-form"]`)))
	b.screenshot("backups")
	checkA11y(t, b.ctx, "backups")
	checkKeyboard(t, b.ctx, "backups", mainNav, `nav.tabs a`, `[data-testid="restore-form"] button[type="submit"]`)

	// The restore form orders a new instance from the backup.
	b.run("order a restore from the backup",
		chromedp.Click(chromedp.CSS(`input[name="restore-mode"][value="backup_id"]`)),
		chromedp.WaitVisible(chromedp.ID("restore-backup")),
		chromedp.Click(chromedp.CSS(`[data-testid="restore-form"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="restore-ordered"]`)))
	var list struct {
		Items []instance `json:"items"`
	}
	tenant.must("GET", "/api/v1/instances", nil, http.StatusOK, &list)
	restored := ""
	for _, i := range list.Items {
		if i.Name == "pages-cache-restored" {
			restored = i.ID
		}
	}
	if restored == "" {
		t.Fatalf("the restore form ordered no instance named pages-cache-restored: %+v", list.Items)
	}
	t.Cleanup(func() { bestEffortDelete(t, admin, restored) })
}
