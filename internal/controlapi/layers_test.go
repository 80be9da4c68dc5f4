package controlapi

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

const acct = "123456789012" // trustAll's account

func layerZipB64(t *testing.T, name, body string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte(body))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func layerARN(name string, v int) string {
	return "arn:aws:lambda:us-east-1:" + acct + ":layer:" + name + ":" + strconv.Itoa(v)
}

func TestLayerHandlers(t *testing.T) {
	st := newFakeStore()
	s := newTestServer(t, st, &clock{time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)})
	publish := func(name, body, extra string) map[string]any {
		t.Helper()
		w := do(s, "POST", "/2018-10-31/layers/"+name+"/versions",
			[]byte(`{"Content":{"ZipFile":"`+layerZipB64(t, "python/m.py", body)+`"}`+extra+`}`))
		if w.Code != 201 {
			t.Fatalf("publish %s: %d %s", name, w.Code, w.Body)
		}
		var out map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		return out
	}
	out := publish("lib", "x = 1", `,"Description":"d","CompatibleRuntimes":["python3.12"],"CompatibleArchitectures":["x86_64"],"LicenseInfo":"MIT"`)
	if out["Version"] != 1.0 || out["LayerVersionArn"] != layerARN("lib", 1) ||
		out["LayerArn"] != "arn:aws:lambda:us-east-1:"+acct+":layer:lib" || out["CreatedDate"] != "2024-05-06T07:08:09.000+0000" ||
		out["Description"] != "d" || out["LicenseInfo"] != "MIT" {
		t.Fatalf("publish answer: %v", out)
	}
	content := out["Content"].(map[string]any)
	if content["CodeSha256"] == "" || content["CodeSize"].(float64) == 0 || !strings.Contains(content["Location"].(string), "X-Ember-Signature") {
		t.Fatalf("content: %v", content)
	}
	u, _ := url.Parse(content["Location"].(string))
	if w := do(s, "GET", u.RequestURI(), nil); w.Code != 200 || w.Header().Get("Content-Type") != "application/zip" {
		t.Fatalf("download: %d", w.Code)
	}
	if v := publish("lib", "x = 2", "")["Version"]; v != 2.0 {
		t.Fatalf("second version %v", v)
	}
	publish("a-lib", "y = 1", "")

	// Bad requests: a value against the API model's constraints is a
	// ValidationException, Lambda's own checks InvalidParameterValue.
	const ipve, validation = lambdaapi.InvalidParameterValue, lambdaapi.Validation
	for _, c := range []struct {
		path, body string
		code       int
		typ        string
	}{
		{"/2018-10-31/layers/lib/versions", `{}`, 400, ipve},
		{"/2018-10-31/layers/bad.name/versions", `{"Content":{"ZipFile":"` + layerZipB64(t, "a", "b") + `"}}`, 400, validation},
		{"/2018-10-31/layers/arn:aws:lambda:us-east-1:999999999999:layer:x/versions", `{"Content":{"ZipFile":"` + layerZipB64(t, "a", "b") + `"}}`, 400, ipve},
		{"/2018-10-31/layers/lib/versions", `{"Content":{"ZipFile":"AAAA"}}`, 400, ipve},
		{"/2018-10-31/layers/lib/versions", `{"Content":{"S3Bucket":"b","S3Key":"k"}}`, 400, ipve},
		{"/2018-10-31/layers/lib/versions", `{"Content":{"ZipFile":"` + layerZipB64(t, "a", "b") + `"},"CompatibleArchitectures":["sparc"]}`, 400, validation},
	} {
		if w := do(s, "POST", c.path, []byte(c.body)); w.Code != c.code || w.Header().Get("X-Amzn-ErrorType") != c.typ {
			t.Fatalf("POST %s %s: %d %s %s", c.path, c.body, w.Code, w.Header().Get("X-Amzn-ErrorType"), w.Body)
		}
	}

	// Reads.
	if w := do(s, "GET", "/2018-10-31/layers/lib/versions/2", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"Version":2`) {
		t.Fatalf("get: %d %s", w.Code, w.Body)
	}
	if w := do(s, "GET", "/2018-10-31/layers?find=LayerVersion&Arn="+url.QueryEscape(layerARN("lib", 1)), nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"Version":1`) {
		t.Fatalf("get by ARN: %d %s", w.Code, w.Body)
	}
	for _, p := range []string{"/2018-10-31/layers/lib/versions/3", "/2018-10-31/layers/arn:aws:lambda:us-east-1:999999999999:layer:lib/versions/1",
		"/2018-10-31/layers?find=LayerVersion&Arn=" + url.QueryEscape("arn:aws:lambda:us-east-1:999999999999:layer:lib:1")} {
		if w := do(s, "GET", p, nil); w.Code != 404 || w.Header().Get("X-Amzn-ErrorType") != "ResourceNotFoundException" {
			t.Fatalf("GET %s: %d %s", p, w.Code, w.Body)
		}
	}
	if w := do(s, "GET", "/2018-10-31/layers/lib/versions/0", nil); w.Code != 400 {
		t.Fatalf("version 0: %d", w.Code)
	}
	var list struct {
		Layers []struct {
			LayerName             string
			LatestMatchingVersion struct{ Version int }
		}
		NextMarker *string
	}
	w := do(s, "GET", "/2018-10-31/layers", nil)
	_ = json.Unmarshal(w.Body.Bytes(), &list)
	if len(list.Layers) != 2 || list.Layers[0].LayerName != "a-lib" || list.Layers[1].LatestMatchingVersion.Version != 2 || list.NextMarker != nil {
		t.Fatalf("ListLayers: %s", w.Body)
	}
	w = do(s, "GET", "/2018-10-31/layers?MaxItems=1", nil)
	list.NextMarker = nil
	_ = json.Unmarshal(w.Body.Bytes(), &list)
	if len(list.Layers) != 1 || list.NextMarker == nil {
		t.Fatalf("ListLayers page 1: %s", w.Body)
	}
	w = do(s, "GET", "/2018-10-31/layers?MaxItems=1&Marker="+*list.NextMarker, nil)
	list.NextMarker = nil
	_ = json.Unmarshal(w.Body.Bytes(), &list)
	if len(list.Layers) != 1 || list.Layers[0].LayerName != "lib" || list.NextMarker != nil {
		t.Fatalf("ListLayers page 2: %s", w.Body)
	}
	// The runtime filter: version 1 alone declares python3.12.
	w = do(s, "GET", "/2018-10-31/layers?CompatibleRuntime=python3.12", nil)
	_ = json.Unmarshal(w.Body.Bytes(), &list)
	if len(list.Layers) != 1 || list.Layers[0].LatestMatchingVersion.Version != 1 {
		t.Fatalf("ListLayers by runtime: %s", w.Body)
	}
	var versions struct {
		LayerVersions []struct{ Version int }
		NextMarker    *string
	}
	w = do(s, "GET", "/2018-10-31/layers/lib/versions?MaxItems=1", nil)
	_ = json.Unmarshal(w.Body.Bytes(), &versions)
	if len(versions.LayerVersions) != 1 || versions.LayerVersions[0].Version != 2 || versions.NextMarker == nil {
		t.Fatalf("ListLayerVersions page 1: %s", w.Body)
	}
	w = do(s, "GET", "/2018-10-31/layers/lib/versions?Marker="+*versions.NextMarker, nil)
	versions.NextMarker = nil
	_ = json.Unmarshal(w.Body.Bytes(), &versions)
	if len(versions.LayerVersions) != 1 || versions.LayerVersions[0].Version != 1 || versions.NextMarker != nil {
		t.Fatalf("ListLayerVersions page 2: %s", w.Body)
	}
	if w := do(s, "GET", "/2018-10-31/layers/none/versions", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"LayerVersions":[]`) {
		t.Fatalf("versions of no layer: %d %s", w.Code, w.Body)
	}

	// Functions with layers.
	create := func(name string, layers ...string) *bytesResponse {
		b, _ := json.Marshal(layers)
		w := do(s, "POST", "/2015-03-31/functions", []byte(`{"FunctionName":"`+name+`","Runtime":"provided.al2023","Layers":`+string(b)+`,"Code":{"ZipFile":"`+bootstrapZipB64+`"}}`))
		return &bytesResponse{w.Code, w.Header().Get("X-Amzn-ErrorType"), w.Body.String()}
	}
	if r := create("f", layerARN("a-lib", 1), layerARN("lib", 2)); r.code != 201 ||
		!strings.Contains(r.body, `"Layers":[{"Arn":"`+layerARN("a-lib", 1)+`","CodeSize":`) {
		t.Fatalf("create with layers: %+v", r)
	}
	for _, c := range []struct {
		layers []string
		msg    string
	}{
		{[]string{layerARN("lib", 1), layerARN("lib", 2)}, "Two different versions of the same layer"},
		{[]string{layerARN("lib", 9)}, "does not exist"},
		{[]string{"arn:aws:lambda:us-east-1:999999999999:layer:lib:1"}, "does not exist"},
		{[]string{"arn:aws:lambda:eu-west-1:" + acct + ":layer:lib:1"}, "same region"},
		{[]string{"lib:1"}, "validation error"},
		{[]string{layerARN("a", 1), layerARN("b", 1), layerARN("c", 1), layerARN("d", 1), layerARN("e", 1), layerARN("f", 1)}, "more than 5 layers"},
	} {
		typ := lambdaapi.InvalidParameterValue
		if c.msg == "validation error" {
			typ = lambdaapi.Validation
		}
		if r := create("g", c.layers...); r.code != 400 || r.typ != typ || !strings.Contains(r.body, c.msg) {
			t.Fatalf("create with %v: %+v", c.layers, r)
		}
	}
	// Too big together: a layer recorded as 200 MB unzipped.
	big := store.LayerVersion{AccountID: acct, Name: "big", Version: 1, CodeSHA256: "bb", UnzippedSize: 200 << 20}
	st.layers[layerKey(acct, "big", 1)] = big
	st.code[acct+"/bb"] = []byte("x")
	if r := create("g", layerARN("big", 1), layerARN("lib", 1)); r.code != 201 {
		t.Fatalf("200 MB of layers: %+v", r)
	}
	big.Version = 2
	st.layers[layerKey(acct, "big", 2)] = big
	if w := do(s, "PUT", "/2015-03-31/functions/g/configuration", []byte(`{"Layers":["`+layerARN("big", 2)+`","`+layerARN("lib", 1)+`","`+layerARN("a-lib", 1)+`"]}`)); w.Code != 200 {
		t.Fatalf("update layers: %d %s", w.Code, w.Body)
	}
	// A second layer of 200 MB makes 400 MB: too much.
	st.layers[layerKey(acct, "big2", 1)] = store.LayerVersion{AccountID: acct, Name: "big2", Version: 1, CodeSHA256: "bb", UnzippedSize: 200 << 20}
	if w := do(s, "PUT", "/2015-03-31/functions/g/configuration", []byte(`{"Layers":["`+layerARN("big", 2)+`","`+layerARN("big2", 1)+`"]}`)); w.Code != 400 ||
		!strings.Contains(w.Body.String(), "Function code combined with layers exceeds the maximum allowed size of 262144000 bytes") {
		t.Fatalf("400 MB of layers: %d %s", w.Code, w.Body)
	}

	// Delete: the function keeps its layers' contents.
	lib2 := st.layers[layerKey(acct, "lib", 2)].CodeSHA256
	if w := do(s, "DELETE", "/2018-10-31/layers/lib/versions/2", nil); w.Code != 204 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if w := do(s, "DELETE", "/2018-10-31/layers/lib/versions/2", nil); w.Code != 204 {
		t.Fatalf("delete again: %d %s", w.Code, w.Body)
	}
	if _, ok := st.code[acct+"/"+lib2]; !ok {
		t.Fatal("a deleted layer version's content went while a function uses it")
	}
	if w := do(s, "GET", "/2015-03-31/functions/f", nil); !strings.Contains(w.Body.String(), layerARN("lib", 2)) {
		t.Fatalf("the function lost its layer: %s", w.Body)
	}
	if r := create("h", layerARN("lib", 2)); r.code != 400 || !strings.Contains(r.body, "does not exist") {
		t.Fatalf("a deleted version given to a new function: %+v", r)
	}
	if w := do(s, "PUT", "/2015-03-31/functions/f/configuration", []byte(`{"Layers":[]}`)); w.Code != 200 || strings.Contains(w.Body.String(), `"Layers"`) {
		t.Fatalf("remove layers: %d %s", w.Code, w.Body)
	}
	if _, ok := st.code[acct+"/"+lib2]; ok {
		t.Fatal("a deleted layer version's content stayed once nothing used it")
	}
	if v := publish("lib", "x = 3", "")["Version"]; v != 3.0 {
		t.Fatalf("after a delete the next version is %v, want 3", v)
	}
}

type bytesResponse struct {
	code      int
	typ, body string
}
