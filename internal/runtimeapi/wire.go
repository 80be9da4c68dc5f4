package runtimeapi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// The Runtime API's HTTP/1.1, spoken without net/http.
//
// A runtime makes one request at a time on a kept-alive connection (aws-lambda-go,
// Python's and Node.js's clients alike), and a warm invoke is two of them
// (the answer to GET /next, then POST /response). net/http's server costs
// each request a header map, a response writer, buffered writes and a
// background read goroutine (to notice a closed connection), whose
// wake-ups are on the path of every invoke. Here one goroutine per
// connection reads a request, answers it with one write, and reads the
// next; nothing is allocated per request but the answer's body and the
// request id.
//
// What it accepts: HTTP/1.1 and HTTP/1.0 requests in origin form (or
// absolute form, whose path is used), header lines ended by CRLF or LF,
// bodies with Content-Length or chunked transfer coding (with trailers),
// Expect: 100-continue, pipelined requests, Connection: close. Headers and
// trailers together are bounded by maxHeaderBytes. What it refuses with
// 400: anything else (obsolete line folding, conflicting lengths, other
// transfer codings, other HTTP versions), and then closes the connection.

const (
	// maxHeaderBytes bounds a request's line, headers and trailers: a
	// runtime may put an X-Ray error cause of up to 1 MB in a header.
	maxHeaderBytes = 2 << 20
	// maxDiscard is how much of a body the server reads and drops to keep a
	// connection whose request it answered without reading the body.
	maxDiscard = 256 << 10
	// maxConns bounds a server's connections; a runtime uses one or two.
	maxConns = 64
)

var (
	errMalformed      = errors.New("runtimeapi: malformed request")
	errHeaderTooLarge = errors.New("runtimeapi: request headers too large")
)

// request is the part of a runtime's request the server uses. Its byte
// slices point into the connection's scratch space and are valid until the
// next request is read.
type request struct {
	method []byte
	path   []byte // decoded, without the query
	// contentLength is the declared length, or -1 for a chunked body.
	contentLength int64
	expect        bool // Expect: 100-continue
	close         bool // Connection: close, or HTTP/1.0 without keep-alive
	http10        bool
	bodyRead      bool // the body was consumed (or there was none)
	errorType     string
	responseMode  string
	// From the trailers of a chunked body.
	trailerErrorType string
	trailerErrorBody string
}

// hasBody reports whether the request carries body bytes still unread.
func (r *request) hasBody() bool { return !r.bodyRead && r.contentLength != 0 }

// conn is one connection of a runtime.
type conn struct {
	s    *Server
	nc   net.Conn
	br   *bufio.Reader
	wbuf []byte // the answer being written
	line []byte // a header line longer than br's buffer
	head []byte // the request line and path, copied out of br
	req  request
	// budget is what is left of maxHeaderBytes for the current request's
	// line and headers, then for its trailers; a chunked body's framing
	// has its own bound (readBody).
	budget int
	// evicted is closed when the server drops this connection, waiting in
	// /next, to make room for a new one (Serve). polling and pollSince,
	// guarded by Server.mu, say since when it waits.
	evicted   chan struct{}
	polling   bool
	pollSince time.Time
}

// newConn wraps a connection of the runtime.
func newConn(s *Server, nc net.Conn) *conn {
	return &conn{s: s, nc: nc, br: bufio.NewReaderSize(nc, 4096), evicted: make(chan struct{})}
}

// errEvicted ends a connection the server dropped.
var errEvicted = errors.New("runtimeapi: connection dropped for a newer one")

// oldestPollerLocked is the connection that has waited in /next the
// longest, or nil.
func (s *Server) oldestPollerLocked() *conn {
	var oldest *conn
	for _, c := range s.open {
		if c.polling && (oldest == nil || c.pollSince.Before(oldest.pollSince)) {
			oldest = c
		}
	}
	return oldest
}

