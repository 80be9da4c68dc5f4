package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emberfn/ember/internal/lambdaapi"
)

const (
	algorithm       = "AWS4-HMAC-SHA256"
	scopeTerminator = "aws4_request"
	amzDateLayout   = "20060102T150405Z"
	unsignedPayload = "UNSIGNED-PAYLOAD"

	// maxPresignExpires is the longest X-Amz-Expires AWS accepts (7 days).
	maxPresignExpires = 7 * 24 * 60 * 60

	// maxCachedKeys bounds the signing-key cache; when it is full, half of
	// it is dropped.
	maxCachedKeys = 1024
)

// Messages of the errors Verify returns, as AWS words them.
const (
	msgMissingToken  = "Missing Authentication Token"
	msgUnknownKey    = "The security token included in the request is invalid."
	msgSignatureDiff = "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Region is the only region credential scopes may name. Default "us-east-1".
	Region string
	// Keys resolves access key ids. Required.
	Keys KeyLookup
	// Now is the clock requests' dates are checked against. Default time.Now.
	Now func() time.Time
	// MaxSkew is how far a request's date may be from Now, either way.
	// Default 15 minutes, as AWS.
	MaxSkew time.Duration
}

// Verifier checks AWS Signature Version 4 (AWS4-HMAC-SHA256) signatures. It
// is safe for concurrent use.
type Verifier struct {
	region  string
	keys    KeyLookup
	now     func() time.Time
	maxSkew time.Duration

	mu    sync.Mutex
	cache map[scopeKey]*cachedKey // guarded by mu
}

// scopeKey names a derived signing key; the secret it was derived from is
// kept in cachedKey and compared on every hit, so a changed secret is never
// served a stale key.
type scopeKey struct {
	accessKeyID, date, region, service string
}

type cachedKey struct {
	secret string
	key    []byte    // the signing key; read-only once cached
	macs   sync.Pool // hash.Hash: HMAC-SHA256 keyed with key, ready for reuse
}

// sum is the HMAC-SHA256 of data under the signing key, into out.
func (k *cachedKey) sum(data []byte, out *[sha256.Size]byte) {
	m, _ := k.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, k.key)
	}
	m.Write(data)
	m.Sum(out[:0])
	m.Reset()
	k.macs.Put(m)
}

// verifyBufs holds the buffers a Verify builds the canonical request and
// the string to sign in.
var verifyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// NewVerifier returns a Verifier for cfg, with defaults filled in.
func NewVerifier(cfg VerifierConfig) *Verifier {
	v := &Verifier{
		region:  cfg.Region,
		keys:    cfg.Keys,
		now:     cfg.Now,
		maxSkew: cfg.MaxSkew,
		cache:   make(map[scopeKey]*cachedKey),
	}
	if v.region == "" {
		v.region = "us-east-1"
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.maxSkew <= 0 {
		v.maxSkew = 15 * time.Minute
	}
	return v
}

// credential is a parsed "AKID/YYYYMMDD/region/service/aws4_request".
type credential struct {
	accessKeyID, date, region, service string
}

func (c credential) scope() string {
	return c.date + "/" + c.region + "/" + c.service + "/" + scopeTerminator
}

// authorization is a parsed Authorization header (or its presigned query
// form).
type authorization struct {
	credential
	signedHeaders    []string
	signedHeadersRaw string
	signature        string
}

// Verify checks r's SigV4 signature for service (e.g. "lambda") and returns
// the principal that signed it. body is the request body, already read by
// the caller; the payload hash signed must be its SHA-256 (a presigned URL
// may instead sign UNSIGNED-PAYLOAD). Both the Authorization header form and
// the presigned query form (X-Amz-Algorithm, X-Amz-Credential, ...) are
// accepted. Rejections are *lambdaapi.Error values; a failing KeyLookup's
// error is returned wrapped.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, body []byte, service string) (Principal, error) {
	c, err := v.check(ctx, r, service)
	if err != nil {
		return Principal{}, err
	}
	return v.verifySignature(r, body, &c)
}

