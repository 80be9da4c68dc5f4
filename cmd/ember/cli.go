package main

// The `ember` CLI for people: deploy, invoke, logs, ls, rm. It talks to
// Ember like any client (the Lambda and CloudWatch Logs APIs, SigV4), with
// the endpoint from --endpoint or EMBER_ENDPOINT and credentials from the
// standard AWS chain, or else from the local installation's credentials
// file.

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"

	"github.com/emberfn/ember/internal/auth"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	endpoint string
	region   string
	dataDir  string
	json     bool
	stderr   io.Writer
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.endpoint, "endpoint", envOr("EMBER_ENDPOINT", "http://127.0.0.1:9070"), "Ember endpoint (EMBER_ENDPOINT)")
	fs.StringVar(&c.region, "region", envOr("AWS_REGION", "us-east-1"), "region")
	fs.StringVar(&c.dataDir, "data-dir", defaultDataDir(), "local installation whose credentials to use when the AWS chain has none")
	fs.BoolVar(&c.json, "json", false, "print JSON, for scripts")
}

// awsConfig is the AWS configuration: the standard chain when the user set
// any of its variables, else the local installation's keys.
func (c *clientFlags) awsConfig(ctx context.Context) (aws.Config, error) {
	local := filepath.Join(c.dataDir, "credentials")
	chainSet := os.Getenv("AWS_ACCESS_KEY_ID") != "" || os.Getenv("AWS_SHARED_CREDENTIALS_FILE") != "" || os.Getenv("AWS_PROFILE") != ""
	if _, err := os.Stat(local); err == nil && !chainSet {
		id, secret, err := auth.ReadCredentials(local, "default")
		if err != nil {
			return aws.Config{}, err
		}
		return aws.Config{Region: c.region, Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")}, nil
	}
	return config.LoadDefaultConfig(ctx, config.WithRegion(c.region))
}

func (c *clientFlags) lambda(ctx context.Context, progress bool) (*lambda.Client, error) {
	cfg, err := c.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	return lambda.NewFromConfig(cfg, func(o *lambda.Options) {
		o.BaseEndpoint = aws.String(c.endpoint)
		if progress {
			o.HTTPClient = &http.Client{Transport: &progressTransport{out: c.stderr}}
		}
	}), nil
}

func (c *clientFlags) logs(ctx context.Context) (*cloudwatchlogs.Client, error) {
	cfg, err := c.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	return cloudwatchlogs.NewFromConfig(cfg, func(o *cloudwatchlogs.Options) { o.BaseEndpoint = aws.String(c.endpoint) }), nil
}

// cliError makes an API error readable: its Lambda type and message.
func cliError(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("%s: %s", ae.ErrorCode(), ae.ErrorMessage())
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseCommand parses flags that may come before or after the positional
// arguments.
func parseCommand(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// helpAsked says whether args ask for help (-h, -help or --help before
// a "--").
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// errUsage is a command used wrongly: its usage has been printed to
// stderr; main exits 2 without another message.
var errUsage = errors.New("usage")

// command is a client subcommand's flag set with its help: a synopsis, a
// description, then the flags. Help asked for (-h, --help) goes to stdout
// and the command returns flag.ErrHelp, which main turns into exit 0; a
// wrong use prints the help to stderr and returns errUsage.
type command struct {
	*flag.FlagSet
	synopsis, about string
	stdout, stderr  io.Writer
}

func newCommand(name, synopsis, about string, stdout, stderr io.Writer) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // parse prints the help where it belongs
	return &command{FlagSet: fs, synopsis: synopsis, about: about, stdout: stdout, stderr: stderr}
}

// help prints the synopsis, the description and the flags to w.
func (c *command) help(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n\nflags:\n", c.synopsis, c.about)
	c.SetOutput(w)
	c.PrintDefaults()
	c.SetOutput(c.stderr)
}

// parse parses flags before or after the positional arguments.
func (c *command) parse(args []string) ([]string, error) {
	pos, err := parseCommand(c.FlagSet, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.help(c.stdout)
		return nil, flag.ErrHelp
	case err != nil: // the flag package printed what was wrong
		c.help(c.stderr)
		return nil, errUsage
	}
	return pos, nil
}

// misuse reports a wrong use of the command with its help.
func (c *command) misuse(format string, args ...any) error {
	fmt.Fprintf(c.stderr, "ember %s: %s\n", c.Name(), fmt.Sprintf(format, args...))
	c.help(c.stderr)
	return errUsage
}

func runDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("deploy", "ember deploy NAME PATH [flags]\n       ember deploy PATH --name NAME [flags]",
		"Create the function NAME from PATH, or, if it exists, update its code and the\n"+
			"settings given. PATH is a directory (zipped for you, file modes and symbolic\n"+
			"links kept) or a .zip file. Packages over 1 MB show their upload progress.",
		stdout, stderr)
	var cf clientFlags
	cf.register(fs.FlagSet)
	cf.stderr = stderr
	nameFlag := fs.String("name", "", "function name (instead of the first argument)")
	runtime := fs.String("runtime", "provided.al2023", "runtime")
	handler := fs.String("handler", "", "handler (for provided runtimes: any, e.g. bootstrap)")
	memory := fs.Int("memory", 0, "memory in MB (default 128 on create)")
	timeout := fs.Int("timeout", 0, "timeout in seconds (default 3 on create)")
	var env multiFlag
	fs.Var(&env, "env", "environment variable KEY=VALUE (repeatable)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *nameFlag != "" && len(pos) == 1 {
		pos = []string{*nameFlag, pos[0]}
	}
	if len(pos) != 2 {
		return fs.misuse("want a function name and a path")
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	name, path := pos[0], pos[1]
	zipBytes, err := packagePath(path)
	if err != nil {
		return err
	}
	c, err := cf.lambda(ctx, len(zipBytes) > 1<<20)
	if err != nil {
		return err
	}
	var vars map[string]string
	if len(env) > 0 {
		vars = map[string]string{}
		for _, kv := range env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("--env %q: want KEY=VALUE", kv)
			}
			vars[k] = v
		}
	}
	var out *types.FunctionConfiguration
	_, err = c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(name)})
	var nf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		in := &lambda.CreateFunctionInput{FunctionName: aws.String(name), Runtime: types.Runtime(*runtime),
			Code: &types.FunctionCode{ZipFile: zipBytes}, Role: aws.String("arn:aws:iam::000000000000:role/ember")}
		if *handler != "" {
			in.Handler = handler
		}
		if *memory > 0 {
			in.MemorySize = aws.Int32(int32(*memory))
		}
		if *timeout > 0 {
			in.Timeout = aws.Int32(int32(*timeout))
		}
		if vars != nil {
			in.Environment = &types.Environment{Variables: vars}
		}
		r, err := c.CreateFunction(ctx, in)
		if err != nil {
			return cliError(err)
		}
		out = &types.FunctionConfiguration{FunctionName: r.FunctionName, FunctionArn: r.FunctionArn, CodeSha256: r.CodeSha256,
			CodeSize: r.CodeSize, Runtime: r.Runtime, MemorySize: r.MemorySize, Timeout: r.Timeout, RevisionId: r.RevisionId}
		fmt.Fprintf(stderr, "created %s\n", name)
	case err != nil:
		return cliError(err)
	default:
		r, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String(name), ZipFile: zipBytes})
		if err != nil {
			return cliError(err)
		}
		if *handler != "" || *memory > 0 || *timeout > 0 || vars != nil || given["runtime"] {
			in := &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(name)}
			if *handler != "" {
				in.Handler = handler
			}
			if *memory > 0 {
				in.MemorySize = aws.Int32(int32(*memory))
			}
			if *timeout > 0 {
				in.Timeout = aws.Int32(int32(*timeout))
			}
			if vars != nil {
				in.Environment = &types.Environment{Variables: vars}
			}
			if given["runtime"] { // even the default, when asked for
				in.Runtime = types.Runtime(*runtime)
			}
			u, err := c.UpdateFunctionConfiguration(ctx, in)
			if err != nil {
				return cliError(err)
			}
			r.RevisionId, r.MemorySize, r.Timeout, r.Runtime = u.RevisionId, u.MemorySize, u.Timeout, u.Runtime
		}
		out = &types.FunctionConfiguration{FunctionName: r.FunctionName, FunctionArn: r.FunctionArn, CodeSha256: r.CodeSha256,
			CodeSize: r.CodeSize, Runtime: r.Runtime, MemorySize: r.MemorySize, Timeout: r.Timeout, RevisionId: r.RevisionId}
		fmt.Fprintf(stderr, "updated %s\n", name)
	}
	if cf.json {
		return printJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "%s\t%s\t%d bytes\tsha256 %s\n", aws.ToString(out.FunctionArn), out.Runtime, out.CodeSize, aws.ToString(out.CodeSha256))
	return nil
}