// readLine returns the next line without its line ending, counting it
// against the header budget.
func (c *conn) readLine() ([]byte, error) {
	b, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		c.line = append(c.line[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(c.line) > c.budget {
				return nil, errHeaderTooLarge
			}
			b, err = c.br.ReadSlice('\n')
			c.line = append(c.line, b...)
		}
		b = c.line
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if c.budget -= len(b); c.budget < 0 {
		return nil, errHeaderTooLarge
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, nil
}

// readRequest reads a request's line and headers into c.req. It returns
// io.EOF when the connection ended between requests.
func (c *conn) readRequest() error {
	c.budget = maxHeaderBytes
	r := &c.req
	*r = request{}
	line, err := c.readLine()
	for err == nil && len(line) == 0 { // RFC 9112 2.2: ignore leading empty lines
		line, err = c.readLine()
	}
	if err != nil {
		return err
	}
	// METHOD SP request-target SP HTTP-version
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		return errMalformed
	}
	method, target, version := line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	if !isToken(method) {
		return errMalformed
	}
	switch string(version) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		r.close, r.http10 = true, true
	default:
		return errMalformed
	}
	if bytes.HasPrefix(target, []byte("http://")) || bytes.HasPrefix(target, []byte("https://")) {
		rest := target[bytes.Index(target, []byte("//"))+2:]
		if i := bytes.IndexByte(rest, '/'); i >= 0 {
			target = rest[i:]
		} else {
			target = []byte("/")
		}
	}
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	for _, ch := range target {
		if ch <= ' ' || ch == 0x7f {
			return errMalformed
		}
	}
	c.head = append(c.head[:0], method...)
	c.head = append(c.head, target...)
	r.method, r.path = c.head[:len(method)], c.head[len(method):]
	if bytes.IndexByte(r.path, '%') >= 0 {
		p, err := url.PathUnescape(string(r.path))
		if err != nil {
			return errMalformed
		}
		r.path = []byte(p)
	}

	var chunked, haveLength, closeAsked, keepAlive bool
	for {
		line, err := c.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := headerLine(line)
		if !ok {
			return errMalformed
		}
		switch {
		case asciiEqualFold(name, "Content-Length"):
			n, ok := parseLength(value)
			if !ok || haveLength && n != r.contentLength {
				return errMalformed
			}
			r.contentLength, haveLength = n, true
		case asciiEqualFold(name, "Transfer-Encoding"):
			if !asciiEqualFold(value, "chunked") || chunked {
				return errMalformed
			}
			chunked = true
		case asciiEqualFold(name, "Expect"):
			switch {
			case len(value) == 0: // as net/http: ignored
			case asciiEqualFold(value, "100-continue"):
				r.expect = !r.http10 // HTTP/1.0 has no 100 Continue
			default:
				return errMalformed // 417 in net/http; no runtime sends another
			}
		case asciiEqualFold(name, "Connection"):
			// A list of tokens; close anywhere wins, keep-alive keeps an
			// HTTP/1.0 connection.
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.Trim(tok, " \t")
				switch {
				case asciiEqualFold(tok, "close"):
					closeAsked = true
				case asciiEqualFold(tok, "keep-alive"):
					keepAlive = true
				}
			}
		case asciiEqualFold(name, hdrErrorType):
			r.errorType = string(value)
		case asciiEqualFold(name, hdrResponseMode):
			r.responseMode = string(value)
		}
	}
	switch {
	case closeAsked:
		r.close = true
	case keepAlive && r.http10:
		r.close = false
	}
	if chunked {
		r.contentLength = -1 // chunked wins over Content-Length (RFC 9112 6.3)
		if haveLength {
			r.close = true // RFC 9112 6.1: close after answering
		}
	}
	r.bodyRead = r.contentLength == 0
	return nil
}

