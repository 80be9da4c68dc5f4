package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// BenchmarkVerify verifies an Invoke request signed by aws-sdk-go-v2's
// signer, as every warm invoke does: the signing key comes from the cache,
// the access key from memory.
func BenchmarkVerify(b *testing.B) {
	keys := &memKeys{keys: map[string]Key{testAKID: {AccountID: testAccount, Secret: testSecret}}}
	v := NewVerifier(VerifierConfig{Keys: keys, Now: func() time.Time { return testNow }})
	body := []byte(`{"hello":"world"}`)
	r, err := http.NewRequest("POST", "http://127.0.0.1:9070/2015-03-31/functions/warm/invocations", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret},
		r, hex.EncodeToString(sum[:]), "lambda", "us-east-1", testNow)
	if err != nil {
		b.Fatal(err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.Host = r.URL.Host
	ctx := context.Background()
	if _, err := v.Verify(ctx, r, body, "lambda"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, r, body, "lambda"); err != nil {
			b.Fatal(err)
		}
	}
}
