package logs_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/logs"
	"github.com/emberfn/ember/internal/natsd"
)

const (
	alice = "111111111111"
	bob   = "222222222222"
)

// fakeAuth trusts the access key id of a request's Authorization header
// (the SDK signs; the signature itself is auth's business and tested there)
// and checks the credential scope's service.
type fakeAuth struct{}

var credRE = regexp.MustCompile(`Credential=([A-Z]+)/\d{8}/[^/]+/([^/]+)/aws4_request`)

func (fakeAuth) Verify(_ context.Context, r *http.Request, _ []byte, service string) (auth.Principal, error) {
	m := credRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return auth.Principal{}, lambdaapi.Errorf(lambdaapi.MissingAuthenticationToken, "Missing Authentication Token")
	}
	if m[2] != service {
		return auth.Principal{}, lambdaapi.Errorf(lambdaapi.InvalidSignature, "Credential should be scoped to correct service: '%s'.", service)
	}
	switch m[1] {
	case "ALICE":
		return auth.Principal{AccountID: alice, AccessKeyID: m[1]}, nil
	case "BOB":
		return auth.Principal{AccountID: bob, AccessKeyID: m[1]}, nil
	}
	return auth.Principal{}, lambdaapi.Errorf(lambdaapi.UnrecognizedClient, "The security token included in the request is invalid.")
}

type env struct {
	store  *logs.Store
	writer *logs.Writer
	url    string
}

// newEnv starts embedded NATS, the log store, a writer and the API.
func newEnv(t *testing.T, cfg logs.Config) *env {
	t.Helper()
	ns, err := natsd.Start(natsd.Config{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	st, err := logs.Open(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := logs.NewWriter(logs.WriterConfig{Store: st, FlushInterval: time.Hour})
	srv := httptest.NewServer(logs.NewAPI(logs.APIConfig{Store: st, Auth: fakeAuth{}}))
	t.Cleanup(func() {
		srv.Close()
		_ = w.Close(context.Background())
		nc.Close()
		ns.Shutdown()
	})
	return &env{store: st, writer: w, url: srv.URL}
}

func (e *env) client(key string) *cloudwatchlogs.Client {
	return cloudwatchlogs.New(cloudwatchlogs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(e.url),
		Credentials:  credentials.NewStaticCredentialsProvider(key, "secret", ""),
		Retryer:      aws.NopRetryer{},
	})
}

func (e *env) flush(t *testing.T) {
	t.Helper()
	if err := e.writer.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}