// Precheck does every check of Verify that does not need the body: an
// Authorization header (or presigned query) that parses, a date within
// the window, a credential scope of this region and service, and an access
// key that exists. A server calls it before it reads a body, so that an
// unsigned or unknown caller cannot make it buffer one; Verify, with the
// body, still has to follow (it repeats these checks, then checks the
// signature, which covers the body's hash). Its errors are Verify's.
func (v *Verifier) Precheck(ctx context.Context, r *http.Request, service string) error {
	_, err := v.check(ctx, r, service)
	return err
}

// checked is what check learned of a request before its body.
type checked struct {
	a         authorization
	amzDate   string
	query     url.Values
	presigned bool
	key       Key
}

// check does Verify's checks that need no body (Precheck).
func (v *Verifier) check(ctx context.Context, r *http.Request, service string) (checked, error) {
	var query url.Values // nil, as ParseQuery gives no error, when there is no query
	var queryErr error
	if r.URL.RawQuery != "" {
		query, queryErr = url.ParseQuery(r.URL.RawQuery)
	}
	authz := r.Header["Authorization"] // Header.Values, with the key already canonical
	presigned := query.Has("X-Amz-Algorithm")

	var (
		a       authorization
		amzDate string
		t       time.Time
		expires = -1 // seconds; -1 when not presigned or not given
		err     error
	)
	switch {
	case len(authz) == 0 && !presigned:
		return checked{}, lambdaapi.Errorf(lambdaapi.MissingAuthenticationToken, msgMissingToken)
	case len(authz) > 0 && presigned:
		return checked{}, lambdaapi.Errorf(lambdaapi.IncompleteSignature,
			"Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified.")
	case len(authz) > 1:
		return checked{}, lambdaapi.Errorf(lambdaapi.IncompleteSignature, "Only one Authorization header is allowed.")
	case presigned:
		a, amzDate, expires, err = parsePresigned(query)
		if err != nil {
			return checked{}, err
		}
		t, err = parseAmzDate(amzDate)
		if err != nil {
			return checked{}, err
		}
	default:
		a, err = parseAuthorization(authz[0])
		if err != nil {
			return checked{}, err
		}
		if amzDate = headerValue(r.Header, "X-Amz-Date"); amzDate != "" {
			t, err = parseAmzDate(amzDate)
			if err != nil {
				return checked{}, err
			}
		} else if d := r.Header.Get("Date"); d != "" {
			t, err = http.ParseTime(d)
			if err != nil {
				return checked{}, lambdaapi.Errorf(lambdaapi.IncompleteSignature, "Date header %q is not an HTTP date.", d)
			}
			t = t.UTC()
			amzDate = t.Format(amzDateLayout)
		} else {
			return checked{}, lambdaapi.Errorf(lambdaapi.IncompleteSignature,
				"Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
		}
	}
	if queryErr != nil {
		return checked{}, lambdaapi.Errorf(lambdaapi.IncompleteSignature, "The query string is malformed: %v.", queryErr)
	}

	if err := v.checkTime(t, amzDate, expires); err != nil {
		return checked{}, err
	}
	if a.date != amzDate[:8] {
		return checked{}, lambdaapi.Errorf(lambdaapi.InvalidSignature,
			"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			a.date, amzDate[:8], amzDate)
	}
	if a.region != v.region {
		return checked{}, lambdaapi.Errorf(lambdaapi.InvalidSignature,
			"Credential should be scoped to a valid region, not '%s'. ", a.region)
	}
	if a.service != service {
		return checked{}, lambdaapi.Errorf(lambdaapi.InvalidSignature,
			"Credential should be scoped to correct service: '%s'. ", service)
	}
	if headerValue(r.Header, "X-Amz-Security-Token") != "" || query.Has("X-Amz-Security-Token") {
		// Ember issues no temporary credentials.
		return checked{}, lambdaapi.Errorf(lambdaapi.UnrecognizedClient, msgUnknownKey)
	}

	key, ok, err := v.keys.LookupKey(ctx, a.accessKeyID)
	if err != nil {
		return checked{}, fmt.Errorf("auth: look up access key: %w", err)
	}
	if !ok {
		return checked{}, lambdaapi.Errorf(lambdaapi.UnrecognizedClient, msgUnknownKey)
	}
	return checked{a: a, amzDate: amzDate, query: query, presigned: presigned, key: key}, nil
}

// verifySignature checks the signature of a request that passed check,
// over body.
func (v *Verifier) verifySignature(r *http.Request, body []byte, c *checked) (Principal, error) {
	a, amzDate, query, presigned, key := &c.a, c.amzDate, c.query, c.presigned, &c.key
	sum := sha256.Sum256(body)
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])
	hashBuf := [2][]byte{hexSum[:]}
	hashes := hashBuf[:1]
	if h := headerValue(r.Header, "X-Amz-Content-Sha256"); h != "" && h != string(hexSum[:]) {
		if !presigned || h != unsignedPayload {
			return Principal{}, lambdaapi.Errorf(lambdaapi.InvalidSignature,
				"The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
		hashes[0] = []byte(unsignedPayload)
	} else if presigned && h == "" {
		// A presigned URL's signer chose the payload hash without saying
		// which; try both.
		hashes = append(hashes, []byte(unsignedPayload))
	}

	signingKey := v.signingKey(a.credential, key.Secret)
	// The canonical request, then the string to sign, are built in one
	// pooled buffer: the request's method, URI, query, headers, signed
	// header names and payload hash, one per line.
	bp := verifyBufs.Get().(*[]byte)
	defer verifyBufs.Put(bp)
	b := append((*bp)[:0], r.Method...)
	b = append(appendCanonicalURI(append(b, '\n'), r), '\n')
	b = append(appendCanonicalQuery(b, query, presigned), '\n')
	b = append(appendCanonicalHeaders(b, r, a.signedHeaders), '\n')
	b = append(append(b, a.signedHeadersRaw...), '\n')
	prefix := len(b)
	ok := false
	for _, h := range hashes {
		b = append(b[:prefix], h...)
		creqSum := sha256.Sum256(b)
		sts := len(b)
		b = append(append(append(b, algorithm+"\n"...), amzDate...), '\n')
		b = hex.AppendEncode(append(appendScope(b, a.credential), '\n'), creqSum[:])
		var mac [sha256.Size]byte
		signingKey.sum(b[sts:], &mac)
		var want [2 * sha256.Size]byte
		hex.Encode(want[:], mac[:])
		if equalConstantTime(want[:], a.signature) {
			ok = true
			break
		}
	}
	*bp = b[:0]
	if ok {
		return Principal{AccountID: key.AccountID, AccessKeyID: a.accessKeyID, Admin: key.Admin}, nil
	}
	return Principal{}, lambdaapi.Errorf(lambdaapi.InvalidSignature, msgSignatureDiff)
}

// equalConstantTime reports whether b and s are equal, in time that
// depends only on their lengths.
func equalConstantTime[B, S ~[]byte | ~string](b B, s S) bool {
	if len(b) != len(s) {
		return false
	}
	var d byte
	for i := range len(b) {
		d |= b[i] ^ s[i]
	}
	return d == 0
}

// headerValue is h.Get(key) for a key already in canonical form.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// appendScope appends the credential scope, date/region/service/aws4_request.
func appendScope(b []byte, c credential) []byte {
	b = append(append(append(append(b, c.date...), '/'), c.region...), '/')
	return append(append(b, c.service...), "/"+scopeTerminator...)
}

// checkTime checks the request's date t against the clock: within MaxSkew
// either way, or for a presigned URL with X-Amz-Expires, not before t-MaxSkew
// and not after t+expires.
func (v *Verifier) checkTime(t time.Time, amzDate string, expires int) error {
	now := v.now().UTC()
	if earliest := now.Add(-v.maxSkew); expires < 0 && t.Before(earliest) {
		return lambdaapi.Errorf(lambdaapi.InvalidSignature,
			"Signature expired: %s is now earlier than %s (%s - %s.)",
			amzDate, earliest.Format(amzDateLayout), now.Format(amzDateLayout), skewString(v.maxSkew))
	}
	if expires >= 0 && now.After(t.Add(time.Duration(expires)*time.Second)) {
		return lambdaapi.Errorf(lambdaapi.InvalidSignature,
			"Signature expired: the presigned URL signed at %s expired at %s (X-Amz-Expires=%d); it is now %s.",
			amzDate, t.Add(time.Duration(expires)*time.Second).Format(amzDateLayout), expires, now.Format(amzDateLayout))
	}
	if latest := now.Add(v.maxSkew); t.After(latest) {
		return lambdaapi.Errorf(lambdaapi.InvalidSignature,
			"Signature not yet current: %s is still later than %s (%s + %s.)",
			amzDate, latest.Format(amzDateLayout), now.Format(amzDateLayout), skewString(v.maxSkew))
	}
	return nil
}

func skewString(d time.Duration) string {
	if d%time.Minute == 0 {
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min"
	}
	return d.String()
}

func parseAmzDate(s string) (time.Time, error) {
	// YYYYMMDDTHHMMSSZ, every field in range: what time.Parse with
	// amzDateLayout accepts and formats back to s, without its cost.
	if len(s) == len(amzDateLayout) && s[8] == 'T' && s[15] == 'Z' {
		y, okY := digits(s[0:4])
		mo, okMo := digits(s[4:6])
		d, okD := digits(s[6:8])
		h, okH := digits(s[9:11])
		mi, okMi := digits(s[11:13])
		sec, okS := digits(s[13:15])
		if okY && okMo && okD && okH && okMi && okS && validDate(y, mo, d) && h < 24 && mi < 60 && sec < 60 {
			return time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC), nil
		}
	}
	return time.Time{}, lambdaapi.Errorf(lambdaapi.IncompleteSignature,
		"Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", s)
}

// digits parses s, all decimal digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(s) > 0
}

