package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures are notebooks executed by GoNB v0.11.1 under `jupyter nbconvert --execute
// --allow-errors` (testdata/notebooks). failing.ipynb has one cell per way a GoNB cell fails; what
// each must be reported as comes from the cells' source, listed here.
const fixtures = "../../testdata/notebooks"

func TestFailingCells(t *testing.T) {
	nb, err := readNotebook(filepath.Join(fixtures, "failing.ipynb"))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		cell     string // the "cell N (first line)" prefix
		contains string
	}{
		{"cell 2 (!false)", "exit status 1"},        // a failing shell command: stderr only
		{"cell 3 (%%)", "exit status 3"},            // os.Exit(3): stderr only
		{"cell 4 (%%)", "undefined: undefinedName"}, // compile error: GoNB's HTML report…
		{"cell 4 (%%)", "ERROR: failed to run"},     // …and the Jupyter error output
		{"cell 5 (%%)", "panic: boom"},              // panic: stderr only
	}
	got := nb.failures()
	if len(got) != len(want) {
		t.Fatalf("%d failures, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w.cell+": ") || !strings.Contains(got[i], w.contains) {
			t.Errorf("failure %d = %q, want %q containing %q", i, got[i], w.cell, w.contains)
		}
	}
	for _, f := range got {
		if strings.Contains(f, "<style>") || strings.Contains(f, "<span") {
			t.Errorf("HTML left in %q", f)
		}
	}
}

func TestPassingNotebook(t *testing.T) {
	var out bytes.Buffer
	if code := run(&out, filepath.Join(fixtures, "passing.ipynb"), "passing", false); code != 0 || out.Len() != 0 {
		t.Errorf("run = %d, output %q; want 0 and nothing", code, out.String())
	}
}

func TestRunExitCodes(t *testing.T) {
	var out bytes.Buffer
	if code := run(&out, filepath.Join(fixtures, "failing.ipynb"), "failing.ipynb", false); code != 1 {
		t.Errorf("failing notebook: exit %d, want 1", code)
	}
	if !strings.HasPrefix(out.String(), "failing.ipynb: cell 2 (!false): exit status 1\n") {
		t.Errorf("report starts %q", firstLine(out.String()))
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ipynb")
	if err := os.WriteFile(bad, []byte(`{"cells": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{bad, filepath.Join(dir, "missing.ipynb")} {
		out.Reset()
		if code := run(&out, path, "x", false); code != 2 || !strings.Contains(out.String(), path) {
			t.Errorf("%s: exit %d, message %q; want 2 naming the file", path, code, out.String())
		}
	}
}

// Sources and stream texts come as one string or as a list of lines; both must read the same.
func TestTextForms(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "forms.ipynb")
	doc := `{"cells": [
	 {"cell_type": "code", "source": "%%\nx", "outputs": [{"output_type": "stream", "name": "stderr", "text": "exit status 1\n"}]},
	 {"cell_type": "code", "source": ["!ls\n", "y"], "outputs": [{"output_type": "stream", "name": "stderr", "text": ["warn", "ing\n"]}]},
	 {"cell_type": "code", "source": "ok", "outputs": [{"output_type": "display_data", "data": {"application/json": {"a": 1}, "text/plain": ["fine"]}}]},
	 {"cell_type": "markdown", "source": "# title"}
	]}`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	nb, err := readNotebook(path)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(nb.failures(), "\n")
	want := "cell 0 (%%): exit status 1\ncell 1 (!ls): warning"
	if got != want {
		t.Errorf("failures:\n%s\nwant:\n%s", got, want)
	}
}

func TestFigures(t *testing.T) {
	// passing.ipynb displays Markdown and text, no image.
	var out bytes.Buffer
	if code := run(&out, filepath.Join(fixtures, "passing.ipynb"), "passing", true); code != 1 ||
		out.String() != "passing: no cell displays an image\n" {
		t.Errorf("-figures on a notebook without images: exit %d, %q", code, out.String())
	}

	path := filepath.Join(t.TempDir(), "figure.ipynb")
	doc := `{"cells": [{"cell_type": "code", "source": "%%", "outputs": [
	 {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<image>"}}]}]}`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run(&out, path, "figure", true); code != 0 || out.Len() != 0 {
		t.Errorf("-figures on a notebook with a PNG: exit %d, %q", code, out.String())
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
