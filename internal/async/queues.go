package async

// Ember queues: durable named queues of an account. They are the queue
// destinations of asynchronous invocations (OnSuccess, OnFailure: Lambda's
// invocation record is the message) and functions' dead-letter queues
// (DeadLetterConfig: the event's payload is the message, with Lambda's
// RequestID, ErrorCode and ErrorMessage attributes). Their ARNs have SQS's
// shape, arn:aws:sqs:REGION:ACCOUNT:NAME, which Lambda's destination and
// dead-letter configs accept and tooling recognises.
//
// Lifecycle: a queue is created explicitly (POST /ember/v1/queues, `ember
// queue create`), as an SQS queue must exist before Lambda sends to it; a
// destination or dead-letter config naming a queue that does not exist is
// refused (InvalidParameterValueException). Deleting a queue that a config
// names is refused (ResourceConflictException) unless forced; records for a
// queue that is gone are dropped and counted (DestinationFailures).
//
// Storage: the registry is the KV bucket ember-queues, key ACCOUNT.NAME, whose
// value names the queue's stream. Each queue is its own JetStream stream
// EMBER_QUEUE_<ACCOUNT>_<ID>, subject queues.<ACCOUNT>.<ID>, where ID is 16
// random hex digits chosen at creation: the queue's name never appears in a
// stream name or subject, so any valid name is safe, and a queue deleted and
// created again never sees the old one's messages. Streams are file
// storage, replicated as the async stream, work-queue retention (a message
// is gone once read and deleted), kept at most MessageRetentionPeriod
// (default 4 days, 60 s to 14 days, as SQS) and 1 GiB (the oldest go
// first), with a 10-minute duplicate window: a record is published with a
// message id derived from the event's request id, so a redelivered
// hand-over is stored once. A stream left by a crash between its creation
// and its registration (or between a registration's removal and the
// stream's) is deleted at the next start once it is 10 minutes old.
//
// Reading is at-least-once: receive makes messages invisible for the
// queue's VisibilityTimeout (default 30 s) and answers them with receipt
// handles; a message is removed only when deleted with its handle, and one
// not deleted in time is received again (its receive count grows). `ember
// queue read` receives, prints, then deletes; `--peek` lists messages
// without receiving them.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// Names that are part of the on-disk format: do not rename.
const (
	queueBucket        = "ember-queues"
	queueStreamPrefix  = "EMBER_QUEUE_"
	queueSubjectPrefix = "queues."
	queueConsumer      = "reader"
	// Message headers: the message's id, and its attributes as a JSON
	// object of strings.
	headerMessageID  = "Ember-Message-Id"
	headerAttributes = "Ember-Message-Attributes"
	// Stream metadata naming the queue, for operators and the sweep.
	metaAccount = "ember-account"
	metaQueue   = "ember-queue"
)

// Limits and defaults of Ember queues (SQS's where SQS has one).
const (
	DefaultQueueRetention    = 345600  // seconds: 4 days
	MinQueueRetention        = 60      // seconds
	MaxQueueRetention        = 1209600 // seconds: 14 days
	DefaultVisibilityTimeout = 30      // seconds
	MaxVisibilityTimeout     = 43200   // seconds: 12 hours
	MaxReceive               = 100     // messages per receive
	MaxReceiveWait           = 20      // seconds of long polling
	queueMaxBytes            = 1 << 30
	maxReceiveBytes          = 16 << 20 // a receive answers at most this much body
	maxErrorMessage          = 1024     // a dead-letter ErrorMessage, as Lambda's
	orphanAge                = 10 * time.Minute
	ackTimeout               = 2 * time.Second
)

// Dead-letter message attributes, as Lambda sets them.
const (
	AttrRequestID    = "RequestID"
	AttrErrorCode    = "ErrorCode"
	AttrErrorMessage = "ErrorMessage"
)

var queueNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// ValidQueueName reports whether name is a valid queue name: 1-80 letters,
// digits, '-' or '_' (SQS's standard queue names; FIFO queues are not
// built).
func ValidQueueName(name string) bool { return queueNameRE.MatchString(name) }

