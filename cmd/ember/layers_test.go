package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/emberfn/ember/internal/lambdaapi"
)

const layerRole = "arn:aws:iam::123456789012:role/x"

const pyLayerApp = `import helper_mod, over_mod
def handler(event, context):
    return {"helper": helper_mod.greet(event.get("name", "?")), "file": helper_mod.__file__, "over": over_mod.VALUE}
`

const nodeLayerApp = `const helper = require('helper');
exports.handler = async (event) => ({ helper: helper.greet(event.name), path: require.resolve('helper') });
`

// publishLayer publishes a layer version through the SDK.
func publishLayer(t *testing.T, c *lambda.Client, name string, zip []byte, edit func(*lambda.PublishLayerVersionInput)) *lambda.PublishLayerVersionOutput {
	t.Helper()
	in := &lambda.PublishLayerVersionInput{LayerName: aws.String(name), Content: &types.LayerVersionContentInput{ZipFile: zip}}
	if edit != nil {
		edit(in)
	}
	out, err := c.PublishLayerVersion(context.Background(), in)
	if err != nil {
		t.Fatalf("publish layer %s: %v", name, err)
	}
	return out
}

// zeroZip is a package with one file of size zero bytes: small zipped,
// large unzipped.
func zeroZip(t *testing.T, name string, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: name, Method: zip.Deflate}
	h.SetMode(0o644)
	w, err := zw.CreateHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(chunk)) {
		if _, err := w.Write(chunk[:min(int64(len(chunk)), size-n)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// newLayersAccount makes a second account through Ember's admin API and
// returns its client.
func newLayersAccount(t *testing.T, srv *emberServer, name string) *lambda.Client {
	t.Helper()
	body := []byte(`{"Name":"` + name + `"}`)
	req, _ := http.NewRequest("POST", srv.url+"/ember/v1/accounts", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), srv.creds("default"), req, hex.EncodeToString(sum[:]), "ember", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var acct struct{ AccessKeyId, SecretAccessKey string }
	if err := json.NewDecoder(resp.Body).Decode(&acct); err != nil || resp.StatusCode != 201 {
		t.Fatalf("create account: %d %v", resp.StatusCode, err)
	}
	return srv.client(aws.Credentials{AccessKeyID: acct.AccessKeyId, SecretAccessKey: acct.SecretAccessKey})
}

// Layers through the real SDK and real invokes: Python finds a layer's
// packages in /opt/python and Node.js in /opt/nodejs/node_modules; a
// later layer overrides an earlier one's file; versions keep their
// layers; a deleted layer version stays usable by the functions that
// have it, also after a restart (which empties the worker's cache).
func TestLayers(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	srv := startEmber(t, dataDir)
	c := srv.client(srv.creds("default"))

	// A Python layer, with CompatibleRuntimes and the rest echoed back.
	pyZip := makeZip(t,
		zipEntry{name: "python/helper_mod.py", mode: 0o644, body: "def greet(n):\n    return 'hello ' + n + ' from the layer'\n"},
		zipEntry{name: "python/over_mod.py", mode: 0o644, body: "VALUE = 'first'\n"})
	py := publishLayer(t, c, "py-helpers", pyZip, func(in *lambda.PublishLayerVersionInput) {
		in.Description = aws.String("python helpers")
		in.CompatibleRuntimes = []types.Runtime{types.RuntimePython311, types.RuntimePython312}
		in.CompatibleArchitectures = []types.Architecture{types.ArchitectureX8664}
		in.LicenseInfo = aws.String("MIT")
	})
	acct := strings.Split(*py.LayerArn, ":")[4]
	sum := sha256.Sum256(pyZip)
	if py.Version != 1 || *py.LayerArn != "arn:aws:lambda:us-east-1:"+acct+":layer:py-helpers" ||
		*py.LayerVersionArn != *py.LayerArn+":1" || *py.Description != "python helpers" || *py.LicenseInfo != "MIT" ||
		len(py.CompatibleRuntimes) != 2 || py.CompatibleArchitectures[0] != types.ArchitectureX8664 ||
		*py.Content.CodeSha256 != base64.StdEncoding.EncodeToString(sum[:]) || py.Content.CodeSize != int64(len(pyZip)) {
		t.Fatalf("PublishLayerVersion answered %+v %+v", py, py.Content)
	}
	if _, err := time.Parse(lambdaapi.TimeFormat, *py.CreatedDate); err != nil {
		t.Fatalf("CreatedDate %q: %v", *py.CreatedDate, err)
	}
	// Content.Location is a time-limited URL that needs no signature.
	resp, err := http.Get(*py.Content.Location)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, pyZip) {
		t.Fatalf("downloading the layer: %d, %d bytes", resp.StatusCode, len(got))
	}

	// A Python function that imports from its layer (of a Python runtime
	// this host serves).
	pyRT := pythonRuntime(t)
	_, err = c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("py-fn"),
		Runtime: types.Runtime(pyRT), Handler: aws.String("app.handler"), Role: aws.String(layerRole),
		Code:   &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: "app.py", mode: 0o644, body: pyLayerApp})},
		Layers: []string{*py.LayerVersionArn}})
	if err != nil {
		t.Fatal(err)
	}
	out, body := invokeJSON(t, c, "py-fn", map[string]any{"name": "py"}, false)
	if out.FunctionError != nil || body["helper"] != "hello py from the layer" || body["file"] != "/opt/python/helper_mod.py" || body["over"] != "first" {
		t.Fatalf("python with a layer: %s", out.Payload)
	}

	// A Node.js function that requires a package of its layer.
	node := publishLayer(t, c, "node-helpers", makeZip(t,
		zipEntry{name: "nodejs/node_modules/helper/index.js", mode: 0o644, body: "exports.greet = (n) => `hello ${n} from node_modules`;\n"}), nil)
	_, err = c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("node-fn"),
		Runtime: types.Runtime(nodeRuntime(t)), Handler: aws.String("index.handler"), Role: aws.String(layerRole),
		Code:   &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: "index.js", mode: 0o644, body: nodeLayerApp})},
		Layers: []string{*node.LayerVersionArn}})
	if err != nil {
		t.Fatal(err)
	}
	out, body = invokeJSON(t, c, "node-fn", map[string]any{"name": "js"}, false)
	if out.FunctionError != nil || body["helper"] != "hello js from node_modules" || body["path"] != "/opt/nodejs/node_modules/helper/index.js" {
		t.Fatalf("node with a layer: %s", out.Payload)
	}

	// A second layer overrides a file of the first; order matters.
	over := publishLayer(t, c, "override", makeZip(t, zipEntry{name: "python/over_mod.py", mode: 0o644, body: "VALUE = 'second'\n"}), nil)
	cfg, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("py-fn"),
		Layers: []string{*py.LayerVersionArn, *over.LayerVersionArn}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Layers) != 2 || *cfg.Layers[0].Arn != *py.LayerVersionArn || cfg.Layers[0].CodeSize != int64(len(pyZip)) ||
		*cfg.Layers[1].Arn != *over.LayerVersionArn {
		t.Fatalf("UpdateFunctionConfiguration's Layers: %+v", cfg.Layers)
	}
	out, body = invokeJSON(t, c, "py-fn", map[string]any{"name": "py"}, false)
	if out.FunctionError != nil || body["over"] != "second" || body["helper"] != "hello py from the layer" {
		t.Fatalf("the later layer does not win: %s", out.Payload)
	}
	g, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("py-fn")})
	if err != nil || len(g.Configuration.Layers) != 2 || *g.Configuration.Layers[1].Arn != *over.LayerVersionArn {
		t.Fatalf("GetFunction's Layers: %+v %v", g.Configuration.Layers, err)
	}
	// Version 1 keeps [py, override]; $LATEST gets the reverse order.
	v1, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("py-fn")})
	if err != nil || len(v1.Layers) != 2 {
		t.Fatalf("publish version: %+v %v", v1, err)
	}
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("py-fn"),
		Layers: []string{*over.LayerVersionArn, *py.LayerVersionArn}}); err != nil {
		t.Fatal(err)
	}
	out, body = invokeJSON(t, c, "py-fn", map[string]any{"name": "py"}, false)
	if out.FunctionError != nil || body["over"] != "first" {
		t.Fatalf("reversed layers: %s", out.Payload)
	}
	out, body = invokeJSON(t, c, "py-fn:1", map[string]any{"name": "py"}, false)
	if out.FunctionError != nil || body["over"] != "second" {
		t.Fatalf("version 1 lost its layers: %s", out.Payload)
	}

	// Refusals, each an InvalidParameterValueException.
	other := newLayersAccount(t, srv, "other")
	theirs := publishLayer(t, other, "py-helpers", pyZip, nil)
	base := func(layers ...string) *lambda.CreateFunctionInput {
		return &lambda.CreateFunctionInput{FunctionName: aws.String("refused"), Runtime: types.Runtime(pyRT),
			Handler: aws.String("app.handler"), Role: aws.String(layerRole),
			Code:   &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: "app.py", mode: 0o644, body: pyLayerApp})},
			Layers: layers}
	}
	six := make([]string, 0, 6)
	for _, n := range []string{"l1", "l2", "l3", "l4", "l5", "l6"} {
		six = append(six, *publishLayer(t, c, n, makeZip(t, zipEntry{name: n + ".txt", mode: 0o644, body: n}), nil).LayerVersionArn)
	}
	big1 := publishLayer(t, c, "big1", zeroZip(t, "big1.bin", 130<<20), nil)
	big2 := publishLayer(t, c, "big2", zeroZip(t, "big2.bin", 130<<20), nil)
	for _, tc := range []struct {
		what   string
		layers []string
		msg    string
	}{
		{"6 layers", six, "Cannot reference more than 5 layers."},
		{"an unknown version", []string{*py.LayerArn + ":9"}, "Layer version " + *py.LayerArn + ":9 does not exist."},
		{"an unknown layer", []string{"arn:aws:lambda:us-east-1:" + acct + ":layer:nope:1"}, "does not exist"},
		{"another account's layer", []string{*theirs.LayerVersionArn}, "Layer version " + *theirs.LayerVersionArn + " does not exist."},
		{"two versions of one layer", []string{*py.LayerVersionArn, *py.LayerArn + ":2"}, "Two different versions of the same layer"},
		{"not an ARN", []string{"py-helpers:1"}, "at 'layers' failed to satisfy constraint"},
		{"over 250 MB in all", []string{*big1.LayerVersionArn, *big2.LayerVersionArn},
			"Function code combined with layers exceeds the maximum allowed size of 262144000 bytes."},
	} {
		typ := "InvalidParameterValueException"
		if tc.what == "not an ARN" { // the API model's pattern
			typ = "ValidationException"
		}
		_, err := c.CreateFunction(ctx, base(tc.layers...))
		apiErr(t, err, typ, 400)
		if !strings.Contains(err.Error(), tc.msg) {
			t.Fatalf("%s: %v; want %q", tc.what, err, tc.msg)
		}
		_, err = c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("py-fn"), Layers: tc.layers})
		apiErr(t, err, typ, 400)
	}
	if _, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("refused")}); err == nil {
		t.Fatal("a refused function was stored")
	}
	// Each big layer alone is fine (130 MB with the code).
	if _, err := c.CreateFunction(ctx, base(*big1.LayerVersionArn)); err != nil {
		t.Fatalf("one big layer: %v", err)
	}

	// Accounts never see each other's layers.
	if _, err := other.GetLayerVersion(ctx, &lambda.GetLayerVersionInput{LayerName: aws.String("node-helpers"), VersionNumber: aws.Int64(1)}); err != nil {
		apiErr(t, err, "ResourceNotFoundException", 404)
	} else {
		t.Fatal("another account read a layer version")
	}
	_, err = other.GetLayerVersionByArn(ctx, &lambda.GetLayerVersionByArnInput{Arn: node.LayerVersionArn})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = other.GetLayerVersion(ctx, &lambda.GetLayerVersionInput{LayerName: node.LayerArn, VersionNumber: aws.Int64(1)})
	apiErr(t, err, "ResourceNotFoundException", 404)
	if l, err := other.ListLayers(ctx, &lambda.ListLayersInput{}); err != nil || len(l.Layers) != 1 || *l.Layers[0].LayerArn != *theirs.LayerArn {
		t.Fatalf("the other account lists %+v %v", l, err)
	}
	if l, err := other.ListLayerVersions(ctx, &lambda.ListLayerVersionsInput{LayerName: node.LayerArn}); err != nil || len(l.LayerVersions) != 0 {
		t.Fatalf("the other account lists versions %+v %v", l, err)
	}
	if _, err := other.DeleteLayerVersion(ctx, &lambda.DeleteLayerVersionInput{LayerName: node.LayerArn, VersionNumber: aws.Int64(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetLayerVersion(ctx, &lambda.GetLayerVersionInput{LayerName: aws.String("node-helpers"), VersionNumber: aws.Int64(1)}); err != nil {
		t.Fatalf("another account's delete touched the layer: %v", err)
	}

	// Reads: ListLayers (the latest version of each), ListLayerVersions
	// (newest first), GetLayerVersion and GetLayerVersionByArn.
	py2 := publishLayer(t, c, "py-helpers", makeZip(t, zipEntry{name: "python/helper_mod.py", mode: 0o644, body: "def greet(n):\n    return 'v2'\n"}), nil)
	if py2.Version != 2 {
		t.Fatalf("second version is %d", py2.Version)
	}
	layers, err := c.ListLayers(ctx, &lambda.ListLayersInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range layers.Layers {
		names = append(names, *l.LayerName)
		if *l.LayerName == "py-helpers" && (l.LatestMatchingVersion.Version != 2 || *l.LatestMatchingVersion.LayerVersionArn != *py2.LayerVersionArn ||
			*l.LayerArn != *py.LayerArn || l.LatestMatchingVersion.CreatedDate == nil) {
			t.Fatalf("ListLayers item %+v %+v", l, l.LatestMatchingVersion)
		}
	}
	if strings.Join(names, ",") != "big1,big2,l1,l2,l3,l4,l5,l6,node-helpers,override,py-helpers" {
		t.Fatalf("ListLayers names %v", names)
	}
	layers, err = c.ListLayers(ctx, &lambda.ListLayersInput{CompatibleRuntime: types.RuntimePython312})
	if err != nil || len(layers.Layers) != 1 || layers.Layers[0].LatestMatchingVersion.Version != 1 ||
		*layers.Layers[0].LatestMatchingVersion.Description != "python helpers" {
		t.Fatalf("ListLayers for python3.12: %+v %v", layers, err)
	}
	p := lambda.NewListLayersPaginator(c, &lambda.ListLayersInput{MaxItems: aws.Int32(4)})
	pages, count := 0, 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		count += len(page.Layers)
	}
	if pages != 3 || count != len(names) {
		t.Fatalf("ListLayers in pages of 4: %d pages, %d layers", pages, count)
	}
	vs, err := c.ListLayerVersions(ctx, &lambda.ListLayerVersionsInput{LayerName: aws.String("py-helpers")})
	if err != nil || len(vs.LayerVersions) != 2 || vs.LayerVersions[0].Version != 2 || vs.LayerVersions[1].Version != 1 ||
		*vs.LayerVersions[1].LicenseInfo != "MIT" || vs.LayerVersions[1].CompatibleRuntimes[1] != types.RuntimePython312 {
		t.Fatalf("ListLayerVersions %+v %v", vs, err)
	}
	gv, err := c.GetLayerVersion(ctx, &lambda.GetLayerVersionInput{LayerName: py.LayerArn, VersionNumber: aws.Int64(1)})
	if err != nil || *gv.LayerVersionArn != *py.LayerVersionArn || *gv.Content.CodeSha256 != *py.Content.CodeSha256 ||
		gv.Content.CodeSize != py.Content.CodeSize || *gv.CreatedDate != *py.CreatedDate || *gv.Description != "python helpers" {
		t.Fatalf("GetLayerVersion %+v %v", gv, err)
	}
	ga, err := c.GetLayerVersionByArn(ctx, &lambda.GetLayerVersionByArnInput{Arn: py2.LayerVersionArn})
	if err != nil || ga.Version != 2 || *ga.Content.Location == "" {
		t.Fatalf("GetLayerVersionByArn %+v %v", ga, err)
	}
	_, err = c.GetLayerVersion(ctx, &lambda.GetLayerVersionInput{LayerName: aws.String("py-helpers"), VersionNumber: aws.Int64(7)})
	apiErr(t, err, "ResourceNotFoundException", 404)

	// Delete: version 1 is gone from view, but the functions that use it
	// keep running, also from a cold cache after a restart.
	if _, err := c.DeleteLayerVersion(ctx, &lambda.DeleteLayerVersionInput{LayerName: aws.String("py-helpers"), VersionNumber: aws.Int64(1)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetLayerVersion(ctx, &lambda.GetLayerVersionInput{LayerName: aws.String("py-helpers"), VersionNumber: aws.Int64(1)})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.CreateFunction(ctx, base(*py.LayerVersionArn))
	apiErr(t, err, "InvalidParameterValueException", 400)
	srv.stop()
	srv = startEmber(t, dataDir)
	c = srv.client(srv.creds("default"))
	out, body = invokeJSON(t, c, "py-fn", map[string]any{"name": "again"}, false)
	if out.FunctionError != nil || body["helper"] != "hello again from the layer" || body["over"] != "first" {
		t.Fatalf("after the layer version was deleted: %s", out.Payload)
	}
	out, body = invokeJSON(t, c, "py-fn:1", map[string]any{"name": "v1"}, false)
	if out.FunctionError != nil || body["over"] != "second" {
		t.Fatalf("version 1 after the layer version was deleted: %s", out.Payload)
	}
	// Version numbers are never reused.
	if v := publishLayer(t, c, "py-helpers", pyZip, nil).Version; v != 3 {
		t.Fatalf("after a delete the next version is %d, want 3", v)
	}
}
