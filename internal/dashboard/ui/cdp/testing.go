package cdp

import (
	"context"
	"os"
	"strings"
	"testing"
)

// Require returns the browser's path, or ends the test: skipped when none
// is installed and LBSYS_SKIP_BROWSER=1, failed otherwise (.ci/run
// installs chromium, so a missing browser there is an error, not a skip).
// what names the test in the message.
func Require(t testing.TB, what string) string {
	t.Helper()
	if bin := Find(); bin != "" {
		return bin
	}
	if os.Getenv("LBSYS_SKIP_BROWSER") == "1" {
		t.Skipf("chromium is not installed and LBSYS_SKIP_BROWSER=1: skipping %s", what)
	}
	t.Fatalf("%s needs headless Chromium: apt-get install chromium (.ci/run does); set LBSYS_SKIP_BROWSER=1 to skip it on this machine", what)
	return ""
}

// KeepScreenshot writes the page as PNG, and its markup beside it (.html),
// where ArtifactPath says (kept after the test), and returns the PNG's path
// and size for the test's log.
func KeepScreenshot(ctx context.Context, t testing.TB, pg *Page, name string) (path string, size int) {
	t.Helper()
	png, err := pg.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	path, err = ArtifactPath(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	var html string
	if pg.Eval(ctx, `document.documentElement.outerHTML`, &html) == nil {
		os.WriteFile(strings.TrimSuffix(path, ".png")+".html", []byte(html), 0o644)
	}
	return path, len(png)
}
