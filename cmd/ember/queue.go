package main

// `ember queue create|ls|rm|read`: Ember queues, the destinations and
// dead-letter queues of asynchronous invocations, through Ember's queue
// API (/ember/v1/queues, SigV4 service "ember"), with the endpoint and
// credentials every client command uses.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const queueUsage = `usage: ember queue create NAME [--retention 96h] [--visibility 30s]
       ember queue ls
       ember queue rm NAME [--force]
       ember queue read NAME [--max 10] [--wait 0s] [--peek]
  A queue's ARN (arn:aws:sqs:REGION:ACCOUNT:NAME) is a destination of
  asynchronous invocations (OnSuccess, OnFailure) and a function's
  DeadLetterConfig target. read receives messages, prints them and then
  deletes them (a message not deleted, e.g. because read was killed, is
  received again after the queue's visibility timeout); --peek prints
  without receiving or deleting.
  (each takes --json for scripts)
`

func runQueue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, queueUsage)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("queue "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, queueUsage); fs.PrintDefaults() }
	var cf clientFlags
	cf.register(fs)
	cf.stderr = stderr
	c := &queueClient{cf: &cf}
	switch args[0] {
	case "create":
		retention := fs.Duration("retention", 0, "how long messages are kept (60s to 336h; default 96h)")
		visibility := fs.Duration("visibility", 0, "how long a received message stays invisible before it is received again (default 30s)")
		name, err := oneName(fs, args[1:])
		if err != nil {
			return err
		}
		in := map[string]any{"QueueName": name}
		if *retention > 0 {
			in["MessageRetentionPeriod"] = int(retention.Seconds())
		}
		if *visibility > 0 {
			in["VisibilityTimeout"] = int(visibility.Seconds())
		}
		var out queueInfo
		status, err := c.call(ctx, http.MethodPost, "/ember/v1/queues", in, &out)
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, out)
		}
		if status == http.StatusCreated {
			fmt.Fprintf(stderr, "created %s\n", name)
		} else {
			fmt.Fprintf(stderr, "%s exists\n", name)
		}
		fmt.Fprintln(stdout, out.QueueArn)
		return nil
	case "ls":
		if _, err := parseCommand(fs, args[1:]); err != nil {
			return err
		}
		var out struct{ Queues []queueInfo }
		if _, err := c.call(ctx, http.MethodGet, "/ember/v1/queues", nil, &out); err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, out.Queues)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tMESSAGES\tIN FLIGHT\tRETENTION\tVISIBILITY\tARN")
		for _, q := range out.Queues {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", q.QueueName, q.ApproximateNumberOfMessages, q.ApproximateNumberOfMessagesNotVisible,
				time.Duration(q.MessageRetentionPeriod)*time.Second, time.Duration(q.VisibilityTimeout)*time.Second, q.QueueArn)
		}
		return tw.Flush()
	case "rm":
		force := fs.Bool("force", false, "delete it even if a destination or dead-letter config names it (records for it are then dropped)")
		pos, err := parseCommand(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) == 0 {
			fs.Usage()
			return flag.ErrHelp
		}
		for _, name := range pos {
			path := "/ember/v1/queues/" + url.PathEscape(name)
			if *force {
				path += "?Force=true"
			}
			if _, err := c.call(ctx, http.MethodDelete, path, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "deleted %s\n", name)
		}
		return nil
	case "read":
		n := fs.Int("max", 10, "most messages to read (1-100)")
		wait := fs.Duration("wait", 0, "how long to wait for a first message (up to 20s)")
		peek := fs.Bool("peek", false, "print messages without receiving or deleting them")
		name, err := oneName(fs, args[1:])
		if err != nil {
			return err
		}
		return c.read(ctx, stdout, name, *n, *wait, *peek)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, queueUsage)
		return nil
	default:
		fmt.Fprint(stderr, queueUsage)
		return fmt.Errorf("unknown queue command %q", args[0])
	}
}

func oneName(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parseCommand(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		fs.Usage()
		return "", flag.ErrHelp
	}
	return pos[0], nil
}

// queueInfo is a queue as the API describes it.
type queueInfo struct {
	QueueName                             string
	QueueArn                              string
	CreatedTimestamp                      int64
	MessageRetentionPeriod                int
	VisibilityTimeout                     int
	ApproximateNumberOfMessages           uint64
	ApproximateNumberOfMessagesNotVisible uint64
}

// queueMessage is a message as the API answers it.
type queueMessage struct {
	MessageId         string
	ReceiptHandle     string `json:",omitempty"`
	Sequence          uint64
	Body              string
	Attributes        map[string]string
	MessageAttributes map[string]string `json:",omitempty"`
}

// read prints messages: received then deleted, or peeked.
func (c *queueClient) read(ctx context.Context, stdout io.Writer, name string, n int, wait time.Duration, peek bool) error {
	base := "/ember/v1/queues/" + url.PathEscape(name)
	var out struct{ Messages []queueMessage }
	if peek {
		if _, err := c.call(ctx, http.MethodGet, base+"/messages?MaxNumberOfMessages="+strconv.Itoa(n), nil, &out); err != nil {
			return err
		}
	} else {
		in := map[string]any{"MaxNumberOfMessages": n, "WaitTimeSeconds": int(wait.Round(time.Second).Seconds())}
		if _, err := c.call(ctx, http.MethodPost, base+"/receive", in, &out); err != nil {
			return err
		}
	}
	if c.cf.json {
		if out.Messages == nil {
			out.Messages = []queueMessage{}
		}
		if err := printJSON(stdout, out.Messages); err != nil {
			return err
		}
	} else {
		for _, m := range out.Messages {
			printMessage(stdout, m)
		}
	}
	if peek || len(out.Messages) == 0 {
		return nil
	}
	// Printed: now they may go.
	handles := make([]string, len(out.Messages))
	for i, m := range out.Messages {
		handles[i] = m.ReceiptHandle
	}
	var del struct {
		Deleted int
		Failed  []string
	}
	if _, err := c.call(ctx, http.MethodPost, base+"/delete-messages", map[string]any{"ReceiptHandles": handles}, &del); err != nil {
		return fmt.Errorf("the messages were printed but not deleted (they will be received again): %w", err)
	}
	if len(del.Failed) > 0 {
		return fmt.Errorf("%d of the messages printed were not deleted (they will be received again)", len(del.Failed))
	}
	return nil
}

// printMessage prints one message: a header line, its attributes, and
// its body (indented if it is JSON).
func printMessage(w io.Writer, m queueMessage) {
	sent := ""
	if ms, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64); err == nil {
		sent = time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(w, "--- message %s (#%d, sent %s", m.MessageId, m.Sequence, sent)
	if rc := m.Attributes["ApproximateReceiveCount"]; rc != "" {
		fmt.Fprintf(w, ", received %s times", rc)
	}
	fmt.Fprintln(w, ")")
	for _, k := range []string{"RequestID", "ErrorCode", "ErrorMessage"} {
		if v, ok := m.MessageAttributes[k]; ok {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(m.Body), "", "  ") == nil {
		fmt.Fprintln(w, buf.String())
	} else {
		fmt.Fprintln(w, m.Body)
	}
}

// queueClient calls Ember's queue API, signed like the account API.
type queueClient struct{ cf *clientFlags }

// call sends a signed request with a JSON body (if in is not nil) and
// decodes the answer into out (if not nil); an error answer becomes an
// error naming its type.
func (c *queueClient) call(ctx context.Context, method, path string, in, out any) (int, error) {
	cfg, err := c.cf.awsConfig(ctx)
	if err != nil {
		return 0, err
	}
	if cfg.Credentials == nil {
		return 0, errors.New("no credentials: set the AWS variables, or use --data-dir of a local installation")
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return 0, err
	}
	var body []byte
	if in != nil {
		if body, err = json.Marshal(in); err != nil {
			return 0, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.cf.endpoint, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "ember", c.cf.region, time.Now()); err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(b, &e)
		if e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		return resp.StatusCode, fmt.Errorf("%s: %s", resp.Header.Get("X-Amzn-ErrorType"), e.Message)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("a bad answer from Ember: %w", err)
		}
	}
	return resp.StatusCode, nil
}
