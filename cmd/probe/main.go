// Command probe runs the Perceiver IO vision toolkit: classification, tensor dumps, feature
// extraction, attention heatmaps, linear probes and benchmarks. Each subcommand lives in its own
// file and registers itself in init; this file only dispatches and reports errors.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/perceiverkit/perceiver/internal/sgemm"
	"github.com/perceiverkit/perceiver/probe"
)

// command is one subcommand. run receives the arguments after the subcommand name and returns an
// error for the user (one line); it never exits the process itself.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string, stdout, stderr io.Writer) error) {
	if _, dup := commands[name]; dup {
		panic("probe: command registered twice: " + name)
	}
	commands[name] = command{summary: summary, run: run}
}

// exitLocked is the exit status when the output is being written by another process (EX_TEMPFAIL:
// try again later). Schedulers can retry it without counting a failure (deploy/k8s's
// podFailurePolicy ignores it).
const exitLocked = 75

// errUsage marks an error caused by bad command-line arguments: the flag package has already
// printed the details, so main only sets the exit status.
var errUsage = errors.New("usage")

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 2 && args[0] == "help" {
			return helpCommand(args[1], stdout, stderr)
		}
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" || args[0] == "version" {
		printVersion(stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "probe: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	rest, profile, err := cutProfileFlag(args[1:])
	if err != nil {
		fmt.Fprintf(stderr, "probe %s: %v\n", args[0], err)
		return 2
	}
	if profile != "" {
		stop, err := startCPUProfile(profile)
		if err != nil {
			fmt.Fprintf(stderr, "probe %s: %v\n", args[0], err)
			return 1
		}
		defer func() {
			if err := stop(); err != nil {
				fmt.Fprintf(stderr, "probe %s: --cpuprofile: %v\n", args[0], err)
			}
		}()
	}
	if err := cmd.run(rest, stdout, stderr); err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			if askedForHelp(rest) {
				return 0 // the usage was printed because it was asked for
			}
			return 2
		}
		fmt.Fprintf(stderr, "probe %s: %v\n", args[0], err)
		var locked *probe.LockedError
		if errors.As(err, &locked) {
			return exitLocked
		}
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: probe <command> [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'probe help <command>' for a command's flags, 'probe --version' for the build.")
}

// askedForHelp reports whether the arguments hold -h or --help among the flags (before "--").
func askedForHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "--h", "-help", "--help":
			return true
		}
	}
	return false
}

// helpCommand prints one command's usage line and flags on stdout (so it can be piped to a pager).
func helpCommand(name string, stdout, stderr io.Writer) int {
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "probe help: unknown command %q\n", name)
		usage(stderr)
		return 2
	}
	// Every command answers -h by printing its usage through the flag set, before any work.
	cmd.run([]string{"-h"}, stdout, stdout)
	return 0
}

// printVersion says which build this is: the module version, the VCS commit it was built from
// (when go build recorded one), the Go toolchain and the matrix-multiply kernel in use, so a
// result can be tied to the code that made it.
func printVersion(w io.Writer) {
	version, commit, goVersion := "(unknown)", "not recorded (go run, -buildvcs=false and builds outside a git clone record none)", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		var rev, when, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			commit = rev
			if when != "" {
				commit += " (" + when + ")"
			}
			if modified == "true" {
				commit += " with uncommitted changes"
			}
		}
	}
	fmt.Fprintf(w, "probe %s\ncommit: %s\ngo: %s %s/%s\nkernel: %s\n", version, commit, goVersion, runtime.GOOS, runtime.GOARCH, sgemm.Kernel())
}

// newFlagSet returns a flag set that reports parse errors to stderr and never exits.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("probe "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Taken out of the arguments by runMain (cutProfileFlag); registered here for the help text.
	fs.String("cpuprofile", "", "write a CPU profile of the whole command to this file (read it with go tool pprof)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args with flags allowed anywhere among the positional arguments ("probe
// classify --model DIR a.png --top 2"), as a user expects; "--" ends the flags. Every command
// parses through it so they all agree. fs.Args() holds the positional arguments afterwards.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			positional = append(positional, rest...) // the flag package stopped at "--"
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	// Parsing "--" then the positional arguments leaves exactly them in fs.Args().
	return fs.Parse(append([]string{"--"}, positional...))
}

// badUsage tells the user, in one line on the flag set's output, what is wrong with the arguments
// (the first problem it finds: a stray positional argument, a missing required flag, or a choice
// of flags given twice or not at all), then prints the usage. Each rule names a required flag
// ("out") or a choice of exactly one ("model|random"). A flag counts as given when it was set to a
// non-empty value that is not false.
func badUsage(fs *flag.FlagSet, rules ...string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		if v := f.Value.String(); v != "" && v != "false" {
			given[f.Name] = true
		}
	})
	msg := ""
	if fs.NArg() > 0 && !slices.Contains(rules, "args") {
		msg = fmt.Sprintf("unexpected argument %q: this command takes only flags", fs.Arg(0))
	}
	for _, rule := range rules {
		if msg != "" {
			break
		}
		if rule == "args" {
			continue
		}
		names := strings.Split(rule, "|")
		var set []string
		for _, n := range names {
			if given[n] {
				set = append(set, "--"+n)
			}
		}
		switch {
		case len(set) == 0 && len(names) == 1:
			msg = "--" + names[0] + " is required"
		case len(set) == 0:
			msg = "one of --" + strings.Join(names, ", --") + " is required"
		case len(set) > 1:
			msg = strings.Join(set, " and ") + " cannot be used together: give one"
		}
	}
	return usageFault(fs, msg)
}

// usageFault prints msg (when not empty) as one line naming the command, then the usage.
func usageFault(fs *flag.FlagSet, msg string) error {
	if msg != "" {
		fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), msg)
	}
	fs.Usage()
	return errUsage
}

// unsetInt is an int flag whose "not given" value (a sentinel such as -1) prints as nothing, so
// the help line shows the default its usage text describes ("default: the prediction") and not
// a second, meaningless "(default -1)".
type unsetInt struct {
	p     *int
	unset int
}

func (u *unsetInt) String() string {
	if u == nil || u.p == nil || *u.p == u.unset {
		return ""
	}
	return strconv.Itoa(*u.p)
}

func (u *unsetInt) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	*u.p = v
	return nil
}

// optionalInt defines an int flag that holds unset until given; see unsetInt.
func optionalInt(fs *flag.FlagSet, name string, unset int, usage string) *int {
	p := new(int)
	optionalIntVar(fs, p, name, unset, usage)
	return p
}

func optionalIntVar(fs *flag.FlagSet, p *int, name string, unset int, usage string) {
	*p = unset
	fs.Var(&unsetInt{p: p, unset: unset}, name, usage)
}
