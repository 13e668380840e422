package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The browser harness: headless Chromium (Debian's chromium, installed by
// scripts/ensure-deps.sh; $CHROMIUM names another binary) driven through
// the DevTools protocol by chromedp, one fresh profile per test. Browser
// scenarios wait on conditions in the page (WaitVisible, Poll) under a
// deadline, never on sleeps, and save screenshots into the artifacts
// directory ($CANOPY_ARTIFACTS, default e2e/artifacts/, gitignored).

// browserStep bounds one step of a browser scenario (a navigation, a
// click and what it should show).
const browserStep = 30 * time.Second

type browser struct {
	t   *testing.T
	ctx context.Context // the tab; every step derives a deadline from it
	dir string          // artifacts directory
}

// chromiumPath is $CHROMIUM or /usr/bin/chromium.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// artifactsDir is $CANOPY_ARTIFACTS or e2e/artifacts, created if needed.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CANOPY_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "e2e", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	return dir
}

// newBrowser starts headless Chromium with a fresh temporary profile and
// opens one tab; the browser is closed and the profile removed when t ends.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromiumPath()
	if _, err := os.Stat(exe); err != nil {
		t.Fatalf("Chromium not found at %s (run scripts/ensure-deps.sh, or set CHROMIUM): %v", exe, err)
	}
	profile, err := os.MkdirTemp("", "canopy-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("metrics-recording-only", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("closing Chromium: %v", err)
		}
		cancel()
		cancelAlloc()
		_ = os.RemoveAll(profile)
	})
	// The first run starts the browser; it gets its own deadline without
	// tying the browser's life to it.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start Chromium %s: %v", exe, err)
		}
	case <-time.After(browserStep):
		t.Fatalf("Chromium %s did not start within %v", exe, browserStep)
	}
	return &browser{t: t, ctx: ctx, dir: artifactsDir(t)}
}

// run performs steps within browserStep; on failure it saves a screenshot
// named after the step and fails the test.
func (b *browser) run(step string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.screenshot("failed-" + step)
		b.t.Fatalf("browser: %s: %v", step, err)
	}
}

// get runs one action that answers a value, as run does.
func get[T any](b *browser, step string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.screenshot("failed-" + step)
		b.t.Fatalf("browser: %s: %v", step, err)
	}
	return v
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, step, expr string) T {
	b.t.Helper()
	return get(b, step, chromedp.Evaluate[T](expr))
}

// cookies returns the browser's cookies for the page's URL.
func (b *browser) cookies(step string) []*network.Cookie {
	b.t.Helper()
	return get(b, step, func(ctx context.Context, t *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{})
		return res.Cookies, err
	})
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// screenshot saves the whole page as <artifacts>/<test>-<name>.png (a
// failure to take it is logged, not fatal: it is evidence, not a check).
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(b.dir, unsafeName.ReplaceAllString(b.t.Name()+"-"+name, "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

// textOf waits for the first element matching the CSS selector sel and
// returns its visible text.
func (b *browser) textOf(step, sel string) string {
	b.t.Helper()
	b.run(step, chromedp.WaitVisible(chromedp.CSS(sel)))
	return strings.TrimSpace(get(b, step, chromedp.Text(chromedp.CSS(sel))))
}

// transferred sums what the page fetched over the network so far (bytes on
// the wire: gzipped where the server compressed).
func (b *browser) transferred(step string) (bytes int, files int) {
	b.t.Helper()
	r := eval[struct{ Bytes, Files int }](b, step, `(() => { const all = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
		return { Bytes: all.reduce((n, e) => n + (e.encodedBodySize || 0), 0), Files: all.length }; })()`)
	return r.Bytes, r.Files
}
