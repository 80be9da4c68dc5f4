// Package logs keeps functions' logs durably in a JetStream stream and
// serves them through the part of the CloudWatch Logs JSON API that the AWS
// CLI's `aws logs tail`, `filter-log-events`, `get-log-events`,
// `describe-log-groups` and `describe-log-streams` use.
//
// Every account's log groups (/aws/lambda/NAME) and log streams (one per
// sandbox) live in one stream, EMBER_LOGS, on subjects
// logs.ACCOUNT.GROUP.STREAM where GROUP and STREAM are the names in
// unpadded base64url, so a subject filter selects exactly one account, one
// group or one stream. Each message is a batch of events of one log stream
// (what the Writer flushed at once). Retention is the stream's: limits in
// bytes and age, the oldest batches go first.
package logs

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream that holds every function log. It is
// part of the on-disk format: do not rename.
const StreamName = "EMBER_LOGS"

const subjectPrefix = "logs."

// Limits of CloudWatch Logs that Ember keeps.
const (
	// MaxEventSize is the largest message of one event; longer ones are
	// cut (CloudWatch: 256 KB including 26 bytes of overhead).
	MaxEventSize = 256*1024 - eventOverhead
	// eventOverhead is what CloudWatch counts per event beyond its message.
	eventOverhead = 26
	// maxBatchBytes and maxBatchEvents bound one stored message
	// (CloudWatch's PutLogEvents: 1 MB, 10,000 events); smaller than the
	// 1 MB default payload limit of a NATS server.
	maxBatchBytes  = 256 * 1024
	maxBatchEvents = 10000
)

// Defaults of Config.
const (
	DefaultMaxBytes = 1 << 30
	DefaultMaxAge   = 7 * 24 * time.Hour
)

// Errors of the package.
var (
	ErrBadName = errors.New("logs: invalid account, log group or log stream name")
)

// Event is one log event: a message and when it was written.
type Event struct {
	// Time is when the line was written; it is stored in milliseconds.
	Time    time.Time
	Message string
}

// Config configures the log store.
type Config struct {
	// MaxBytes bounds the stream (default 1 GiB): beyond it the oldest
	// batches are removed.
	MaxBytes int64
	// MaxAge bounds how long events are kept (default 7 days).
	MaxAge time.Duration
	// Replicas of the stream (default 1; 3 in a NATS cluster).
	Replicas int
}

// Store is the handle on the log stream.
type Store struct {
	cfg    Config
	js     jetstream.JetStream
	stream jetstream.Stream

	sizesMu sync.Mutex
	sizes   map[string]groupSize // by group filter (read.go, storedBytes)
}

// Open creates or updates the log stream with cfg's limits.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	// The duplicate window (batches carry ids, so a publish retried after
	// a lost acknowledgement is stored once) may not exceed MaxAge.
	dup := min(2*time.Minute, cfg.MaxAge)
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Ember function logs: logs.ACCOUNT.GROUP.STREAM, names in base64url",
		Subjects:    []string{subjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxBytes:    cfg.MaxBytes,
		MaxAge:      cfg.MaxAge,
		MaxMsgSize:  2 * maxBatchBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  dup,
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("logs: stream %s: %w", StreamName, err)
	}
	return &Store{cfg: cfg, js: js, stream: st, sizes: map[string]groupSize{}}, nil
}

// Limits are the store's retention limits.
func (s *Store) Limits() (maxBytes int64, maxAge time.Duration) {
	return s.cfg.MaxBytes, s.cfg.MaxAge
}

// GroupName is the log group of a Lambda function.
func GroupName(function string) string { return "/aws/lambda/" + function }

var b64 = base64.RawURLEncoding

// subject is where the events of one log stream are stored.
func subject(account, group, stream string) (string, error) {
	if !validAccount(account) || !validName(group) || !validName(stream) {
		return "", fmt.Errorf("%w: %q %q %q", ErrBadName, account, group, stream)
	}
	return subjectPrefix + account + "." + b64.EncodeToString([]byte(group)) + "." + b64.EncodeToString([]byte(stream)), nil
}