// QueueARN is a queue's ARN, in SQS's shape.
func QueueARN(region, account, name string) string {
	return "arn:" + lambdaapi.Partition + ":sqs:" + region + ":" + account + ":" + name
}

// ParseQueueARN splits an ARN of SQS's shape.
func ParseQueueARN(arn string) (region, account, name string, ok bool) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[1] != lambdaapi.Partition || parts[2] != "sqs" ||
		parts[3] == "" || !validToken(parts[4]) || !ValidQueueName(parts[5]) {
		return "", "", "", false
	}
	return parts[3], parts[4], parts[5], true
}

// queueMeta is a queue as the registry holds it.
type queueMeta struct {
	Account string    `json:"account"`
	Name    string    `json:"name"`
	ID      string    `json:"id"` // names the stream and subject
	Created time.Time `json:"created"`
	// Retention and Visibility are in seconds.
	Retention  int `json:"retention"`
	Visibility int `json:"visibility"`
}

func (m *queueMeta) stream() string  { return queueStreamPrefix + m.Account + "_" + m.ID }
func (m *queueMeta) subject() string { return queueSubjectPrefix + m.Account + "." + m.ID }

func queueKey(account, name string) string { return account + "." + name }

// errQueueConflict: a queue of that name exists with other attributes.
var errQueueConflict = errors.New("async: the queue exists with other attributes")

// createQueue makes a queue, or answers the existing one of that name if
// its attributes are the ones asked for (retention or visibility 0: any).
func (q *Queue) createQueue(ctx context.Context, account, name string, retention, visibility int) (m queueMeta, created bool, err error) {
	if !validToken(account) || !ValidQueueName(name) {
		return m, false, fmt.Errorf("async: bad account or queue name %q %q", account, name)
	}
	same := func(m queueMeta) bool {
		return (retention == 0 || retention == m.Retention) && (visibility == 0 || visibility == m.Visibility)
	}
	if m, err := q.lookupQueue(ctx, account, name); err == nil {
		if !same(m) {
			return m, false, errQueueConflict
		}
		return m, false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return m, false, err
	}
	if retention == 0 {
		retention = DefaultQueueRetention
	}
	if visibility == 0 {
		visibility = DefaultVisibilityTimeout
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	m = queueMeta{Account: account, Name: name, ID: hex.EncodeToString(id[:]), Created: q.cfg.Now().UTC(),
		Retention: retention, Visibility: visibility}
	st, err := q.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        m.stream(),
		Description: "Ember queue " + QueueARN(q.cfg.Region, account, name),
		Subjects:    []string{m.subject()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    q.cfg.Replicas,
		MaxAge:      time.Duration(retention) * time.Second,
		MaxBytes:    queueMaxBytes,
		Discard:     jetstream.DiscardOld,
		MaxMsgSize:  maxMsgSize,
		Duplicates:  duplicateWindow,
		Metadata:    map[string]string{metaAccount: account, metaQueue: name},
	})
	if err != nil {
		return m, false, fmt.Errorf("async: creating the stream of queue %s: %w", name, err)
	}
	if _, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       queueConsumer,
		Description:   "readers of the queue (receive, delete)",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Duration(visibility) * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 100000,
		FilterSubject: m.subject(),
	}); err != nil {
		_ = q.js.DeleteStream(context.WithoutCancel(ctx), m.stream())
		return m, false, fmt.Errorf("async: creating the consumer of queue %s: %w", name, err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return m, false, err
	}
	if _, err := q.queues.Create(ctx, queueKey(account, name), b); err != nil {
		_ = q.js.DeleteStream(context.WithoutCancel(ctx), m.stream())
		if errors.Is(err, jetstream.ErrKeyExists) {
			// Created concurrently: that one is the queue.
			existing, lerr := q.lookupQueue(ctx, account, name)
			if lerr != nil {
				return m, false, lerr
			}
			if !same(existing) {
				return existing, false, errQueueConflict
			}
			return existing, false, nil
		}
		return m, false, err
	}
	q.log.Info("queue created", "account", account, "queue", name, "stream", m.stream())
	return m, true, nil
}

