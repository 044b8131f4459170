package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRunShPathsFromCaller checks issue 29's complaint about notebooks/run.sh: notebook paths are
// read relative to the folder it is run from (here the repository root), before the script
// changes folder, so a missing one is named as given and nothing is installed or executed.
func TestRunShPathsFromCaller(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	cmd := exec.Command("bash", "notebooks/run.sh", "notebooks/nosuch.ipynb")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 2 {
		t.Fatalf("exit %d (%v): %s", code, err, out)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, "notebooks/run.sh: notebooks/nosuch.ipynb: no such notebook") || strings.Contains(got, "installing") {
		t.Errorf("output %q: want one line naming notebooks/nosuch.ipynb, before any install", got)
	}

	help, err := exec.Command("bash", "../run.sh", "-h").Output()
	if err != nil || !strings.Contains(string(help), "apt") || !strings.Contains(string(help), "relative to the folder it is run from") {
		t.Errorf("run.sh -h: %v\n%s", err, help)
	}
}
