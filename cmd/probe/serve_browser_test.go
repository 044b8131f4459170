package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

var screenshotPath = flag.String("screenshot", "", "TestServeBrowser: also save its screenshot here (the README's is ../../docs/serve/explorer.png)")

// findChromium returns a Chromium or Chrome binary, or "" when there is none.
func findChromium() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestServeBrowser drives the page in headless Chromium against `probe serve` on the demo's model,
// images and features, as the README shows it: it opens a deep link, waits for the top-5, clicks
// a latent and checks that its map loads, scrubs the rollout slider, switches map kinds and the
// colour map, switches to class-specific kinds (unsigned and signed) and another class, shows AttnLRP's
// per-latent relevance and selects its most relevant latent, waits for the probe report and the PCA scatter, and saves a screenshot. It fails on
// any script error, console error (a CSP violation is one) or request to another origin.
func TestServeBrowser(t *testing.T) {
	browser := findChromium()
	if browser == "" {
		if os.Getenv("CI") != "" { // as the numpy check in main_test.go
			t.Fatal("no chromium binary in PATH: CI must install Debian's chromium (see .ci/run)")
		}
		t.Skip("no chromium binary in PATH (apt-get install chromium, or set CHROMIUM): the browser test did not run")
	}
	// The README's commands, from a folder holding the demo's outputs; the screenshot then
	// shows the same relative paths.
	if *screenshotPath != "" {
		abs, err := filepath.Abs(*screenshotPath)
		if err != nil {
			t.Fatal(err)
		}
		*screenshotPath = abs
	}
	t.Chdir(t.TempDir())
	if _, stderr, code := run(t, "demo", "--out", "perceiver-demo"); code != 0 {
		t.Fatalf("demo: exit %d: %s", code, stderr)
	}
	url := startServe(t, "--model", "perceiver-demo/model", "--images", "perceiver-demo/images",
		"--features", "perceiver-demo/features.parquet")

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	// The first action starts the browser; it must not run under a timeout (chromedp.Run's doc).
	if err := chromedp.Do(browserCtx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", browser, err)
	}

	var mu sync.Mutex
	var problems []string
	report := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	origin := strings.TrimSuffix(url, "/")
	err := chromedp.Listen(browserCtx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			report("script exception at %s:%d: %s", d.URL, d.LineNumber+1, desc)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				report("console %s: %s", ev.Type, strings.Join(args, " "))
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				report("browser log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			u := ev.Request.URL
			if !strings.HasPrefix(u, origin+"/") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:"+origin) && u != "about:blank" {
				report("request to another origin: %s", u)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(browserCtx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{})
		return err
	})); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(browserCtx, 4*time.Minute)
	defer cancel()
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	waitJS := func(name, expr string) {
		t.Helper()
		step(name, chromedp.Action[chromedp.Void](func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(90*time.Second))(c, tg)
			return chromedp.Void{}, err
		}))
	}
	evalString := func(expr string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return s
	}
	mapLoaded := func(key string) string {
		// The overlay carries the key of the map it shows once the PNG has loaded and decoded.
		return fmt.Sprintf(`(() => { const o = document.getElementById('overlay'); return o.dataset.map === %q && o.complete && o.naturalWidth === 28 })()`, key)
	}

	const image = "0699-trouser.png"
	step("open the deep link", chromedp.Navigate(url+"?image="+image))
	waitJS("top-5", `document.querySelectorAll('#top5 li').length === 5`)
	top := evalString(`[...document.querySelectorAll('#top5 li .name')].map(e => e.textContent).join(',')`)
	if len(strings.Split(top, ",")) != 5 || strings.Contains(top, "class ") {
		t.Errorf("top-5 labels %q: want five Fashion-MNIST names", top)
	}
	if got := evalString(`document.querySelector('.thumb.selected') ? document.querySelector('.thumb.selected').title : ''`); got != image {
		t.Errorf("selected thumbnail %q, want %s", got, image)
	}
	waitJS("the first kind's map", mapLoaded("kind:mean|viridis"))
	waitJS("32 latents", `document.querySelectorAll('#latents .latent').length === 32`)

	step("click latent 5", chromedp.Click(chromedp.CSS(`.latent[data-latent="5"]`)))
	waitJS("latent 5's map", mapLoaded("latent:5|viridis"))
	if info := evalString(`document.getElementById('latent-info').textContent`); !strings.Contains(info, "latent 5") || !strings.Contains(info, "decoder weight") {
		t.Errorf("latent info %q", info)
	}
	if n := evalString(`String(document.querySelectorAll('.latent.selected').length)`); n != "1" {
		t.Errorf("%s latents marked selected", n)
	}

	step("switch to rollout", chromedp.Click(chromedp.CSS(`button[data-kind="rollout"]`)))
	waitJS("rollout map", mapLoaded("kind:rollout:4|viridis"))
	step("slider to application 1", chromedp.Action[chromedp.Void](func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](`(() => { const s = document.getElementById('step'); s.value = 1; s.dispatchEvent(new Event('input')); return true })()`)(c, tg)
		return chromedp.Void{}, err
	}))
	waitJS("rollout through 1 application", mapLoaded("kind:rollout:1|viridis"))
	step("switch to decoder", chromedp.Click(chromedp.CSS(`button[data-kind="decoder"]`)))
	waitJS("decoder map", mapLoaded("kind:decoder|viridis"))
	if dis := evalString(`String(document.getElementById('step').disabled)`); dis != "true" {
		t.Error("the slider is enabled for the decoder map, which has no steps")
	}
	step("hot colours", chromedp.Action[chromedp.Void](func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](`(() => { const s = document.getElementById('cmap'); s.value = 'hot'; s.dispatchEvent(new Event('change')); return true })()`)(c, tg)
		return chromedp.Void{}, err
	}))
	waitJS("decoder map in hot", mapLoaded("kind:decoder|hot"))

	// The class-specific kinds (package explain, a backward pass each): the class selector
	// appears with the top-5, signed maps switch to the diverging colour map with a zero mark,
	// another class is another map, and a colour map chosen for signed maps stays theirs.
	setSelect := func(id, value string) chromedp.Action[chromedp.Void] {
		return func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const s = document.getElementById(%q); s.value = %q; s.dispatchEvent(new Event('change')); return s.value === %q })()`, id, value, value))(c, tg)
			return chromedp.Void{}, err
		}
	}
	classes := strings.Split(evalString(`[...document.getElementById('class').options].map(o => o.value).join(',')`), ",")
	if len(classes) != 5 {
		t.Fatalf("class selector offers %v, want the top-5", classes)
	}
	if hidden := evalString(`String(document.getElementById('class-control').hidden)`); hidden != "true" {
		t.Error("the class selector shows for the decoder map")
	}
	step("switch to chefer", chromedp.Click(chromedp.CSS(`button[data-kind="chefer"]`)))
	waitJS("chefer map for the top-1", mapLoaded("kind:chefer:c"+classes[0]+"|hot"))
	if hidden := evalString(`String(document.getElementById('class-control').hidden)`); hidden != "false" {
		t.Error("no class selector for a class-specific map")
	}
	if title := evalString(`document.getElementById('map-title').textContent`); !strings.HasPrefix(title, "chefer for ") {
		t.Errorf("map title %q", title)
	}
	step("switch to input-x-gradient", chromedp.Click(chromedp.CSS(`button[data-kind="input-x-gradient"]`)))
	waitJS("signed map in the diverging colours", mapLoaded("kind:input-x-gradient:c"+classes[0]+"|diverging"))
	if got := evalString(`document.getElementById('cmap').value + ' ' + document.getElementById('map-zero').hidden`); got != "diverging false" {
		t.Errorf("signed map: colour selector and zero mark hidden = %q, want \"diverging false\"", got)
	}
	step("another class", setSelect("class", classes[1]))
	waitJS("input-x-gradient for the second class", mapLoaded("kind:input-x-gradient:c"+classes[1]+"|diverging"))
	step("gray for signed maps", setSelect("cmap", "gray"))
	waitJS("signed map in gray", mapLoaded("kind:input-x-gradient:c"+classes[1]+"|gray"))
	step("integrated gradients", chromedp.Click(chromedp.CSS(`button[data-kind="integrated-gradients"]`)))
	waitJS("integrated gradients keep the signed choice", mapLoaded("kind:integrated-gradients:c"+classes[1]+"|gray"))
	// A relevance kind (AttnLRP): its map, then the per-latent relevance panel for the same class,
	// whose entries select a latent.
	step("attnlrp", chromedp.Click(chromedp.CSS(`button[data-kind="attnlrp"]`)))
	waitJS("attnlrp map", mapLoaded("kind:attnlrp:c"+classes[1]+"|gray"))
	waitJS("latent relevance panel", `(() => { const r = document.getElementById('relevance'); return !r.hidden && r.dataset.shown === 'attnlrp:c`+classes[1]+`' })()`)
	if n := evalString(`String(document.querySelectorAll('#relevance-top li').length)`); n != "8" {
		t.Errorf("%s latents listed by relevance, want 8", n)
	}
	if b := evalString(`document.getElementById('relevance-budget').textContent`); !strings.HasPrefix(b, "logit ") || !strings.Contains(b, "pixels") || !strings.Contains(b, "decoder query") {
		t.Errorf("relevance budget %q", b)
	}
	first := evalString(`document.querySelector('#relevance-top button').dataset.latent`)
	step("the most relevant latent", chromedp.Click(chromedp.CSS(`#relevance-top button`)))
	waitJS("its encoder map", mapLoaded("latent:"+first+"|hot"))
	if hidden := evalString(`String(document.getElementById('relevance').hidden)`); hidden != "false" {
		t.Error("the relevance panel hid when one of its latents was selected")
	}
	step("back to decoder", chromedp.Click(chromedp.CSS(`button[data-kind="decoder"]`)))
	waitJS("decoder keeps its own colours", mapLoaded("kind:decoder|hot"))
	if got := evalString(`document.getElementById('cmap').value + ' ' + document.getElementById('map-zero').hidden + ' ' + document.getElementById('class-control').hidden`); got != "hot true true" {
		t.Errorf("unsigned map: colour selector, zero mark hidden, class selector hidden = %q, want \"hot true true\"", got)
	}

	// The probe report fills in as the background evaluation finishes columns: five fits per
	// column and C, a minute under the race detector on a loaded machine, so -short (CI's race
	// run) checks only that its table is there; the full run waits for every result.
	waitJS("probe table", `document.querySelectorAll('#probe-table tbody tr').length === 5`)
	if !testing.Short() {
		waitJS("probe report", `document.getElementById('probe-status').textContent.startsWith('done')`)
		if n := evalString(`String(document.querySelectorAll('#probe-table td.acc').length)`); n != "5" {
			t.Errorf("%s columns with a test accuracy, want 5", n)
		}
	}
	waitJS("PCA scatter", `document.getElementById('pca-info').textContent.includes('of the variance')`)

	// The state the README shows: the rollout through every application in viridis.
	step("back to viridis", chromedp.Action[chromedp.Void](func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](`(() => { const s = document.getElementById('cmap'); s.value = 'viridis'; s.dispatchEvent(new Event('change')); const j = document.getElementById('step'); j.value = j.max; j.dispatchEvent(new Event('input')); return true })()`)(c, tg)
		return chromedp.Void{}, err
	}))
	step("rollout again", chromedp.Click(chromedp.CSS(`button[data-kind="rollout"]`)))
	waitJS("full rollout", mapLoaded("kind:rollout:4|viridis"))
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if len(shot) < 10000 {
		t.Errorf("screenshot of %d bytes", len(shot))
	}
	out := filepath.Join(t.TempDir(), "explorer.png")
	if *screenshotPath != "" {
		out = *screenshotPath
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)

	// An upload through the page's file input: it becomes the shown image, with its own deep link.
	upload, err := filepath.Abs(filepath.Join("perceiver-demo", "images", "0678-ankle-boot.png"))
	if err != nil {
		t.Fatal(err)
	}
	step("upload", chromedp.SetUploadFiles(chromedp.CSS("#upload"), []string{upload}))
	waitJS("the upload's deep link", `location.search.startsWith('?upload=') && document.querySelectorAll('#top5 li').length === 5`)
	waitJS("the upload's map", mapLoaded("kind:rollout:4|viridis")+` && document.querySelector('.thumb.selected') !== null && document.querySelector('.thumb.selected').title === '0678-ankle-boot.png'`)

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
}

