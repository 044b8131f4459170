package main

import (
	"encoding/json"
	"fmt"
	"html"
	"os"
	"regexp"
	"strings"
)

// notebook is the part of the nbformat 4 schema that says whether cells failed.
type notebook struct {
	Cells []cell `json:"cells"`
}

type cell struct {
	Type    string   `json:"cell_type"`
	Source  text     `json:"source"`
	Outputs []output `json:"outputs"`
}

type output struct {
	Type   string          `json:"output_type"`
	Name   string          `json:"name"` // stream: stdout or stderr
	Text   text            `json:"text"`
	Data   map[string]text `json:"data"`
	EName  string          `json:"ename"`
	EValue string          `json:"evalue"`
}

// text is a multi-line string, which nbformat stores either as one string or as a list of lines.
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = text(s)
		return nil
	}
	var lines []string
	if err := json.Unmarshal(b, &lines); err != nil {
		// Rich outputs such as application/json hold objects; they never mark a failure.
		*t = ""
		return nil
	}
	*t = text(strings.Join(lines, ""))
	return nil
}

func readNotebook(path string) (*notebook, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var nb notebook
	if err := json.Unmarshal(b, &nb); err != nil {
		return nil, fmt.Errorf("%s: not a notebook: %w", path, err)
	}
	return &nb, nil
}

// failures lists one line per failed output: the cell's index and first source line, then what
// went wrong.
func (nb *notebook) failures() []string {
	var out []string
	for i, c := range nb.Cells {
		if c.Type != "code" {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimSpace(string(c.Source)), "\n")
		where := fmt.Sprintf("cell %d (%s)", i, first)
		failed := false
		for _, o := range c.Outputs {
			failed = failed || o.Type == "error"
		}
		for _, o := range c.Outputs {
			var msg string
			switch {
			case o.Type == "error":
				msg = o.EName + ": " + o.EValue
			case o.Type == "stream" && o.Name == "stderr":
				msg = string(o.Text)
			case failed && o.Data["text/html"] != "":
				msg = htmlText(string(o.Data["text/html"]))
			default:
				continue
			}
			out = append(out, where+": "+strings.TrimSpace(msg))
		}
	}
	return out
}

// images counts the image outputs of the code cells.
func (nb *notebook) images() int {
	n := 0
	for _, c := range nb.Cells {
		for _, o := range c.Outputs {
			for _, mime := range []string{"image/png", "image/jpeg", "image/svg+xml"} {
				if o.Data[mime] != "" {
					n++
				}
			}
		}
	}
	return n
}

var (
	styleBlock = regexp.MustCompile(`(?s)<style>.*?</style>`)
	tag        = regexp.MustCompile(`<[^>]*>`)
)

// htmlText turns GoNB's HTML error report into its non-blank lines of text.
func htmlText(s string) string {
	s = html.UnescapeString(tag.ReplaceAllString(styleBlock.ReplaceAllString(s, ""), ""))
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}