// packagePath reads a .zip, or zips a directory keeping file modes and
// symbolic links.
func packagePath(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return os.ReadFile(path)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == path {
			return err
		}
		rel, _ := filepath.Rel(path, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := zip.FileInfoHeader(info)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
			_, err = zw.CreateHeader(h)
			return err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			w, err := zw.CreateHeader(h)
			if err != nil {
				return err
			}
			_, err = io.WriteString(w, target)
			return err
		}
		h.Method = zip.Deflate
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// progressTransport reports how much of a large request body was sent.
type progressTransport struct{ out io.Writer }

func (p *progressTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.ContentLength > 1<<20 {
		r.Body = &progressBody{ReadCloser: r.Body, total: r.ContentLength, shown: -1, out: p.out}
	}
	return http.DefaultTransport.RoundTrip(r)
}

type progressBody struct {
	io.ReadCloser
	total, sent int64
	shown       int64 // the last tenth shown; -1 before the first
	out         io.Writer
}

// Read shows the progress at 0% and at each further tenth, 100% once.
func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.sent += int64(n)
	if tenth := b.sent * 10 / b.total; tenth != b.shown && b.sent <= b.total {
		b.shown = tenth
		fmt.Fprintf(b.out, "\ruploading %.1f MB: %d%%", float64(b.total)/(1<<20), tenth*10)
		if tenth == 10 {
			fmt.Fprintln(b.out)
		}
	}
	return n, err
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runInvoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("invoke", "ember invoke NAME [PAYLOAD|-] [flags]",
		"Invoke the function NAME (or NAME:QUALIFIER) and wait for its result, which is\n"+
			"printed. PAYLOAD is the JSON event (default {}); - reads it from stdin. If the\n"+
			"function fails, its error type and message are printed and ember exits 2.",
		stdout, stderr)
	var cf clientFlags
	cf.register(fs.FlagSet)
	showLog := fs.Bool("l", false, "print the invocation's log tail (its last 4 KB) to stderr")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return fs.misuse("want a function name and at most one payload")
	}
	payload := []byte("{}")
	if len(pos) == 2 {
		payload = []byte(pos[1])
		if pos[1] == "-" {
			if payload, err = io.ReadAll(os.Stdin); err != nil {
				return err
			}
		}
	}
	c, err := cf.lambda(ctx, false)
	if err != nil {
		return err
	}
	in := &lambda.InvokeInput{FunctionName: aws.String(pos[0]), Payload: payload}
	if *showLog || cf.json {
		in.LogType = types.LogTypeTail
	}
	out, err := c.Invoke(ctx, in)
	if err != nil {
		return cliError(err)
	}
	logText := ""
	if out.LogResult != nil {
		b, _ := base64.StdEncoding.DecodeString(*out.LogResult)
		logText = string(b)
	}
	if cf.json {
		if err := printJSON(stdout, map[string]any{"StatusCode": out.StatusCode, "ExecutedVersion": out.ExecutedVersion,
			"FunctionError": out.FunctionError, "Payload": json.RawMessage(orNull(out.Payload)), "Log": logText}); err != nil {
			return err
		}
	} else {
		stdout.Write(out.Payload)
		fmt.Fprintln(stdout)
		if *showLog {
			fmt.Fprint(stderr, logText)
		}
	}
	if out.FunctionError != nil {
		return functionError(aws.ToString(out.FunctionError), out.Payload)
	}
	return nil
}