// validDate reports whether y-mo-d is a day of the calendar.
func validDate(y, mo, d int) bool {
	if mo < 1 || mo > 12 || d < 1 {
		return false
	}
	return d <= time.Date(y, time.Month(mo)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// parseAuthorization parses an Authorization header of the form
//
//	AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/REGION/SERVICE/aws4_request, SignedHeaders=a;b;c, Signature=hex
//
// Any error is an IncompleteSignatureException.
func parseAuthorization(h string) (authorization, error) {
	alg, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if alg != algorithm {
		return authorization{}, incomplete("Unsupported Authorization algorithm; only %s is supported.", algorithm)
	}
	var cred, signed, sig string
	var seen [3]bool
	for part := range strings.SplitSeq(rest, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return authorization{}, incomplete("Authorization header has a malformed component %q; want name=value.", strings.TrimSpace(part))
		}
		var dst *string
		var i int
		switch name {
		case "Credential":
			dst, i = &cred, 0
		case "SignedHeaders":
			dst, i = &signed, 1
		case "Signature":
			dst, i = &sig, 2
		default:
			return authorization{}, incomplete("Authorization header has an unknown component %q.", name)
		}
		if seen[i] {
			return authorization{}, incomplete("Authorization header has more than one %q.", name)
		}
		seen[i], *dst = true, value
	}
	return newAuthorization("Authorization header", cred, signed, sig)
}

// parsePresigned parses the presigned query form of a signature. expires is
// -1 if X-Amz-Expires is absent.
func parsePresigned(q url.Values) (a authorization, amzDate string, expires int, err error) {
	get := func(name string) (string, error) {
		vs := q[name]
		if len(vs) > 1 {
			return "", incomplete("Query parameter %s is given more than once.", name)
		}
		if len(vs) == 0 {
			return "", nil
		}
		return vs[0], nil
	}
	var vals [6]string
	for i, name := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Date", "X-Amz-Expires"} {
		if vals[i], err = get(name); err != nil {
			return authorization{}, "", 0, err
		}
	}
	if vals[0] != algorithm {
		return authorization{}, "", 0, incomplete("Unsupported X-Amz-Algorithm; only %s is supported.", algorithm)
	}
	a, err = newAuthorization("Presigned URL", vals[1], vals[2], vals[3])
	if err != nil {
		return authorization{}, "", 0, err
	}
	if vals[4] == "" {
		return authorization{}, "", 0, incomplete("Presigned URL requires the X-Amz-Date parameter.")
	}
	expires = -1
	if vals[5] != "" {
		expires, err = strconv.Atoi(vals[5])
		if err != nil || expires < 1 || expires > maxPresignExpires {
			return authorization{}, "", 0, incomplete("X-Amz-Expires must be a whole number of seconds from 1 to %d.", maxPresignExpires)
		}
	}
	return a, vals[4], expires, nil
}

