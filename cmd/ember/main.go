// Command ember is the one binary of Ember, a self-hosted serverless
// function platform that speaks AWS Lambda's protocols.
//
//	ember serve [--listen ADDR] [--data-dir DIR] [--nats URL] [--region R]
//	ember account create NAME [--endpoint URL] [--credentials FILE] [--profile P] [--write FILE]
//	ember bench [--n N] [--cold N] [--json]
//	ember deploy|invoke|logs|ls|rm ...
//	ember queue create|ls|rm|read ...
//	ember version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		switch {
		case errors.Is(err, flag.ErrHelp) && helpAsked(os.Args[1:]):
			return // the help asked for is printed: exit 0
		case errors.Is(err, flag.ErrHelp), errors.Is(err, errUsage):
			// the usage is printed
		default:
			fmt.Fprintln(os.Stderr, "ember:", err)
		}
		os.Exit(2)
	}
}

const usage = `ember: a self-hosted serverless platform that speaks AWS Lambda's API.

Run it:
  ember serve [--listen 127.0.0.1:9070] [--data-dir DIR] [--nats nats://...] [--region us-east-1]

Use it (endpoint: --endpoint or EMBER_ENDPOINT; keys: the AWS chain, else DATA_DIR/credentials):
  ember deploy NAME PATH [--runtime R] [--handler H] [--memory MB] [--timeout S] [--env K=V]
  ember invoke NAME [PAYLOAD|-] [-l]      print the result; -l also the log tail
  ember logs NAME [-f] [--since 1h]       print (and follow) the function's log
  ember ls                                list functions
  ember rm NAME...                        delete functions
  ember queue create|ls|rm|read NAME      Ember queues: async destinations, dead-letter queues
  (each takes --json for scripts; ember COMMAND --help describes one)

Administer it:
  ember account create NAME [--endpoint URL] [--credentials FILE] [--profile default] [--write FILE]
  ember bench [--n 2000] [--cold 30] [--json]   (from the repository root, as root)
  ember trace gen [--out FILE] | trace replay FILE   keep-alive policies on a synthetic trace
  ember version
`

// run is main without the process: tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "account":
		if len(args) < 2 || args[1] != "create" {
			fmt.Fprint(stderr, usage)
			return flag.ErrHelp
		}
		return runAccountCreate(ctx, args[2:], stdout, stderr)
	case "deploy":
		return runDeploy(ctx, args[1:], stdout, stderr)
	case "invoke":
		return runInvoke(ctx, args[1:], stdout, stderr)
	case "logs":
		return runLogs(ctx, args[1:], stdout, stderr)
	case "ls":
		return runLs(ctx, args[1:], stdout, stderr)
	case "rm":
		return runRm(ctx, args[1:], stdout, stderr)
	case "queue":
		return runQueue(ctx, args[1:], stdout, stderr)
	case "trace":
		return runTrace(args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "ember", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// defaultDataDir is a per-user directory: $XDG_DATA_HOME/ember, else
// ~/.local/share/ember, else ./ember-data.
func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return d + "/ember"
	}
	if h, err := os.UserHomeDir(); err == nil {
		return h + "/.local/share/ember"
	}
	return "ember-data"
}
