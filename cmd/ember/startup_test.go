package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"testing"

	"github.com/emberfn/ember/internal/store"
)

// TestStartingAnswers503: a request that arrives while Ember is still
// starting (its listener is open, the store just opened, the platform not
// yet wired) gets 503 in Lambda's error shape, with a request id, which
// the AWS SDKs retry.
func TestStartingAnswers503(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var status int
	var header http.Header
	var body []byte
	var reqErr error
	startEmber(t, t.TempDir(), func(c *serveConfig) {
		c.Listen = addr
		c.onStore = func(*store.Store) {
			resp, err := http.Get("http://" + addr + "/2015-03-31/functions")
			if err != nil {
				reqErr = err
				return
			}
			defer resp.Body.Close()
			status, header = resp.StatusCode, resp.Header
			body, reqErr = io.ReadAll(resp.Body)
		}
	})
	if reqErr != nil {
		t.Fatal(reqErr)
	}
	var doc struct{ Type, Message string }
	if status != http.StatusServiceUnavailable || header.Get("X-Amzn-ErrorType") != "ServiceException" ||
		!regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(header.Get("X-Amzn-RequestId")) ||
		json.Unmarshal(body, &doc) != nil || doc.Type != "Service" || doc.Message == "" {
		t.Fatalf("while starting: %d %v %s", status, header, body)
	}
}
