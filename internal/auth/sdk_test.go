package auth

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/emberfn/ember/internal/lambdaapi"
)

// TestVerifyLambdaClient drives the real aws-sdk-go-v2 Lambda client against
// a server that verifies every request, so the whole request pipeline
// (path escaping of ARNs, query encoding, headers the SDK adds) is covered.
func TestVerifyLambdaClient(t *testing.T) {
	keys := &memKeys{keys: map[string]Key{testAKID: {AccountID: testAccount, Secret: testSecret}}}
	v := NewVerifier(VerifierConfig{Keys: keys})
	type seen struct {
		uri string
		err error
	}
	results := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			var p Principal
			p, err = v.Verify(r.Context(), r, body, "lambda")
			if err == nil && (p.AccountID != testAccount || p.AccessKeyID != testAKID || p.Admin) {
				t.Errorf("principal = %+v", p)
			}
		}
		results <- seen{r.RequestURI, err}
		if err != nil {
			le := lambdaapi.AsError(err)
			w.Header().Set("X-Amzn-ErrorType", le.Type)
			w.WriteHeader(le.Status())
			io.WriteString(w, `{"message":"`+le.Message+`"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()

	client := func(secret string) *lambda.Client {
		return lambda.NewFromConfig(aws.Config{
			Region:           "us-east-1",
			Credentials:      credentials.NewStaticCredentialsProvider(testAKID, secret, ""),
			HTTPClient:       srv.Client(),
			RetryMaxAttempts: 1,
		}, func(o *lambda.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	good := client(testSecret)
	calls := []struct {
		name string
		call func(*lambda.Client) error
	}{
		{"Invoke ARN with qualifier", func(c *lambda.Client) error {
			_, err := c.Invoke(ctx, &lambda.InvokeInput{
				FunctionName: aws.String("arn:aws:lambda:us-east-1:123456789012:function:my-fn"),
				Qualifier:    aws.String("$LATEST"),
				Payload:      []byte(`{"a":[1,2,3]}`),
			})
			return err
		}},
		{"GetFunction with alias in name", func(c *lambda.Client) error {
			_, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("my-fn:prod")})
			return err
		}},
		{"ListFunctions with odd marker", func(c *lambda.Client) error {
			_, err := c.ListFunctions(ctx, &lambda.ListFunctionsInput{
				Marker: aws.String("a b+c/d=e&f"), MaxItems: aws.Int32(5),
			})
			return err
		}},
	}
	for _, c := range calls {
		if err := c.call(good); err != nil {
			t.Errorf("%s: client error %v", c.name, err)
		}
		s := <-results
		if s.err != nil {
			t.Errorf("%s: Verify(%s): %v", c.name, s.uri, s.err)
		}
		t.Logf("%s: %s", c.name, s.uri)
	}

	// A wrong secret is refused, and the SDK sees the error type.
	_, err := client("wrong").GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("f")})
	wantErr(t, (<-results).err, lambdaapi.InvalidSignature, "does not match")
	if err == nil {
		t.Fatal("client with a wrong secret got no error")
	}
}