// lookupQueue reads a queue's registration; store.ErrNotFound if none.
func (q *Queue) lookupQueue(ctx context.Context, account, name string) (queueMeta, error) {
	var m queueMeta
	if !validToken(account) || !ValidQueueName(name) {
		return m, store.ErrNotFound
	}
	e, err := q.queues.Get(ctx, queueKey(account, name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return m, store.ErrNotFound
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return m, fmt.Errorf("async: decoding queue %s: %w", name, err)
	}
	return m, nil
}

// listQueues returns an account's queues by name.
func (q *Queue) listQueues(ctx context.Context, account string) ([]queueMeta, error) {
	l, err := q.queues.ListKeysFiltered(ctx, account+".*")
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	_ = l.Stop()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]queueMeta, 0, len(keys))
	for _, k := range keys {
		_, name, _ := strings.Cut(k, ".")
		m, err := q.lookupQueue(ctx, account, name)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b queueMeta) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// deleteQueue removes a queue's registration, then its stream (messages
// and all). store.ErrNotFound if there is no such queue.
func (q *Queue) deleteQueue(ctx context.Context, account, name string) error {
	e, err := q.queues.Get(ctx, queueKey(account, name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	var m queueMeta
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return err
	}
	if err := q.queues.Purge(ctx, queueKey(account, name), jetstream.LastRevision(e.Revision())); err != nil {
		if isWrongSequence(err) {
			return store.ErrNotFound // deleted (or made again) meanwhile
		}
		return err
	}
	if err := q.js.DeleteStream(ctx, m.stream()); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		// The next start removes it (an orphan).
		q.log.Warn("deleting a queue's stream", "stream", m.stream(), "err", err)
	}
	q.log.Info("queue deleted", "account", account, "queue", name, "stream", m.stream())
	return nil
}

// removeOrphanQueueStreams deletes queue streams that no registration
// names and that are older than orphanAge (younger ones may be a creation
// in progress).
func (q *Queue) removeOrphanQueueStreams(ctx context.Context) {
	names := q.js.StreamNames(ctx, jetstream.WithStreamListSubject(queueSubjectPrefix+">"))
	var orphans []string
	for name := range names.Name() {
		if !strings.HasPrefix(name, queueStreamPrefix) {
			continue
		}
		st, err := q.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		info := st.CachedInfo()
		if q.cfg.Now().Sub(info.Created) < orphanAge {
			continue
		}
		account, queue := info.Config.Metadata[metaAccount], info.Config.Metadata[metaQueue]
		m, err := q.lookupQueue(ctx, account, queue)
		if err == nil && m.stream() == name {
			continue
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			continue
		}
		orphans = append(orphans, name)
	}
	if err := names.Err(); err != nil && ctx.Err() == nil {
		q.log.Warn("listing queue streams", "err", err)
	}
	for _, name := range orphans {
		if err := q.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			q.log.Warn("deleting an orphaned queue stream", "stream", name, "err", err)
			continue
		}
		q.log.Info("deleted an orphaned queue stream", "stream", name)
	}
}

// queueCounts is how many messages a queue holds: visible ones and ones
// received but not yet deleted.
func (q *Queue) queueCounts(ctx context.Context, m queueMeta) (visible, inFlight uint64, err error) {
	c, err := q.js.Consumer(ctx, m.stream(), queueConsumer)
	if err != nil {
		return 0, 0, err
	}
	info := c.CachedInfo()
	st, err := q.js.Stream(ctx, m.stream())
	if err != nil {
		return 0, 0, err
	}
	total := st.CachedInfo().State.Msgs
	inFlight = uint64(info.NumAckPending)
	if inFlight > total {
		inFlight = total
	}
	return total - inFlight, inFlight, nil
}

// send stores one message in a queue; it returns once the server has it.
// msgID deduplicates a repeated send within the duplicate window.
func (q *Queue) send(ctx context.Context, m queueMeta, body []byte, attrs map[string]string, msgID string) error {
	msg := nats.NewMsg(m.subject())
	msg.Data = body
	msg.Header.Set(headerMessageID, lambdaapi.NewRequestID())
	if len(attrs) > 0 {
		b, err := json.Marshal(attrs)
		if err != nil {
			return err
		}
		msg.Header.Set(headerAttributes, string(b))
	}
	if err := q.publishRetry(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(m.stream())); err != nil {
		return fmt.Errorf("async: storing a message in queue %s: %w", m.Name, err)
	}
	return nil
}