// functionError is a failed invocation's error as Lambda reports it in
// the payload ("Sandbox.Timedout: Task timed out after 1.00 seconds"), or
// the X-Amz-Function-Error kind if the payload has no error type.
func functionError(kind string, payload []byte) error {
	var e struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal(payload, &e) != nil || e.ErrorType == "" {
		return fmt.Errorf("the function failed (%s)", kind)
	}
	if e.ErrorMessage == "" {
		return errors.New(e.ErrorType)
	}
	return fmt.Errorf("%s: %s", e.ErrorType, e.ErrorMessage)
}

func orNull(b []byte) []byte {
	if json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(string(b))
	return q
}

func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("ls", "ember ls [flags]",
		"List the account's functions: name, runtime, memory, timeout, code size and\n"+
			"when each was last modified.",
		stdout, stderr)
	var cf clientFlags
	cf.register(fs.FlagSet)
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fs.misuse("takes no arguments")
	}
	c, err := cf.lambda(ctx, false)
	if err != nil {
		return err
	}
	all := []types.FunctionConfiguration{}
	p := lambda.NewListFunctionsPaginator(c, &lambda.ListFunctionsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return cliError(err)
		}
		all = append(all, page.Functions...)
	}
	if cf.json {
		return printJSON(stdout, all)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tRUNTIME\tMEMORY\tTIMEOUT\tCODE\tLAST MODIFIED")
	for _, f := range all {
		fmt.Fprintf(tw, "%s\t%s\t%d MB\t%d s\t%d B\t%s\n", aws.ToString(f.FunctionName), f.Runtime,
			aws.ToInt32(f.MemorySize), aws.ToInt32(f.Timeout), f.CodeSize, aws.ToString(f.LastModified))
	}
	return tw.Flush()
}

