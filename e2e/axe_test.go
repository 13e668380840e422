package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Accessibility checks of the portal's pages in the real browser:
// checkA11y runs axe-core (testdata/axe, injected by the test and never
// served by the gateway) against the page as it is, and checkKeyboard tabs
// through it as a keyboard user does. Both run inside the portal
// scenarios, on pages those scenarios have already brought to a known
// state, so they check what a user sees rather than a loading spinner.

// axeTags are the rule sets checked: WCAG 2 A and AA (labels, names,
// contrast, landmarks…) and axe's best practices (one h1, regions…).
var axeTags = []string{"wcag2a", "wcag2aa", "best-practice"}

var axeSource = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(filepath.Join("testdata", "axe", "axe.min.js"))
	return string(b), err
})

// axeViolation is one failed rule with the first few elements it failed on.
type axeViolation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	HelpURL string   `json:"helpUrl"`
	Nodes   int      `json:"nodes"`
	Targets []string `json:"targets"`
}

func (v axeViolation) String() string {
	return fmt.Sprintf("%s (%s, %d element(s)): %s — %s %s", v.ID, v.Impact, v.Nodes, v.Help, strings.Join(v.Targets, " | "), v.HelpURL)
}

// axeResult is what axe-core answers, reduced to what a report needs.
type axeResult struct {
	Violations []axeViolation `json:"violations"`
	Incomplete []string       `json:"incomplete"` // rules axe could not decide, with an element
	Passes     int            `json:"passes"`
}