// TestServeSAEBrowser drives the features view of `probe serve --sae` in headless Chromium: on
// the demo's model, a token autoencoder of block 2 (the README's worked example, small), it waits
// for the dictionary listed by frequency, opens an entry's montage, waits for the open image's
// active entries, and clicks one, which shows the entry and its latent's cross-attention on the
// image. It fails on any script error, console error or request to another origin.
func TestServeSAEBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("trains an autoencoder and drives a browser; the plain run (go test ./...) checks it")
	}
	browser := findChromium()
	if browser == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no chromium binary in PATH: CI must install Debian's chromium (see .ci/run)")
		}
		t.Skip("no chromium binary in PATH (apt-get install chromium, or set CHROMIUM): the browser test did not run")
	}
	t.Chdir(t.TempDir())
	if _, stderr, code := run(t, "demo", "--out", "perceiver-demo"); code != 0 {
		t.Fatalf("demo: exit %d: %s", code, stderr)
	}
	for _, args := range [][]string{
		{"extract", "--model", "perceiver-demo/model", "--data", "perceiver-demo/data/fashion-mnist", "--out", "emb.parquet", "--layers", "block2_mean", "--tokens", "block2", "--quiet"},
		{"sae", "train", "--tokens", "emb.tokens/block2", "--out", "sae", "--dict", "128", "--k", "8", "--epochs", "2", "--batch", "256", "--quiet", "--no-splice"},
		{"sae", "features", "--sae", "sae", "--montages", "4", "--top", "6"},
	} {
		if _, stderr, code := run(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
	}
	url := startServe(t, "--model", "perceiver-demo/model", "--images", "perceiver-demo/images", "--sae", "sae")

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1400),
	)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browserCtx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", browser, err)
	}
	var mu sync.Mutex
	var problems []string
	origin := strings.TrimSuffix(url, "/")
	if err := chromedp.Listen(browserCtx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			problems = append(problems, "script exception: "+ev.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				problems = append(problems, fmt.Sprintf("console %s", ev.Type))
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				problems = append(problems, "browser log: "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			u := ev.Request.URL
			if !strings.HasPrefix(u, origin+"/") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:"+origin) && u != "about:blank" {
				problems = append(problems, "request to another origin: "+u)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(browserCtx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(browserCtx, 3*time.Minute)
	defer cancel()
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	waitJS := func(name, expr string) {
		t.Helper()
		step(name, chromedp.Action[chromedp.Void](func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			var err error
			for attempt := 0; attempt < 3; attempt++ {
				// A poll begun while the page replaces its document loses its context: poll again.
				if _, err = chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(90*time.Second))(c, tg); err == nil || !strings.Contains(err.Error(), "Cannot find context") {
					break
				}
			}
			return chromedp.Void{}, err
		}))
	}
	evalString := func(expr string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return s
	}
	montageOf := func(index string) string {
		return fmt.Sprintf(`(() => { const m = document.getElementById('sae-montage'); return !m.hidden && m.dataset.index === %q && m.complete && m.naturalWidth > 100 })()`, index)
	}

	step("open an image", chromedp.Navigate(url+"?image=0699-trouser.png"))
	waitJS("top-5", `document.querySelectorAll('#top5 li').length === 5`)
	waitJS("the features view", `!document.getElementById('sae').hidden && document.querySelectorAll('#sae-dict .sae-entry').length === 128`)
	if src := evalString(`document.getElementById('sae-source').textContent`); !strings.Contains(src, "M = 128, k = 8") || strings.Contains(src, "random weights") {
		t.Errorf("features view header %q: want the dictionary size and k, and no random-weights mark (the demo model is trained)", src)
	}
	first := evalString(`document.querySelector('#sae-dict .sae-entry').dataset.index`)
	waitJS("the most frequent entry's montage", montageOf(first))
	second := evalString(`document.querySelectorAll('#sae-dict .sae-entry')[1].dataset.index`)
	clickJS := func(name, selector string) {
		t.Helper()
		step(name, chromedp.Action[chromedp.Void](func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { document.querySelector(%q).click(); return true })()`, selector))(c, tg)
			return chromedp.Void{}, err
		}))
	}
	clickJS("click the second entry", `#sae-dict .sae-entry[data-index="`+second+`"]`)
	waitJS("its montage", montageOf(second))
	if n := evalString(`String(document.querySelectorAll('#sae-dict .sae-entry.selected').length)`); n != "1" {
		t.Errorf("%s entries marked selected", n)
	}
	waitJS("the image's active entries", `document.querySelectorAll('#sae-active .sae-act').length > 0`)
	act := evalString(`(() => { const b = document.querySelector('#sae-active .sae-act'); return b.dataset.index + ' ' + b.dataset.latent })()`)
	parts := strings.Fields(act)
	if len(parts) != 2 {
		t.Fatalf("active entry %q", act)
	}
	clickJS("click the largest active entry", `#sae-active .sae-act`)
	waitJS("its latent's map on the image", fmt.Sprintf(`(() => { const o = document.getElementById('overlay'); return o.dataset.map === 'latent:%s|viridis' && o.complete && o.naturalWidth === 28 })()`, parts[1]))
	if got := evalString(`document.getElementById('sae-title').textContent`); !strings.HasPrefix(got, "entry "+parts[0]+":") {
		t.Errorf("entry title %q after clicking active entry %s", got, parts[0])
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
}