func runRm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("rm", "ember rm NAME... [flags]",
		"Delete functions, each with all its versions and aliases. With --json, print\n"+
			`{"Deleted": [names]}; a name that fails stops there, the ones before it deleted.`,
		stdout, stderr)
	var cf clientFlags
	cf.register(fs.FlagSet)
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fs.misuse("want at least one function name")
	}
	c, err := cf.lambda(ctx, false)
	if err != nil {
		return err
	}
	deleted := []string{}
	for _, name := range pos {
		if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(name)}); err != nil {
			if cf.json && len(deleted) > 0 {
				_ = printJSON(stdout, map[string]any{"Deleted": deleted})
			}
			return fmt.Errorf("%s: %w", name, cliError(err))
		}
		deleted = append(deleted, name)
		if !cf.json {
			fmt.Fprintf(stderr, "deleted %s\n", name)
		}
	}
	if cf.json {
		return printJSON(stdout, map[string]any{"Deleted": deleted})
	}
	return nil
}

// logsPoll is how often `ember logs -f` asks for new lines.
const logsPoll = time.Second

func runLogs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("logs", "ember logs NAME [-f] [--since 1h] [flags]",
		"Print the log of the function NAME (log group /aws/lambda/NAME), its streams\n"+
			"interleaved by time. With -f, keep printing new lines as they come, until\n"+
			"interrupted; also for a function that has logged nothing yet.",
		stdout, stderr)
	var cf clientFlags
	cf.register(fs.FlagSet)
	follow := fs.Bool("f", false, "follow: keep printing new lines")
	since := fs.Duration("since", time.Hour, "how far back to start")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fs.misuse("want one function name")
	}
	c, err := cf.logs(ctx)
	if err != nil {
		return err
	}
	f := &logFollower{c: c, group: "/aws/lambda/" + pos[0], start: time.Now().Add(-*since).UnixMilli(),
		seen: map[string]int64{}, out: stdout, json: cf.json}
	waiting := false
	for {
		err := f.poll(ctx)
		var nf *cwtypes.ResourceNotFoundException
		switch {
		case ctx.Err() != nil:
			return nil // interrupted
		case errors.As(err, &nf) && *follow:
			// No line logged yet: the group appears with the first.
			if !waiting {
				fmt.Fprintf(stderr, "waiting for the first line of %s\n", f.group)
				waiting = true
			}
		case err != nil:
			return cliError(err)
		}
		if !*follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(logsPoll):
		}
	}
}

// logFollower reads a log group as `aws logs tail --follow` does: every
// event from start on, page by page, then start moves to the newest
// timestamp seen; events at that millisecond come again and are told
// apart by their ids.
type logFollower struct {
	c     *cloudwatchlogs.Client
	group string
	start int64            // ms; the next poll asks from here
	seen  map[string]int64 // ids printed, with their timestamps, at or after start
	out   io.Writer
	json  bool
}

// poll prints the events not printed yet, then forgets the ids of events
// before the new start: no query returns them again, so the map holds
// only the last millisecond's events however long the follow runs.
func (f *logFollower) poll(ctx context.Context) error {
	from, newest := f.start, f.start
	var token *string
	for {
		out, err := f.c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{
			LogGroupName: aws.String(f.group), StartTime: aws.Int64(from), Interleaved: aws.Bool(true), NextToken: token})
		if err != nil {
			return err
		}
		for _, e := range out.Events {
			id, ts := aws.ToString(e.EventId), aws.ToInt64(e.Timestamp)
			if _, dup := f.seen[id]; dup {
				continue
			}
			f.seen[id] = ts
			newest = max(newest, ts)
			msg := strings.TrimRight(aws.ToString(e.Message), "\n")
			if f.json {
				_ = json.NewEncoder(f.out).Encode(map[string]any{"timestamp": ts, "stream": aws.ToString(e.LogStreamName), "eventId": id, "message": msg})
			} else {
				fmt.Fprintf(f.out, "%s %s\n", time.UnixMilli(ts).UTC().Format("2006-01-02T15:04:05.000Z"), msg)
			}
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	f.start = newest
	for id, ts := range f.seen {
		if ts < f.start {
			delete(f.seen, id)
		}
	}
	return nil
}