// newAuthorization checks and assembles the three components of a
// signature; where names the form for error messages.
func newAuthorization(where, cred, signed, sig string) (authorization, error) {
	var missing []string
	for _, c := range []struct{ name, value string }{{"Credential", cred}, {"SignedHeaders", signed}, {"Signature", sig}} {
		if c.value == "" {
			missing = append(missing, where+" requires '"+c.name+"' parameter.")
		}
	}
	if len(missing) > 0 {
		return authorization{}, incomplete("%s", strings.Join(missing, " "))
	}
	c, err := parseCredential(cred)
	if err != nil {
		return authorization{}, err
	}
	headers := strings.Split(signed, ";")
	hasHost := false
	for _, h := range headers {
		if h == "" || h != strings.ToLower(h) || strings.ContainsAny(h, " \t\r\n:") {
			return authorization{}, incomplete("SignedHeaders %q must be lowercase header names separated by ';'.", signed)
		}
		hasHost = hasHost || h == "host"
	}
	if !hasHost {
		return authorization{}, incomplete("SignedHeaders must include 'host'.")
	}
	return authorization{credential: c, signedHeaders: headers, signedHeadersRaw: signed, signature: sig}, nil
}

// parseCredential parses "AKID/YYYYMMDD/REGION/SERVICE/aws4_request".
func parseCredential(s string) (credential, error) {
	var parts [5]string
	n := 0
	for p := range strings.SplitSeq(s, "/") {
		if n == len(parts) {
			n++
			break
		}
		parts[n] = p
		n++
	}
	if n != len(parts) {
		return credential{}, incomplete("Credential %q is malformed; want AccessKeyId/YYYYMMDD/region/service/aws4_request.", s)
	}
	for _, p := range parts {
		if p == "" {
			return credential{}, incomplete("Credential %q has an empty component.", s)
		}
	}
	if parts[4] != scopeTerminator {
		return credential{}, incomplete("Credential should be scoped with a valid terminator: '%s', not '%s'.", scopeTerminator, parts[4])
	}
	if !validScopeDate(parts[1]) {
		return credential{}, incomplete("Credential scope date %q is not YYYYMMDD.", parts[1])
	}
	return credential{accessKeyID: parts[0], date: parts[1], region: parts[2], service: parts[3]}, nil
}

