// Command nbcheck fails when an executed Jupyter notebook holds a failed cell, and says which.
//
// Usage: nbcheck [-name NAME] [-figures] NOTEBOOK.ipynb
//
// A cell failed when it has an error output, or wrote anything to stderr. The second rule is
// needed for GoNB: a cell whose program exits non-zero (log.Fatal, a panic, a failing `!` shell
// command) is reported only as "exit status N" on stderr, and Jupyter sees the cell as a success.
// For a cell with an error output, GoNB's HTML report (the compiler's messages) is printed as text.
// With -figures, a notebook without any image output (PNG, JPEG or SVG) fails too.
// Exit status: 0 when every cell succeeded, 1 when one failed, 2 when the notebook cannot be read.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	name := flag.String("name", "", "name to print for the notebook (default: its path)")
	figures := flag.Bool("figures", false, "fail when no cell displays an image")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: nbcheck [-name NAME] [-figures] NOTEBOOK.ipynb")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	path := flag.Arg(0)
	if *name == "" {
		*name = path
	}
	os.Exit(run(os.Stderr, path, *name, *figures))
}

func run(w io.Writer, path, name string, figures bool) int {
	nb, err := readNotebook(path)
	if err != nil {
		fmt.Fprintln(w, "nbcheck:", err)
		return 2
	}
	failures := nb.failures()
	if figures && nb.images() == 0 {
		failures = append(failures, "no cell displays an image")
	}
	for _, f := range failures {
		fmt.Fprintf(w, "%s: %s\n", name, f)
	}
	if len(failures) > 0 {
		return 1
	}
	return 0
}