// runAxe injects axe-core into the current page (once: the portal is a
// single-page app, so it stays until a full reload) and runs axeTags over
// the whole document. raw is axe's reduced answer as JSON.
func runAxe(ctx context.Context) (res axeResult, raw []byte, err error) {
	src, err := axeSource()
	if err != nil {
		return res, nil, fmt.Errorf("axe-core (e2e/testdata/axe): %w", err)
	}
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof window.axe === 'object'`))
	if err != nil {
		return res, nil, err
	}
	if !loaded {
		// Evaluated as a classic script, it defines window.axe.
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](src+"\n;void 0")); err != nil {
			return res, nil, fmt.Errorf("inject axe-core: %w", err)
		}
	}
	tags, _ := json.Marshal(axeTags)
	raw, err = chromedp.Run(ctx, chromedp.Evaluate[[]byte](`axe.run(document, { runOnly: `+string(tags)+`, resultTypes: ['violations'] }).then((r) => ({
		violations: r.violations.map((v) => ({ id: v.id, impact: v.impact || '', help: v.help, helpUrl: v.helpUrl,
			nodes: v.nodes.length, targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) })),
		incomplete: r.incomplete.map((v) => v.id + ' (' + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ') + ')'),
		passes: r.passes.length }))`, chromedp.EvalAwaitPromise))
	if err != nil {
		return res, nil, fmt.Errorf("run axe-core: %w", err)
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return res, nil, fmt.Errorf("axe-core's answer: %w", err)
	}
	return res, raw, nil
}

// serious splits violations into those that fail a page (serious,
// critical) and the rest.
func (r axeResult) serious() (serious, other []axeViolation) {
	for _, v := range r.Violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			serious = append(serious, v)
		} else {
			other = append(other, v)
		}
	}
	return serious, other
}

// checkA11y injects axe-core into the current page, runs the WCAG 2 A/AA
// and best-practice rules over the whole document, and fails the test on
// every serious or critical violation (rule, impact, help and the first
// three elements); moderate and minor ones are logged. The full answer is
// saved to the artifacts directory as <test>-axe-<page>.json.
func checkA11y(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	res, raw, err := runAxe(ctx)
	if err != nil {
		t.Fatalf("a11y %s: %v", page, err)
	}
	saveArtifact(t, "axe-"+page+".json", raw)
	serious, other := res.serious()
	for _, v := range other {
		t.Logf("a11y %s: %s", page, v)
	}
	if len(res.Incomplete) > 0 {
		// Rules axe could not decide (e.g. contrast over an image): for a
		// person to review, not a failure.
		t.Logf("a11y %s: to review by hand: %s", page, strings.Join(res.Incomplete, ", "))
	}
	if len(serious) > 0 {
		lines := make([]string, len(serious))
		for i, v := range serious {
			lines[i] = v.String()
		}
		t.Fatalf("a11y %s: %d serious or critical axe violation(s):\n  %s", page, len(serious), strings.Join(lines, "\n  "))
	}
	t.Logf("a11y %s: %d axe rules pass, %d minor or moderate violation(s)", page, res.Passes, len(other))
}

// Selectors the keyboard checks look for on every signed-in page.
const (
	mainNav = `header nav[aria-label="Main"] a`
	signOut = `header .who button`
)

// maxTabs bounds the keyboard walk: more stops than any portal page has
// before its primary action (the inventory map has a button per host).
const maxTabs = 200

// keyboardWalk is what Tab from the top of a page met.
type keyboardWalk struct {
	Path   []string // every element focused, in order
	Unseen []string // those focused without a visible sign of it
	Missed []string // selectors whose visible elements were not all reached
}

// walkKeyboard tabs through the current page from its top with real key
// events (so :focus-visible applies) until every visible element matching
// each selector got focus, focus leaves the page, or maxTabs.
func walkKeyboard(ctx context.Context, selectors []string) (w keyboardWalk, err error) {
	sels, _ := json.Marshal(selectors)
	// A focusable marker at the top of the body is where the walk starts;
	// each selector's visible elements are counted before it.
	want, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`(() => {
		const start = document.createElement('span');
		start.id = 'a11y-tab-start'; start.tabIndex = -1;
		document.body.prepend(start); start.focus();
		return `+string(sels)+`.map((s) => [...document.querySelectorAll(s)].filter((e) => e.checkVisibility()).length); })()`))
	if err != nil {
		return w, err
	}
	defer func() {
		_ = chromedp.Do(context.WithoutCancel(ctx), chromedp.Evaluate[chromedp.Void](`document.getElementById('a11y-tab-start')?.remove()`))
	}()
	for i, n := range want {
		if n == 0 {
			return w, fmt.Errorf("nothing visible matches %s", selectors[i])
		}
	}
	type stop struct {
		Desc    string `json:"desc"`
		Shown   bool   `json:"shown"`
		Body    bool   `json:"body"`
		Matches []int  `json:"matches"` // per selector: the element's index among its visible matches, or -1
	}
	probe := `(() => {
		const e = document.activeElement;
		if (!e || e === document.body || e.id === 'a11y-tab-start') return { desc: 'body', shown: true, body: true, matches: [] };
		const cs = getComputedStyle(e);
		// Focus inside the browser's own parts of a control (a date
		// input's calendar button) leaves the control itself without
		// :focus; those parts draw their own ring.
		const inner = !e.matches(':focus');
		const outline = inner || (cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0);
		const label = (e.getAttribute('aria-label') || e.innerText || e.value || e.id || '').trim().slice(0, 40);
		return { desc: e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' "' + label + '"',
			shown: outline || cs.boxShadow !== 'none', body: false,
			matches: ` + string(sels) + `.map((s) => [...document.querySelectorAll(s)].filter((x) => x.checkVisibility()).indexOf(e)) };
	})()`
	reached := make([]map[int]bool, len(selectors))
	for i := range reached {
		reached[i] = map[int]bool{}
	}
	done := func() bool {
		for i, n := range want {
			if len(reached[i]) < n {
				return false
			}
		}
		return true
	}
	tab := chromedp.Action[stop](func(ctx context.Context, tg *chromedp.Target) (stop, error) {
		if _, err := chromedp.KeyEvent(kb.Tab)(ctx, tg); err != nil {
			return stop{}, err
		}
		return chromedp.Evaluate[stop](probe)(ctx, tg)
	})
	for n := 0; n < maxTabs && !done(); n++ {
		s, err := chromedp.Run(ctx, tab)
		if err != nil {
			return w, fmt.Errorf("Tab %d: %w", n+1, err)
		}
		if s.Body {
			break // focus left the page: the walk wrapped around
		}
		w.Path = append(w.Path, s.Desc)
		if !s.Shown {
			w.Unseen = append(w.Unseen, s.Desc)
		}
		for i, idx := range s.Matches {
			if idx >= 0 {
				reached[i][idx] = true
			}
		}
	}
	for i, n := range want {
		if len(reached[i]) < n {
			w.Missed = append(w.Missed, fmt.Sprintf("%s (%d of %d reached)", selectors[i], len(reached[i]), n))
		}
	}
	return w, nil
}

// checkKeyboard tabs through the current page from its top, as a keyboard
// user does, and fails the test unless every visible element matching each
// of the selectors (the main navigation's links, the page's primary
// action…) receives focus on the way, and unless every element that
// received focus showed it (a focus outline or a box shadow).
func checkKeyboard(t *testing.T, ctx context.Context, page string, selectors ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	w, err := walkKeyboard(ctx, selectors)
	if err != nil {
		t.Fatalf("keyboard %s: %v", page, err)
	}
	if len(w.Missed) > 0 {
		t.Fatalf("keyboard %s: Tab from the top never reaches %s; focus went: %s", page, strings.Join(w.Missed, ", "), strings.Join(w.Path, " → "))
	}
	if len(w.Unseen) > 0 {
		t.Fatalf("keyboard %s: focus is invisible (no outline, no shadow) on %s", page, strings.Join(w.Unseen, ", "))
	}
	t.Logf("keyboard %s: %d Tab stops reach %s, each with a visible focus", page, len(w.Path), strings.Join(selectors, ", "))
}

// TestA11yChecksCatchViolations: the checks above are not vacuous. On a
// small page (no platform) with an unlabelled input, grey-on-white text, a
// button whose focus is hidden and one no Tab reaches, axe reports the
// label and contrast rules as serious and the keyboard walk reports the
// hidden focus and the unreachable button; a clean page passes both.
func TestA11yChecksCatchViolations(t *testing.T) {
	bad := `<!doctype html><html lang="en"><head><title>bad</title></head><body><main><h1>Bad</h1>
		<p style="color:#bbb">Low contrast text</p><input id="q">
		<button id="hidden-focus" style="outline:none">Go</button>
		<button id="unreachable" tabindex="-1">Never</button></main></body></html>`
	good := `<!doctype html><html lang="en"><head><title>good</title></head><body><main><h1>Good</h1>
		<p>Readable text</p><label for="q">Query</label><input id="q">
		<button id="go">Go</button></main></body></html>`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/good" {
			_, _ = w.Write([]byte(good))
			return
		}
		_, _ = w.Write([]byte(bad))
	}))
	t.Cleanup(srv.Close)
	b := newBrowser(t)

	b.run("open the bad page", chromedp.Navigate(srv.URL+"/bad"), chromedp.WaitVisible(chromedp.ID("q")))
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	res, _, err := runAxe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	serious, _ := res.serious()
	found := map[string]bool{}
	for _, v := range serious {
		found[v.ID] = true
	}
	if !found["label"] || !found["color-contrast"] {
		t.Fatalf("axe's serious violations on the bad page: %v, want label and color-contrast", serious)
	}
	w, err := walkKeyboard(ctx, []string{"#q", "#hidden-focus", "#unreachable"})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Missed) != 1 || !strings.Contains(w.Missed[0], "#unreachable") || len(w.Unseen) != 1 || !strings.Contains(w.Unseen[0], "hidden-focus") {
		t.Fatalf("the keyboard walk of the bad page: %+v, want #unreachable missed and #hidden-focus unseen", w)
	}

	b.run("open the good page", chromedp.Navigate(srv.URL+"/good"), chromedp.WaitVisible(chromedp.ID("q")))
	checkA11y(t, b.ctx, "good")
	checkKeyboard(t, b.ctx, "good", "#q", "#go")
}

// saveArtifact writes data as <artifacts>/<test>-<name> (logged, not fatal:
// it is evidence, not a check).
func saveArtifact(t *testing.T, name string, data []byte) {
	t.Helper()
	path := filepath.Join(artifactsDir(t), unsafeName.ReplaceAllString(t.Name()+"-"+name, "_"))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Logf("artifact %s: %v", name, err)
	}
}