// validScopeDate reports whether s is a date in YYYYMMDD form.
func validScopeDate(s string) bool {
	if len(s) != 8 {
		return false
	}
	y, okY := digits(s[0:4])
	mo, okMo := digits(s[4:6])
	d, okD := digits(s[6:8])
	return okY && okMo && okD && validDate(y, mo, d)
}

func incomplete(format string, args ...any) error {
	return lambdaapi.Errorf(lambdaapi.IncompleteSignature, format, args...)
}

// appendCanonicalURI appends the request's escaped path escaped once more,
// as the AWS SDKs sign it for every service but S3.
func appendCanonicalURI(b []byte, r *http.Request) []byte {
	p := r.URL.EscapedPath()
	if p == "" {
		p = "/"
	}
	return appendAWSEscape(b, p, false)
}

// appendCanonicalQuery appends every query parameter (but X-Amz-Signature
// when presigned) encoded with AWS's rules, sorted by encoded name, then
// value.
func appendCanonicalQuery(b []byte, q url.Values, presigned bool) []byte {
	if len(q) == 0 {
		return b
	}
	type pair struct{ k, v string }
	var pairs []pair
	for k, vs := range q {
		if presigned && k == "X-Amz-Signature" {
			continue
		}
		ek := awsEscape(k, true)
		for _, v := range vs {
			pairs = append(pairs, pair{ek, awsEscape(v, true)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	for i, p := range pairs {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(append(append(b, p.k...), '='), p.v...)
	}
	return b
}

// appendCanonicalHeaders appends the signed headers, in the order given, as
// "name:value\n" lines. host comes from r.Host and content-length from
// r.ContentLength, since Go's server moves them out of r.Header.
func appendCanonicalHeaders(b []byte, r *http.Request, names []string) []byte {
	for _, name := range names {
		b = append(append(b, name...), ':')
		switch {
		case name == "host":
			b = append(b, stripExcessSpaces(r.Host)...)
		case name == "content-length" && r.ContentLength >= 0:
			b = strconv.AppendInt(b, r.ContentLength, 10)
		default:
			for i, v := range r.Header[canonicalHeaderKey(name)] {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, strings.TrimSpace(stripExcessSpaces(v))...)
			}
		}
		b = append(b, '\n')
	}
	return b
}

// commonHeaderKeys are the canonical forms of the header names the AWS
// SDKs sign, so that finding them costs no allocation.
var commonHeaderKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Content-Md5", "Accept",
		"X-Amz-Date", "X-Amz-Content-Sha256", "X-Amz-Security-Token", "X-Amz-Target", "X-Amz-User-Agent",
		"X-Amz-Invocation-Type", "X-Amz-Log-Type", "X-Amz-Client-Context", "X-Amz-Api-Version",
		"Amz-Sdk-Invocation-Id", "Amz-Sdk-Request", "User-Agent", "X-Amzn-Trace-Id"} {
		m[strings.ToLower(k)] = k
	}
	return m
}()

// canonicalHeaderKey is textproto.CanonicalMIMEHeaderKey(name).
func canonicalHeaderKey(name string) string {
	if k, ok := commonHeaderKeys[name]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// stripExcessSpaces trims spaces at both ends of s and collapses inner runs
// of spaces into one, as the AWS SDKs do to header values.
func stripExcessSpaces(s string) string {
	s = strings.Trim(s, " ")
	if !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' && i > 0 && s[i-1] == ' ' {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// appendAWSEscape appends awsEscape(s, encodeSlash).
func appendAWSEscape(b []byte, s string, encodeSlash bool) []byte {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || (!encodeSlash && c == '/') {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return b
}

// awsEscape percent-encodes (uppercase hex) every byte of s but the
// unreserved A-Z a-z 0-9 - _ . ~, and '/' unless encodeSlash.
func awsEscape(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) && (encodeSlash || s[i] != '/') {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || (!encodeSlash && c == '/') {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// signingKey returns the SigV4 signing key for c and secret, from the cache
// when it holds one derived from the same secret. The four HMACs that
// derive it are done once per key, day, region and service.
func (v *Verifier) signingKey(c credential, secret string) *cachedKey {
	k := scopeKey{c.accessKeyID, c.date, c.region, c.service}
	v.mu.Lock()
	e, ok := v.cache[k]
	v.mu.Unlock()
	if ok && equalConstantTime(e.secret, secret) {
		return e
	}
	e = &cachedKey{secret: secret, key: deriveSigningKey(secret, c.date, c.region, c.service)}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= maxCachedKeys {
		n := 0
		for old := range v.cache { // map order is random enough for eviction
			delete(v.cache, old)
			if n++; n >= maxCachedKeys/2 {
				break
			}
		}
	}
	v.cache[k] = e
	return e
}

func deriveSigningKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	return hmacSHA256(k, []byte(scopeTerminator))
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}
