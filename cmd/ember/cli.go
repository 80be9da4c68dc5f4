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
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
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

const deployUsage = `usage: ember deploy NAME PATH [flags]
       ember deploy PATH --name NAME [flags]
  PATH is a directory (zipped for you, file modes kept) or a .zip file.
  Creates the function, or updates its code (and the given settings).
`

func runDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, deployUsage); fs.PrintDefaults() }
	var cf clientFlags
	cf.register(fs)
	cf.stderr = stderr
	nameFlag := fs.String("name", "", "function name (instead of the first argument)")
	runtime := fs.String("runtime", "provided.al2023", "runtime")
	handler := fs.String("handler", "", "handler (for provided runtimes: any, e.g. bootstrap)")
	memory := fs.Int("memory", 0, "memory in MB (default 128 on create)")
	timeout := fs.Int("timeout", 0, "timeout in seconds (default 3 on create)")
	var env multiFlag
	fs.Var(&env, "env", "environment variable KEY=VALUE (repeatable)")
	pos, err := parseCommand(fs, args)
	if err != nil {
		return err
	}
	if *nameFlag != "" && len(pos) == 1 {
		pos = []string{*nameFlag, pos[0]}
	}
	if len(pos) != 2 {
		fs.Usage()
		return flag.ErrHelp
	}
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
		if *handler != "" || *memory > 0 || *timeout > 0 || vars != nil || fs.Lookup("runtime").Value.String() != "provided.al2023" {
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
			if *runtime != "provided.al2023" {
				in.Runtime = types.Runtime(*runtime)
			}
			u, err := c.UpdateFunctionConfiguration(ctx, in)
			if err != nil {
				return cliError(err)
			}
			r.RevisionId, r.MemorySize, r.Timeout = u.RevisionId, u.MemorySize, u.Timeout
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
		r.Body = &progressBody{ReadCloser: r.Body, total: r.ContentLength, out: p.out}
	}
	return http.DefaultTransport.RoundTrip(r)
}

type progressBody struct {
	io.ReadCloser
	total, sent int64
	last        atomic.Int64
	out         io.Writer
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.sent += int64(n)
	pct := b.sent * 100 / b.total
	if pct/10 != b.last.Load()/10 || err == io.EOF {
		b.last.Store(pct)
		fmt.Fprintf(b.out, "\ruploading %.1f MB: %d%%", float64(b.total)/(1<<20), pct)
		if pct == 100 {
			fmt.Fprintln(b.out)
		}
	}
	return n, err
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runInvoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, "usage: ember invoke NAME [PAYLOAD] [-l] [--json]\n"); fs.PrintDefaults() }
	var cf clientFlags
	cf.register(fs)
	showLog := fs.Bool("l", false, "print the invocation's log tail to stderr")
	pos, err := parseCommand(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		fs.Usage()
		return flag.ErrHelp
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
		return fmt.Errorf("the function failed (%s)", *out.FunctionError)
	}
	return nil
}

func orNull(b []byte) []byte {
	if json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(string(b))
	return q
}

func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ls", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	if _, err := parseCommand(fs, args); err != nil {
		return err
	}
	c, err := cf.lambda(ctx, false)
	if err != nil {
		return err
	}
	var all []types.FunctionConfiguration
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
	fs := flag.NewFlagSet("rm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	pos, err := parseCommand(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "usage: ember rm NAME...")
		return flag.ErrHelp
	}
	c, err := cf.lambda(ctx, false)
	if err != nil {
		return err
	}
	for _, name := range pos {
		if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(name)}); err != nil {
			return cliError(err)
		}
		fmt.Fprintf(stderr, "deleted %s\n", name)
	}
	return nil
}

func runLogs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	follow := fs.Bool("f", false, "follow: keep printing new lines")
	since := fs.Duration("since", time.Hour, "how far back to start")
	pos, err := parseCommand(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: ember logs NAME [-f] [--since 1h]")
		return flag.ErrHelp
	}
	c, err := cf.logs(ctx)
	if err != nil {
		return err
	}
	group := "/aws/lambda/" + pos[0]
	start := time.Now().Add(-*since).UnixMilli()
	seen := map[string]bool{}
	for {
		var token *string
		for {
			out, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{
				LogGroupName: aws.String(group), StartTime: aws.Int64(start), NextToken: token})
			if err != nil {
				return cliError(err)
			}
			for _, e := range out.Events {
				id := aws.ToString(e.EventId)
				if seen[id] {
					continue
				}
				seen[id] = true
				if ts := aws.ToInt64(e.Timestamp); ts > start {
					start = ts
				}
				msg := strings.TrimRight(aws.ToString(e.Message), "\n")
				if cf.json {
					_ = json.NewEncoder(stdout).Encode(map[string]any{"timestamp": e.Timestamp, "stream": e.LogStreamName, "message": msg})
				} else {
					fmt.Fprintf(stdout, "%s %s\n", time.UnixMilli(aws.ToInt64(e.Timestamp)).UTC().Format(time.RFC3339Nano), msg)
				}
			}
			if token = out.NextToken; token == nil {
				break
			}
		}
		if !*follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}
