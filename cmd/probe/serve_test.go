package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startServe runs `probe serve args...` until the test ends and returns the URL it printed
// first. The server binds the loopback address on a free port (the default --addr).
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	prev := serveContext
	serveContext = func() (context.Context, context.CancelFunc) { return ctx, cancel }
	pr, pw := io.Pipe()
	var stderr strings.Builder
	done := make(chan error, 1)
	go func() {
		err := runServe(args, pw, &stderr)
		pw.Close()
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr)
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("probe serve returned %v; stderr: %s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("probe serve did not stop after its context ended")
		}
		serveContext = prev
	})
	if err != nil {
		cancel()
		t.Fatalf("no URL printed (%v); stderr: %s", err, stderr.String())
	}
	url := strings.TrimSpace(line)
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/$`).MatchString(url) {
		t.Fatalf("first line %q is not a loopback URL", line)
	}
	return url
}

func TestServeCommand(t *testing.T) {
	url := startServe(t, "--model", tinyDir, "--images", tinyDir, "--steps", "3", "--samples", "2")
	// The class-specific kinds are offered, with the flags' costs.
	resp, err := http.Get(url + "api/info")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Kinds []struct {
			Name, Help string
			PerClass   bool `json:"per_class"`
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	helps := map[string]string{}
	for _, k := range info.Kinds {
		if k.PerClass {
			helps[k.Name] = k.Help
		}
	}
	if err != nil || len(helps) != 8 || !strings.Contains(helps["integrated-gradients"], "3 backward passes") || !strings.Contains(helps["smoothgrad"], "2 backward passes") {
		t.Errorf("info: %v, class-specific kinds %v", err, helps)
	}
	resp, err = http.Get(url + "api/map.png?image=chelsea.png&kind=integrated-gradients&class=2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Map-Signed") != "true" {
		t.Errorf("integrated-gradients map: %d, X-Map-Signed %q", resp.StatusCode, resp.Header.Get("X-Map-Signed"))
	}
	resp, err = http.Get(url + "api/analysis?image=chelsea.png")
	if err != nil {
		t.Fatal(err)
	}
	var a struct{ Top []struct{ Label string } }
	err = json.NewDecoder(resp.Body).Decode(&a)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(a.Top) != 5 || a.Top[0].Label != "class_1" {
		t.Fatalf("analysis: %d %v %+v", resp.StatusCode, err, a)
	}
	// Bound to loopback, the server answers loopback host names only (DNS rebinding).
	req, _ := http.NewRequest("GET", url+"api/info", nil)
	req.Host = "rebind.example"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d, want 421", resp.StatusCode)
	}
}

func TestServeFlags(t *testing.T) {
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"serve"}, 2, "usage: probe serve"},
		{[]string{"serve", "--model", tinyDir, "extra"}, 2, "usage: probe serve"},
		{[]string{"serve", "--model", tinyDir, "--random"}, 2, "usage: probe serve"},
		{[]string{"serve", "--model", tinyDir, "--addr", "8080"}, 1, "--addr \"8080\": want HOST:PORT"},
		{[]string{"serve", "--model", tinyDir, "--images", "/nonexistent/folder"}, 1, "--images"},
		{[]string{"serve", "--model", tinyDir, "--features", "/nonexistent/features.parquet"}, 1, "nonexistent"},
		{[]string{"serve", "--model", tinyDir, "--queue", "0"}, 1, "--queue"},
		{[]string{"serve", "--model", tinyDir, "--steps", "0"}, 1, "--steps"},
		{[]string{"serve", "--model", tinyDir, "--samples", "-1"}, 1, "--samples"},
	}
	for _, c := range cases {
		_, stderr, code := run(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 && c.code == 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q in one line", c.args, code, stderr, c.code, c.msg)
		}
	}
}

// TestServeNonLoopbackWarns asks for an address of TEST-NET-1 (RFC 5737), which no interface has:
// the warning is printed, then the listen fails, so the test binds nothing off the loopback.
func TestServeNonLoopbackWarns(t *testing.T) {
	stdout, stderr, code := run(t, "serve", "--model", tinyDir, "--addr", "192.0.2.1:0")
	if code != 1 || stdout != "" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "warning: --addr 192.0.2.1:0 is reachable from other machines") || !strings.Contains(lines[1], "--addr 192.0.2.1:0") {
		t.Errorf("stderr %q: want the warning, then the listen error", stderr)
	}
}

func TestServeAddresses(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "127.3.4.5": true, "": false, "0.0.0.0": false, "::": false, "192.168.1.2": false, "example.com": false} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v", host, got)
		}
	}
	for _, c := range []struct {
		addr *net.TCPAddr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, "http://127.0.0.1:80/"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, "http://127.0.0.1:8080/"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 9}, "http://[::1]:9/"},
	} {
		if got := serveURL(c.addr); got != c.want {
			t.Errorf("serveURL(%v) = %s, want %s", c.addr, got, c.want)
		}
	}
}