// readBody reads the request's body, up to limit bytes. Over it returns
// errTooLarge and the declared size (-1 if chunked); the connection must
// then be closed. Any other error means the body was cut short or
// malformed.
func (c *conn) readBody(limit int64) ([]byte, int64, error) {
	r := &c.req
	if r.contentLength > limit {
		return nil, r.contentLength, errTooLarge
	}
	if err := c.continue100(); err != nil {
		return nil, 0, err
	}
	r.bodyRead = true
	if r.contentLength >= 0 {
		buf := make([]byte, r.contentLength)
		if _, err := io.ReadFull(c.br, buf); err != nil {
			return nil, 0, err
		}
		return buf, r.contentLength, nil
	}
	b := c.s.bufs.Get().(*bytes.Buffer)
	defer func() {
		if b.Cap() <= int(limit)+bytes.MinRead {
			b.Reset()
			c.s.bufs.Put(b)
		}
	}()
	b.Reset()
	// The framing (chunk-size lines and the CRLF after each chunk) is
	// bounded as net/http bounds it: up to 16 bytes and twice the chunk's
	// size per chunk, and 16 KiB beyond that in all; each line to 4 KiB.
	excess := 0
	for {
		c.budget = 4 << 10
		line, err := c.readLine()
		if err != nil {
			return nil, 0, err
		}
		excess += len(line) + 2
		if i := bytes.IndexByte(line, ';'); i >= 0 { // chunk extensions
			line = line[:i]
		}
		n, ok := parseHex(bytes.TrimRight(line, " \t"))
		if !ok {
			return nil, 0, errMalformed
		}
		if n == 0 {
			break
		}
		if int64(b.Len())+n > limit {
			return nil, -1, errTooLarge
		}
		if _, err := io.CopyN(b, c.br, n); err != nil {
			return nil, 0, err
		}
		c.budget = 4 << 10
		crlf, err := c.readLine()
		if err != nil {
			return nil, 0, err
		}
		if len(crlf) != 0 {
			return nil, 0, errMalformed
		}
		excess += 2 - 16 - 2*int(min(n, 1<<20))
		if excess = max(excess, 0); excess > 16<<10 {
			return nil, 0, errMalformed
		}
	}
	c.budget = maxHeaderBytes
	for { // trailers
		line, err := c.readLine()
		if err != nil {
			return nil, 0, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := headerLine(line)
		if !ok {
			return nil, 0, errMalformed
		}
		switch {
		case asciiEqualFold(name, hdrErrorType):
			r.trailerErrorType = string(value)
		case asciiEqualFold(name, hdrErrorBody):
			r.trailerErrorBody = string(value)
		}
	}
	return bytes.Clone(b.Bytes()), int64(b.Len()), nil
}

// continue100 tells a runtime that sent Expect: 100-continue to send its
// body.
func (c *conn) continue100() error {
	if !c.req.expect || !c.req.hasBody() {
		return nil
	}
	c.req.expect = false
	_, err := c.nc.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	return err
}

// finishBody makes the connection ready for the next request after an
// answer that did not read the body: a small body announced without
// Expect is read and dropped; otherwise the connection is to be closed.
func (c *conn) finishBody() {
	r := &c.req
	if !r.hasBody() || r.close {
		return // nothing to skip, or the connection ends anyway
	}
	if r.expect || r.contentLength < 0 || r.contentLength > maxDiscard {
		r.close = true
		return
	}
	if _, err := c.br.Discard(int(r.contentLength)); err != nil {
		r.close = true
	}
	r.bodyRead = true
}

// Status lines of the answers the server sends.
var statusLines = map[int]string{
	200: "HTTP/1.1 200 OK\r\n",
	202: "HTTP/1.1 202 Accepted\r\n",
	400: "HTTP/1.1 400 Bad Request\r\n",
	403: "HTTP/1.1 403 Forbidden\r\n",
	404: "HTTP/1.1 404 Not Found\r\n",
	405: "HTTP/1.1 405 Method Not Allowed\r\n",
	413: "HTTP/1.1 413 Request Entity Too Large\r\n",
	500: "HTTP/1.1 500 Internal Server Error\r\n",
}

// startAnswer begins an answer in c.wbuf: the status line, then allow (an
// Allow header) if not empty, and Connection: close if the connection ends
// after it. The caller appends its headers and calls send.
func (c *conn) startAnswer(status int) {
	c.finishBody()
	c.wbuf = append(c.wbuf[:0], statusLines[status]...)
	if c.req.close {
		c.wbuf = append(c.wbuf, "Connection: close\r\n"...)
	}
}

// send ends the headers with Content-Type and Content-Length and writes
// the answer and body in one go.
func (c *conn) send(contentType string, body []byte) error {
	c.wbuf = append(c.wbuf, "Content-Type: "...)
	c.wbuf = append(c.wbuf, contentType...)
	c.wbuf = append(c.wbuf, "\r\nContent-Length: "...)
	c.wbuf = strconv.AppendInt(c.wbuf, int64(len(body)), 10)
	c.wbuf = append(c.wbuf, "\r\n\r\n"...)
	if string(c.req.method) == "HEAD" {
		body = nil // the length is said, the body not sent
	}
	return c.write(body)
}

// write writes c.wbuf followed by body: copied into one buffer when small,
// else with writev.
func (c *conn) write(body []byte) error {
	if len(body) <= 64<<10 {
		c.wbuf = append(c.wbuf, body...)
		_, err := c.nc.Write(c.wbuf)
		c.shrink()
		return err
	}
	bufs := net.Buffers{c.wbuf, body}
	_, err := bufs.WriteTo(c.nc)
	return err
}

// shrink drops a write buffer grown large by one big answer.
func (c *conn) shrink() {
	if cap(c.wbuf) > 128<<10 {
		c.wbuf = nil
	}
}

// shrinkScratch drops the scratch space a long header line or path made
// large, once its request is done: a runtime's idle connections keep
// little.
func (c *conn) shrinkScratch() {
	if cap(c.line) > 64<<10 {
		c.line = nil
	}
	if cap(c.head) > 64<<10 {
		c.head = nil
	}
}

// headerLine splits "Name: value" and trims the value's optional
// whitespace.
func headerLine(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 || !isToken(line[:i]) {
		return nil, nil, false // also a folded line, which starts with space
	}
	value = bytes.Trim(line[i+1:], " \t")
	for _, ch := range value {
		if ch < ' ' && ch != '\t' || ch == 0x7f {
			return nil, nil, false
		}
	}
	return line[:i], value, true
}

// isToken reports whether b is an HTTP token (a method or a header name).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, ch := range b {
		if ch <= ' ' || ch >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), ch) >= 0 {
			return false
		}
	}
	return true
}

// asciiEqualFold reports whether b equals s, ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}

// parseHex parses a chunk size.
func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		switch {
		case '0' <= ch && ch <= '9':
			ch -= '0'
		case 'a' <= ch && ch <= 'f':
			ch -= 'a' - 10
		case 'A' <= ch && ch <= 'F':
			ch -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | int64(ch)
	}
	return n, true
}

// cleanPath reports whether p is an absolute path without empty, "." or
// ".." segments and without a trailing slash (but "/").
func cleanPath(p []byte) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	if len(p) == 1 {
		return true
	}
	for seg := range bytes.SplitSeq(p[1:], []byte("/")) {
		if len(seg) == 0 || string(seg) == "." || string(seg) == ".." {
			return false
		}
	}
	return true
}

// isTemporary reports whether an Accept error passes (out of files, a
// connection reset before it was accepted).
func isTemporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}
