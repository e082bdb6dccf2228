// Command storesync keeps a Postgres ledger of App Store subscriptions equal
// to Apple's truth. Each sub-command lives in its own cmd_*.go file and only
// wires packages together; commands lists them all.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// command is one sub-command. run returns a *usageError for bad flags or
// arguments (exit 2) and any other error for a runtime failure (exit 1).
type command struct {
	name    string
	summary string
	usage   string // "storesync NAME ..." line(s) and flag help
	run     func(ctx context.Context, cli *cli, args []string) error
}

// cli is what a command may touch of the outside world, so tests can run
// commands in-process.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// commands lists every sub-command, in the order `storesync help` prints
// them (by name). One list in one place, rather than each file registering
// itself, so what the binary offers reads at a glance and no init order
// matters.
func commands() []*command {
	return []*command{
		backfillCommand(),
		demoCommand(),
		endpointsCommand(),
		eventsCommand(),
		importCommand(),
		migrateCommand(),
		reconcileCommand(),
		compactCommand(),
		resubmitCommand(),
		resyncCommand(),
		serveCommand(),
		showCommand(),
		simCommand(),
		statusCommand(),
		verifyCommand(),
	}
}

// lookup returns the command called name.
func lookup(name string) (*command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return nil, false
}

// usageError is a bad flag, argument or command: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(ctx, c, os.Args[1:]))
}

// run executes one command line and returns the process exit status.
func run(ctx context.Context, c *cli, args []string) int {
	if len(args) == 0 {
		args = []string{"demo"}
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		if len(args) > 1 {
			if cmd, ok := lookup(args[1]); ok {
				fmt.Fprintf(c.stdout, "%s\n\n%s\n", cmd.summary, strings.TrimSpace(cmd.usage))
				return 0
			}
			fmt.Fprintf(c.stderr, "storesync: unknown command %q\n", args[1])
			printUsage(c.stderr)
			return 2
		}
		printUsage(c.stdout)
		return 0
	}
	cmd, ok := lookup(name)
	if !ok {
		fmt.Fprintf(c.stderr, "storesync: unknown command %q\n", name)
		printUsage(c.stderr)
		return 2
	}
	err := cmd.run(ctx, c, args[1:])
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(c.stdout, "%s\n\n%s\n", cmd.summary, strings.TrimSpace(cmd.usage))
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "storesync %s: %s\nusage: %s\n", name, ue.msg, firstLine(cmd.usage))
		return 2
	default:
		fmt.Fprintf(c.stderr, "storesync %s: %s\n", name, err)
		return 1
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: storesync <command> [flags] [args]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nstoresync help <command> explains one command. With no command, storesync runs the demo.")
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// parseFlags parses fs from args, allowing flags after positional arguments
// ("import file.csv --wait" as well as "import --wait file.csv"). "--" ends
// flag parsing. It returns the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%s", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