// Message is a queue message as the API answers it.
type Message struct {
	MessageID string `json:"MessageId"`
	// ReceiptHandle deletes a received message (none on a peek).
	ReceiptHandle string `json:"ReceiptHandle,omitempty"`
	// Sequence is the message's position in the queue.
	Sequence uint64 `json:"Sequence"`
	Body     string `json:"Body"`
	// Attributes: SentTimestamp (ms since the epoch) and, for received
	// messages, ApproximateReceiveCount.
	Attributes map[string]string `json:"Attributes"`
	// MessageAttributes: a dead-letter message's RequestID, ErrorCode and
	// ErrorMessage.
	MessageAttributes map[string]string `json:"MessageAttributes,omitempty"`
}

func newMessage(seq uint64, sent time.Time, h nats.Header, data []byte) Message {
	m := Message{MessageID: h.Get(headerMessageID), Sequence: seq, Body: string(data),
		Attributes: map[string]string{"SentTimestamp": strconv.FormatInt(sent.UnixMilli(), 10)}}
	if m.MessageID == "" {
		m.MessageID = strconv.FormatUint(seq, 10)
	}
	if a := h.Get(headerAttributes); a != "" {
		_ = json.Unmarshal([]byte(a), &m.MessageAttributes)
	}
	return m
}

// receive takes up to n visible messages, waiting up to wait for the
// first; they stay invisible for the queue's visibility timeout unless
// deleted.
func (q *Queue) receive(ctx context.Context, m queueMeta, n int, wait time.Duration) ([]Message, error) {
	c, err := q.js.Consumer(ctx, m.stream(), queueConsumer)
	if err != nil {
		return nil, err
	}
	var got []jetstream.Msg
	collect := func(b jetstream.MessageBatch, err error) error {
		if err != nil {
			return err
		}
		for msg := range b.Messages() {
			got = append(got, msg)
		}
		if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			return err
		}
		return nil
	}
	deadline := time.Now().Add(wait)
	for {
		if err := collect(c.FetchNoWait(n - len(got))); err != nil {
			return nil, q.release(got, err)
		}
		left := time.Until(deadline)
		if len(got) > 0 || left <= 0 || ctx.Err() != nil {
			break
		}
		// Long polling in slices of at most a second, so that a caller
		// that went away stops it soon.
		if err := collect(c.Fetch(1, jetstream.FetchMaxWait(max(min(left, time.Second), 100*time.Millisecond)))); err != nil {
			return nil, q.release(got, err)
		}
		if len(got) > 0 && len(got) < n {
			continue // top up with what else is there, without waiting
		}
		if len(got) > 0 {
			break
		}
	}
	out := make([]Message, 0, len(got))
	size := 0
	for i, msg := range got {
		md, err := msg.Metadata()
		if err != nil {
			_ = msg.Nak()
			continue
		}
		if ctx.Err() != nil || (i > 0 && size+len(msg.Data()) > maxReceiveBytes) {
			_ = msg.Nak() // visible again at once
			continue
		}
		size += len(msg.Data())
		mm := newMessage(md.Sequence.Stream, md.Timestamp, msg.Headers(), msg.Data())
		mm.ReceiptHandle = base64.RawURLEncoding.EncodeToString([]byte(msg.Reply()))
		mm.Attributes["ApproximateReceiveCount"] = strconv.FormatUint(md.NumDelivered, 10)
		out = append(out, mm)
	}
	return out, nil
}

// release makes received messages visible again after a failed receive.
func (q *Queue) release(got []jetstream.Msg, err error) error {
	for _, msg := range got {
		_ = msg.Nak()
	}
	return err
}