// groupFilter selects every stream of one group of one account.
func groupFilter(account, group string) string {
	return subjectPrefix + account + "." + b64.EncodeToString([]byte(group)) + ".*"
}

// accountFilter selects every log of one account.
func accountFilter(account string) string { return subjectPrefix + account + ".*.*" }

// parseSubject returns the group and stream names of a subject.
func parseSubject(subj string) (group, stream string, ok bool) {
	parts := strings.Split(subj, ".")
	if len(parts) != 4 {
		return "", "", false
	}
	g, err1 := b64.DecodeString(parts[2])
	s, err2 := b64.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return "", "", false
	}
	return string(g), string(s), true
}

// validAccount accepts what can be one subject token: Ember's account ids
// are 12 digits.
func validAccount(a string) bool {
	if a == "" || len(a) > 64 {
		return false
	}
	for _, c := range a {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validName checks a log group or stream name (CloudWatch: 1-512
// characters; ':' and '*' are not allowed in stream names, which Ember
// does not enforce for names it makes itself).
func validName(n string) bool {
	return n != "" && len(n) <= 512 && utf8.ValidString(n)
}

// batch is one stored message: events of one log stream.
type batch struct {
	// Ingestion is when the batch was stored, in ms since the epoch.
	Ingestion int64
	Events    []storedEvent
}

type storedEvent struct {
	T int64  // ms since the epoch
	M string // as written: not escaped, so sizes are exact
}

// batchVersion starts every stored batch: version, ingestion (varint),
// count (uvarint), then per event its timestamp (varint), length
// (uvarint) and bytes.
const batchVersion = 1

func encodeBatch(b batch) []byte {
	n := 1 + 2*binary.MaxVarintLen64
	for _, e := range b.Events {
		n += 2*binary.MaxVarintLen64 + len(e.M)
	}
	out := make([]byte, 0, n)
	out = append(out, batchVersion)
	out = binary.AppendVarint(out, b.Ingestion)
	out = binary.AppendUvarint(out, uint64(len(b.Events)))
	for _, e := range b.Events {
		out = binary.AppendVarint(out, e.T)
		out = binary.AppendUvarint(out, uint64(len(e.M)))
		out = append(out, e.M...)
	}
	return out
}

var errCorrupt = errors.New("logs: corrupt batch")

func decodeBatch(data []byte) (batch, error) {
	var b batch
	if len(data) == 0 || data[0] != batchVersion {
		return b, errCorrupt
	}
	p := data[1:]
	varint := func() (int64, bool) {
		v, n := binary.Varint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	var ok bool
	if b.Ingestion, ok = varint(); !ok {
		return b, errCorrupt
	}
	count, ok := uvarint()
	if !ok || count > uint64(len(p)) {
		return b, errCorrupt
	}
	b.Events = make([]storedEvent, count)
	for i := range b.Events {
		t, ok1 := varint()
		l, ok2 := uvarint()
		if !ok1 || !ok2 || l > uint64(len(p)) {
			return b, errCorrupt
		}
		b.Events[i] = storedEvent{T: t, M: string(p[:l])}
		p = p[l:]
	}
	return b, nil
}

// eventSize is what an event counts against the limits.
func eventSize(msg string) int { return len(msg) + eventOverhead }

// clip cuts a message to MaxEventSize without splitting a UTF-8 sequence.
func clip(msg string) string {
	if len(msg) <= MaxEventSize {
		return msg
	}
	cut := MaxEventSize
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut]
}

// split cuts events into batches within the limits of one message.
func split(events []storedEvent) [][]storedEvent {
	var out [][]storedEvent
	start, size := 0, 0
	for i, e := range events {
		es := eventSize(e.M)
		if i > start && (size+es > maxBatchBytes || i-start >= maxBatchEvents) {
			out = append(out, events[start:i])
			start, size = i, 0
		}
		size += es
	}
	if start < len(events) {
		out = append(out, events[start:])
	}
	return out
}

func millis(t time.Time) int64 { return t.UnixMilli() }
