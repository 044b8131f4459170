package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestExplainSaysWhatRuns (issue 29 item 10): explain names each method on stderr before it runs
// and says when it is done, so a run on the full-size model (minutes per method) is not silent.
func TestExplainSaysWhatRuns(t *testing.T) {
	_, errOut, code := run(t, "explain", "--model", tinyDir, "--image", filepath.Join(tinyDir, "chelsea.png"),
		"--out", t.TempDir(), "--methods", "saliency,integrated-gradients")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"probe explain: saliency (one backward pass) …\n",
		"probe explain: saliency (one backward pass) done in ",
		"probe explain: integrated-gradients …\n",
		"probe explain: integrated-gradients done in ",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Index(errOut, "integrated-gradients …") > strings.Index(errOut, "integrated-gradients done") {
		t.Errorf("done before begun:\n%s", errOut)
	}
}