// ackSubject decodes a receipt handle into the ack subject of a message
// of queue m, refusing any other subject.
func ackSubject(m queueMeta, handle string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(handle)
	if err != nil || len(b) > 512 {
		return "", false
	}
	s := string(b)
	tokens := strings.Split(s, ".")
	// $JS.ACK.<stream>.<consumer>.<5 numbers> (v1) or
	// $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<5 numbers>[.<more>] (v2).
	if (len(tokens) != 9 && len(tokens) < 11) || tokens[0] != "$JS" || tokens[1] != "ACK" {
		return "", false
	}
	at := 2
	if len(tokens) >= 11 {
		at = 4
	}
	if tokens[at] != m.stream() || tokens[at+1] != queueConsumer {
		return "", false
	}
	for _, t := range tokens {
		if t == "" || strings.ContainsAny(t, "*> \t\r\n") {
			return "", false
		}
	}
	for _, t := range tokens[at+2 : at+7] {
		if _, err := strconv.ParseUint(t, 10, 64); err != nil {
			return "", false
		}
	}
	return s, true
}

// deleteMessages removes received messages by their receipt handles; it
// answers the handles it could not delete (invalid, or not acknowledged by
// the server in time).
func (q *Queue) deleteMessages(ctx context.Context, m queueMeta, handles []string) (failed []string) {
	for _, h := range handles {
		subj, ok := ackSubject(m, h)
		if !ok {
			failed = append(failed, h)
			continue
		}
		actx, cancel := context.WithTimeout(ctx, ackTimeout)
		_, err := q.nc.RequestWithContext(actx, subj, []byte("+ACK"))
		cancel()
		if err != nil {
			failed = append(failed, h)
		}
	}
	return failed
}

// peek lists up to n messages after sequence after, without receiving
// them (messages received but not deleted are listed too).
func (q *Queue) peek(ctx context.Context, m queueMeta, after uint64, n int) ([]Message, error) {
	st, err := q.js.Stream(ctx, m.stream())
	if err != nil {
		return nil, err
	}
	seq := max(after+1, st.CachedInfo().State.FirstSeq)
	out := []Message{}
	for len(out) < n {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(m.subject()))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, newMessage(raw.Sequence, raw.Time, raw.Header, raw.Data))
		seq = raw.Sequence + 1
	}
	return out, nil
}

// CheckQueueTarget checks that arn names an existing queue of account in
// this region: the destination and dead-letter configs may name only
// those. Its errors are Lambda's InvalidParameterValueException.
func (q *Queue) CheckQueueTarget(ctx context.Context, account, arn string) error {
	region, owner, name, ok := ParseQueueARN(arn)
	if !ok {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "The target ARN %s is invalid: want arn:aws:sqs:REGION:ACCOUNT:QUEUE", arn)
	}
	if owner != account || region != q.cfg.Region {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"The target ARN %s is not supported: Ember's queue targets are queues of the same account and region", arn)
	}
	if _, err := q.lookupQueue(ctx, account, name); errors.Is(err, store.ErrNotFound) {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"The target ARN %s is invalid: queue %s does not exist (create it with `ember queue create %s`)", arn, name, name)
	} else if err != nil {
		return err
	}
	return nil
}

// CheckDeadLetterTarget checks a function's DeadLetterConfig.TargetArn: an
// existing Ember queue of the same account and region.
func (q *Queue) CheckDeadLetterTarget(ctx context.Context, account, arn string) error {
	if strings.HasPrefix(arn, "arn:"+lambdaapi.Partition+":sns:") {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"The dead-letter target %s is not supported: Ember's dead-letter targets are its queues (arn:aws:sqs:...)", arn)
	}
	return q.CheckQueueTarget(ctx, account, arn)
}

