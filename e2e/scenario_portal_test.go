package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestScenarioPortalSignIn: in a real browser, a tenant signs in to the
// portal with an API key and sees the instances page; a bad key shows the
// API's message; the session cookie is invisible to the page's scripts and
// the key is kept in no storage; signing out returns to the sign-in page.
func TestScenarioPortalSignIn(t *testing.T) {
	p := platformFor(t)
	tenantID := "portal-" + randHex(3)
	tenant := p.newTenant(t, tenantID, "tenant-admin")
	b := newBrowser(t)

	// A deep link before signing in: the sign-in page, then that page.
	b.run("open the portal", chromedp.Navigate(p.URL+"/#/instances"), chromedp.WaitVisible(chromedp.ID("api-key")))
	b.screenshot("signin")
	checkA11y(t, b.ctx, "signin")

	b.run("sign in with a bad key",
		chromedp.SendKeys(chromedp.ID("api-key"), "cnp_01aaaaaaaaaaaaaaaaaaaaaaaa_not-a-real-secret"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".problem")))
	if msg := b.textOf("read the sign-in error", ".problem"); !strings.Contains(msg, "not valid") {
		t.Fatalf("the sign-in error shows %q, want the API's detail (the API key is not valid …)", msg)
	}
	b.screenshot("signin-error")
	checkA11y(t, b.ctx, "signin-error")
	checkKeyboard(t, b.ctx, "signin", "#api-key", `button[type="submit"]`)

	// A fresh load: the form starts empty (the bad key was kept nowhere).
	b.run("reload the sign-in page", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("api-key")))
	if v := get(b, "read the key field", chromedp.Value(chromedp.ID("api-key"))); v != "" {
		t.Fatalf("the key field holds %q after a reload, want it empty", v)
	}
	b.run("sign in as the tenant",
		chromedp.SendKeys(chromedp.ID("api-key"), tenant.key),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("instances-title")),
		chromedp.WaitVisible(chromedp.CSS(`.empty, table[data-testid="instances"]`)))
	if who := b.textOf("read who is signed in", `[data-testid="who"]`); !strings.Contains(who, tenantID) || !strings.Contains(who, "tenant-admin") {
		t.Fatalf("the header shows %q, want the tenant %s and its role", who, tenantID)
	}
	if empty := b.textOf("read the empty state", ".empty"); !strings.Contains(empty, "No instances yet") || !strings.Contains(empty, "Order") {
		t.Fatalf("a new tenant's instances page shows %q, want an empty state that says how to order one", empty)
	}
	b.screenshot("instances")
	checkA11y(t, b.ctx, "instances")
	checkKeyboard(t, b.ctx, "instances", mainNav, ".page-head button", signOut)
	bytes, files := b.transferred("measure the first load")
	t.Logf("first load in the browser (sign-in + instances): %d files, %.1f KB on the wire", files, float64(bytes)/1024)

	// The session is an HttpOnly, SameSite=Strict cookie: there for the
	// browser, absent from document.cookie; the key is in no storage.
	var session *network.Cookie
	for _, c := range b.cookies("read the cookies") {
		if c.Name == "canopy_session" {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || session.Path != "/" {
		t.Fatalf("session cookie %+v, want canopy_session HttpOnly SameSite=Strict Path=/", session)
	}
	pageCookies := eval[string](b, "read document.cookie", "document.cookie")
	if strings.Contains(pageCookies, "canopy_session") || strings.Contains(pageCookies, session.Value) {
		t.Fatalf("document.cookie %q exposes the session", pageCookies)
	}
	storage := eval[string](b, "read the page's storage", `JSON.stringify({local: {...localStorage}, session: {...sessionStorage}})`)
	if storage != `{"local":{},"session":{}}` || strings.Contains(storage, tenant.key) {
		t.Fatalf("the page's storage holds %s, want nothing", storage)
	}

	// The same session answers the API for the browser (a reload keeps it).
	b.run("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("instances-title")))

	b.run("sign out",
		chromedp.Click(chromedp.Search(`//button[normalize-space()="Sign out"]`)),
		chromedp.WaitVisible(chromedp.ID("api-key")))
	for _, c := range b.cookies("read the cookies after signing out") {
		if c.Name == "canopy_session" {
			t.Fatalf("the session cookie is still there after signing out: %+v", c)
		}
	}
	// The signed-out session is gone on the server too.
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/api/v1/sessions/current", nil)
	req.AddCookie(&http.Cookie{Name: "canopy_session", Value: session.Value})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /api/v1/sessions/current with the signed-out cookie: %s, want 401", resp.Status)
	}
	b.run("reload after signing out", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("api-key")))
	b.screenshot("signed-out")
}
