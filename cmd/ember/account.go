package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/emberfn/ember/internal/auth"
)

// runAccountCreate asks a running Ember to create an account, signed with
// an administrator's keys, and prints the new account's keys.
func runAccountCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("account create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", envOr("EMBER_ENDPOINT", "http://127.0.0.1:9070"), "Ember endpoint")
	dataDir := fs.String("data-dir", defaultDataDir(), "data dir whose credentials file to use")
	credFile := fs.String("credentials", "", "administrator's credentials file (default DATA_DIR/credentials)")
	profile := fs.String("profile", "default", "profile in the credentials file")
	region := fs.String("region", "us-east-1", "region")
	write := fs.String("write", "", "also add the new keys to this credentials file, as a profile named after the account")
	name, rest := "", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, rest = args[0], args[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	}
	if name == "" {
		return fmt.Errorf("account create: NAME is required")
	}
	if *credFile == "" {
		*credFile = filepath.Join(*dataDir, "credentials")
	}
	id, secret, err := auth.ReadCredentials(*credFile, *profile)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"Name": name})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*endpoint, "/")+"/ember/v1/accounts", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	err = v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: id, SecretAccessKey: secret},
		req, hex.EncodeToString(sum[:]), "ember", *region, time.Now())
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("account create: %s: %s %s", resp.Status, resp.Header.Get("X-Amzn-ErrorType"), out)
	}
	var acct auth.NewAccount
	if err := json.Unmarshal(out, &acct); err != nil {
		return fmt.Errorf("account create: bad answer: %w", err)
	}
	if *write != "" {
		if err := auth.WriteCredentials(*write, acct.Name, acct.AccessKeyID, acct.SecretAccessKey); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "ember: added profile [%s] to %s\n", acct.Name, *write)
	}
	fmt.Fprintf(stdout, "# account %s (%s)\n[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
		acct.AccountID, acct.Name, acct.Name, acct.AccessKeyID, acct.SecretAccessKey)
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