// toQueueDestination stores an invocation record in a destination queue,
// then acks the event. A queue that no longer exists loses the record
// (counted, as Lambda's DestinationDeliveryFailures).
func (q *Queue) toQueueDestination(ctx context.Context, msg delivery, ev *event, dest *destination, record []byte, condition string, log *slog.Logger) {
	m, err := q.lookupQueue(ctx, dest.Account, dest.Name)
	if errors.Is(err, store.ErrNotFound) {
		q.destinationFailures.Add(1)
		q.dropped.Add(1)
		log.Error("dropping an invocation record: its destination queue does not exist", "destination", dest.ARN, "condition", condition)
		_ = msg.Ack()
		return
	}
	if err == nil {
		err = q.send(ctx, m, record, nil, ev.RequestID+"/destination")
	}
	if err != nil {
		log.Warn("storing an invocation record in a queue", "destination", dest.ARN, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	q.toQueue.Add(1)
	log.Info("event outcome sent to its destination queue", "condition", condition, "destination", dest.ARN)
	_ = msg.Ack()
}

// deadLetter stores a failed event (expired or out of retries, without
// OnFailure) in its function version's dead-letter queue, as Lambda does:
// the payload is the message, with RequestID, ErrorCode and ErrorMessage
// attributes. It reports whether it took care of msg (stored and acked,
// or to be retried); false means there is no dead-letter queue (or it is
// gone) and the event is to be dropped.
func (q *Queue) deadLetter(ctx context.Context, msg delivery, ev *event, cause *lambdaapi.Error, log *slog.Logger) bool {
	target, err := q.deadLetterTarget(ctx, ev)
	if err != nil {
		log.Warn("reading the dead-letter config", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return true
	}
	if target == "" {
		return false
	}
	_, account, name, ok := ParseQueueARN(target)
	if !ok {
		log.Error("a dead-letter target that is not an Ember queue", "target", target)
		return false
	}
	m, err := q.lookupQueue(ctx, account, name)
	if errors.Is(err, store.ErrNotFound) {
		q.destinationFailures.Add(1)
		log.Error("the dead-letter queue does not exist", "target", target)
		return false
	}
	if err == nil {
		err = q.send(ctx, m, ev.Payload, deadLetterAttributes(ev, cause), ev.RequestID+"/dead-letter")
	}
	if err != nil {
		log.Warn("storing a dead-letter message", "target", target, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return true
	}
	q.deadLettered.Add(1)
	log.Info("failed event sent to its dead-letter queue", "target", target, "attempts", ev.Attempts)
	_ = msg.Ack()
	return true
}

// deadLetterTarget is the DeadLetterConfig.TargetArn of the version the
// event ran on (or would have run on); "" if none or the function is gone.
func (q *Queue) deadLetterTarget(ctx context.Context, ev *event) (string, error) {
	fns := q.cfg.Functions
	if fns == nil {
		return "", nil
	}
	version := ""
	if ev.Last != nil {
		version = ev.Last.ExecutedVersion
	}
	if version == "" {
		version = ev.Qualifier
		if version != "" && version != lambdaapi.VersionLatest && !lambdaapi.IsVersionNumber(version) {
			a, err := fns.GetAlias(ctx, ev.Account, ev.Function, version)
			if errors.Is(err, store.ErrNotFound) {
				return "", nil
			}
			if err != nil {
				return "", err
			}
			version = a.FunctionVersion
		}
	}
	var f store.Function
	var err error
	if version == "" || version == lambdaapi.VersionLatest {
		var r store.Revision
		r, err = fns.GetFunction(ctx, ev.Account, ev.Function)
		f = r.Function
	} else {
		f, err = fns.GetVersion(ctx, ev.Account, ev.Function, version)
	}
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return f.DeadLetterTarget, nil
}

// deadLetterAttributes are Lambda's attributes of a dead-letter message:
// ErrorCode is the HTTP status of the last attempt (200 for a function
// error; 429 for a throttle; 500 otherwise), ErrorMessage the first 1 KB
// of its error message.
func deadLetterAttributes(ev *event, cause *lambdaapi.Error) map[string]string {
	code, message := "500", "The event expired before it could run"
	switch {
	case cause != nil:
		code, message = strconv.Itoa(cause.Status()), cause.Message
	case ev.Last != nil && ev.Last.FunctionError != "":
		code, message = "200", string(ev.Last.Payload)
		var e struct {
			ErrorMessage string `json:"errorMessage"`
		}
		if json.Unmarshal(ev.Last.Payload, &e) == nil && e.ErrorMessage != "" {
			message = e.ErrorMessage
		} else if s := ""; json.Unmarshal(ev.Last.Payload, &s) == nil {
			message = s
		}
	}
	return map[string]string{AttrRequestID: ev.RequestID, AttrErrorCode: code, AttrErrorMessage: truncateUTF8(message, maxErrorMessage)}
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
