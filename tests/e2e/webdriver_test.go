package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/porttest"
)

// browser is a headless Chromium driven through ChromeDriver's W3C
// WebDriver protocol (JSON over HTTP): the few commands the dashboard's
// tests need, written here rather than taken from a library.
type browser struct {
	t    *testing.T
	base string // ChromeDriver's URL, then its session's
}

// startBrowser starts ChromeDriver and a headless Chromium session, both
// ended with the test. It skips the test where Debian's chromium and
// chromium-driver are not installed (.ci/run installs them).
func startBrowser(t *testing.T) *browser {
	t.Helper()
	driver, err1 := exec.LookPath("chromedriver")
	chromium, err2 := exec.LookPath("chromium")
	if err1 != nil || err2 != nil {
		t.Skip("no chromedriver or chromium (Debian: apt-get install chromium chromium-driver)")
	}
	port := porttest.Free(t, 1)[0]
	startChild(t, exec.Command(driver, fmt.Sprintf("--port=%d", port)))
	b := &browser{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	deadline := time.Now().Add(waitDeadline)
	for {
		var status struct {
			Ready bool `json:"ready"`
		}
		if err := b.do("GET", "/status", nil, &status); err == nil && status.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver not ready within %v", waitDeadline)
		}
		time.Sleep(50 * time.Millisecond) // polling a starting process
	}
	var session struct {
		SessionID string `json:"sessionId"`
	}
	// A browser of its own (profile directory included) per attempt.
	// Chromium starting beside other Chromiums on a loaded machine has
	// exited at start ("session not created: Chrome instance exited"):
	// a start is tried three times.
	for attempt := 1; ; attempt++ {
		caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
			"browserName": "chrome",
			"goog:chromeOptions": map[string]any{"binary": chromium, "args": []string{
				"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,800",
				"--user-data-dir=" + t.TempDir()}},
		}}}
		err := b.do("POST", "/session", caps, &session)
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("starting chromium: %v", err)
		}
		t.Logf("starting chromium, attempt %d: %.200v", attempt, err)
	}
	b.base += "/session/" + session.SessionID
	t.Cleanup(func() { b.do("DELETE", "", nil, nil) })
	return b
}

// do sends one WebDriver command and decodes its "value" into out.
func (b *browser) do(method, path string, body, out any) error {
	var in io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		in = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, b.base+path, in)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: commandDeadline}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var reply struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return fmt.Errorf("webdriver %s %s: %s: %w", method, path, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webdriver %s %s: %s: %s", method, path, resp.Status, reply.Value)
	}
	if out != nil {
		return json.Unmarshal(reply.Value, out)
	}
	return nil
}

// open loads url, a dashboard page, and waits until its script has set
// up its handlers.
func (b *browser) open(url string) {
	b.t.Helper()
	if err := b.do("POST", "/url", map[string]string{"url": url}, nil); err != nil {
		b.t.Fatal(err)
	}
	b.waitTrue("its script ready", `return document.body.dataset.ready === 'true'`)
}

// script runs JavaScript in the page and decodes what it returns.
func (b *browser) script(js string, out any) {
	b.t.Helper()
	if err := b.do("POST", "/execute/sync", map[string]any{"script": js, "args": []any{}}, out); err != nil {
		b.t.Fatal(err)
	}
}

// acceptConfirm waits for the page's confirm() dialog and accepts it.
func (b *browser) acceptConfirm() {
	b.t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for {
		var text string
		if err := b.do("GET", "/alert/text", nil, &text); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no confirmation asked within %v", waitDeadline)
		}
		time.Sleep(50 * time.Millisecond) // polling the browser
	}
	if err := b.do("POST", "/alert/accept", map[string]any{}, nil); err != nil {
		b.t.Fatal(err)
	}
}

// waitTrue waits until the script returns true.
func (b *browser) waitTrue(what, js string) {
	b.t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for {
		var ok bool
		b.script(js, &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var main string
			b.script(`return document.querySelector('main').innerText`, &main)
			b.t.Fatalf("the page did not show %s within %v; it shows:\n%s", what, waitDeadline, main)
		}
		time.Sleep(100 * time.Millisecond) // polling a page
	}
}

// screenshot writes the page as a PNG to dir/name, if dir is set
// (scripts/dashboard-screenshots.sh sets it).
func (b *browser) screenshot(dir, name string) {
	b.t.Helper()
	if dir == "" {
		return
	}
	var encoded string
	if err := b.do("GET", "/screenshot", nil, &encoded); err != nil {
		b.t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/"+name, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s/%s", dir, name)
}
