// Package async runs Lambda's asynchronous invocations: a durable event
// queue (the JetStream streams EMBER_ASYNC_INBOX, groups of events accepted
// together, and EMBER_ASYNC, events stored alone; work-queue retention),
// pollers that invoke queued events through the Front End (groups.go runs
// the groups; limiter.go says how many at once), Lambda's retries, maximum
// event age and destinations, the event-invoke-config API, and Ember queues
// (queues.go): durable named queues that are destinations and dead-letter
// queues, read through Ember's own API and `ember queue read`.
//
// An event is acked (a group once all its events are) only once its
// outcome is recorded: success (or its
// OnSuccess destination event or queue message stored), a retry stored as a
// new message, or its OnFailure destination event or queue message stored,
// or its dead-letter message stored, or a drop by policy. A crash at any
// moment leads to redelivery, never to loss; duplicates are possible
// (at-least-once, as in Lambda).
package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// Names that are part of the on-disk format: do not rename.
const (
	StreamName    = "EMBER_ASYNC"
	subjectPrefix = "async.events."
	consumerName  = "ember-async-pollers"
	bucketConfig  = "ember-event-invoke-config"
)

// Limits and defaults of Lambda's asynchronous invocation.
const (
	MaxPayload          = 1024 * 1024 // an Event invoke's payload
	DefaultRetries      = 2
	DefaultMaxEventAge  = 21600 // seconds
	minEventAge         = 60
	maxRecordPayload    = 6 * 1024 * 1024 // larger payloads are left out of a destination record
	ackWait             = 60 * time.Second
	duplicateWindow     = 10 * time.Minute
	maxMsgSize          = 8 * 1024 * 1024 // the embedded server's max payload
	defaultConcurrency  = 64
	throttleBackoffMin  = time.Second
	throttleBackoffMax  = 5 * time.Minute
	functionErrorRetry1 = time.Minute // then 2 minutes
)

// Invoker runs one event like a synchronous invoke (the Front End): it
// returns the result and the version that ran. Errors are throttles
// (TooManyRequestsException), a function that is gone
// (ResourceNotFoundException) or platform errors.
type Invoker interface {
	// traceID is the caller's X-Amzn-Trace-Id, or "" for a new one.
	InvokeAsync(ctx context.Context, account, name, qualifier string, payload []byte, requestID, traceID string) (*invoke.Result, string, error)
}

// Config configures the queue.
type Config struct {
	// Replicas of the stream and bucket (default 1; 3 in a NATS cluster).
	Replicas int
	// Concurrency bounds the events invoked at once by this node's pollers
	// (default 64); below it the pollers adapt how many they run at once
	// to how the invocations' durations grow with it (limiter.go).
	Concurrency int
	// TimeScale multiplies every delay of the retry policy and the maximum
	// event age (default 1; tests use a small factor). See TimeScaleFromEnv.
	TimeScale float64
	Region    string // default us-east-1
	// Functions, if set, is where the pollers find a function version's
	// dead-letter queue (DeadLetterConfig); without it there is none.
	Functions Functions
	Logger    *slog.Logger
	Now       func() time.Time
}

// TimeScaleFromEnv reads EMBER_ASYNC_TIME_SCALE (a testing knob): 0 if
// unset or invalid.
func TimeScaleFromEnv() float64 {
	f, err := strconv.ParseFloat(os.Getenv("EMBER_ASYNC_TIME_SCALE"), 64)
	if err != nil || f <= 0 {
		return 0
	}
	return f
}

// Stats counts what the pollers did since the start of this process.
type Stats struct {
	Accepted, Invocations, Succeeded, FunctionErrors, Retries, Throttled uint64
	// ToDestination: outcome records stored for a destination function;
	// ToQueue: outcome records stored in a destination queue;
	// DeadLettered: failed events stored in their dead-letter queue.
	ToDestination, ToQueue, DeadLettered uint64
	// Dropped: expired or exhausted events without OnFailure (or dead-letter
	// queue), and records whose destination queue is gone; Gone: events of
	// functions deleted meanwhile; Malformed: undecodable messages.
	Dropped, Gone, Malformed uint64
	// DestinationFailures: records (and dead-letter messages) dropped
	// because their queue no longer exists (also counted in Dropped), as
	// Lambda's DestinationDeliveryFailures.
	DestinationFailures uint64
}

// Queue is the asynchronous event queue and its pollers.
type Queue struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	kv     jetstream.KeyValue
	queues jetstream.KeyValue // the registry of Ember queues (queues.go)
	inbox  jetstream.Stream   // groups of accepted events (accept.go)
	limit  *limiter           // events invoked at once (limiter.go)
	// configs keeps the event invoke configs the pollers read
	// (configcache.go).
	configs configCache

	acceptor acceptor
	// backingOff holds, by request id, why an event backing off did not
	// run (*lambdaapi.Error), until its next delivery here (handle).
	backingOff sync.Map

	accepted, invocations, succeeded, functionErrors, retries, throttled atomic.Uint64
	toDestination, dropped, gone, malformed                              atomic.Uint64
	toQueue, deadLettered, destinationFailures                           atomic.Uint64
}

// event is one queued asynchronous invocation. A retry after a function
// error is a new message with Attempts incremented and NotBefore set.
type event struct {
	RequestID string          `json:"id"`
	Account   string          `json:"account"`
	Function  string          `json:"function"`
	Qualifier string          `json:"qualifier,omitempty"`
	Payload   json.RawMessage `json:"payload"`
	Accepted  time.Time       `json:"accepted"`
	// Attempts is how many times the function ran (and failed) so far.
	Attempts  int       `json:"attempts,omitempty"`
	NotBefore time.Time `json:"notBefore,omitzero"`
	// Last is the response of the last attempt (for the record).
	Last *response `json:"last,omitempty"`
	// Deferrals counts how often an event of a group was put off
	// (groups.go): its deliveries so far, less one.
	Deferrals int `json:"deferrals,omitempty"`
	// Trace is the caller's X-Amzn-Trace-Id, given to the runtime on
	// every attempt (and to a destination function's event); empty, the
	// invoker makes one for each attempt.
	Trace string `json:"trace,omitempty"`
}

type response struct {
	ExecutedVersion string          `json:"executedVersion"`
	FunctionError   string          `json:"functionError,omitempty"`
	Payload         json.RawMessage `json:"payload,omitempty"`
}

// Open creates or updates the stream, the configuration bucket and the
// pollers' consumer.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Queue, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = defaultConcurrency
	}
	if cfg.TimeScale <= 0 {
		cfg.TimeScale = 1
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("async: %w", err)
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Ember asynchronous invocations: async.events.ACCOUNT.FUNCTION",
		Subjects:    []string{subjectPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxMsgSize:  maxMsgSize,
		Duplicates:  duplicateWindow,
	})
	if err != nil {
		return nil, fmt.Errorf("async: stream %s: %w", StreamName, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucketConfig,
		Description: "Ember event invoke configs by account.function.qualifier",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("async: bucket %s: %w", bucketConfig, err)
	}
	queues, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      queueBucket,
		Description: "Ember queues by account.name: the stream that holds each",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("async: bucket %s: %w", queueBucket, err)
	}
	inbox, err := openInbox(ctx, js, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	q := &Queue{cfg: cfg, log: cfg.Logger.With("component", "async"), nc: nc, js: js, stream: st, kv: kv, queues: queues, inbox: inbox,
		limit: newLimiter(cfg.Concurrency, time.Now)}
	q.removeOrphanQueueStreams(ctx)
	return q, nil
}

// Stats returns the counters.
func (q *Queue) Stats() Stats {
	return Stats{
		Accepted: q.accepted.Load(), Invocations: q.invocations.Load(), Succeeded: q.succeeded.Load(),
		FunctionErrors: q.functionErrors.Load(), Retries: q.retries.Load(), Throttled: q.throttled.Load(),
		ToDestination: q.toDestination.Load(), ToQueue: q.toQueue.Load(), DeadLettered: q.deadLettered.Load(),
		Dropped: q.dropped.Load(), Gone: q.gone.Load(), Malformed: q.malformed.Load(),
		DestinationFailures: q.destinationFailures.Load(),
	}
}

// Depth is the number of events queued or in flight, and when the oldest
// stored one was stored. The events of a group of accepted events
// (accept.go) are counted from its subject, async.inbox.N (a group stored
// before that counts as one).
func (q *Queue) Depth(ctx context.Context) (n uint64, oldest time.Time, err error) {
	info, err := q.stream.Info(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	in, err := q.inbox.Info(ctx, jetstream.WithSubjectFilter(inboxSubject+".>"))
	if err != nil {
		return 0, time.Time{}, err
	}
	var grouped, groups uint64
	for subj, msgs := range in.State.Subjects {
		size, err := strconv.ParseUint(strings.TrimPrefix(subj, inboxSubject+"."), 10, 32)
		if err != nil {
			continue
		}
		grouped += size * msgs
		groups += msgs
	}
	oldest = info.State.FirstTime
	if in.State.Msgs > 0 && (info.State.Msgs == 0 || in.State.FirstTime.Before(oldest)) {
		oldest = in.State.FirstTime
	}
	// Messages not counted by subject (groups of before) count as one.
	return info.State.Msgs + grouped + (in.State.Msgs - min(groups, in.State.Msgs)), oldest, nil
}

// Enqueue stores an event; it returns only once the server acknowledged
// it (alone, or with others accepted at the same time: accept.go). The
// request id deduplicates a retried publish. traceID is the caller's
// X-Amzn-Trace-Id ("" if none), kept for the runtime.
func (q *Queue) Enqueue(ctx context.Context, account, name, qualifier string, payload []byte, requestID, traceID string) error {
	if len(payload) > MaxPayload {
		return lambdaapi.Errorf(lambdaapi.RequestTooLarge, "Request must be smaller than %d bytes for the Event invocation type", MaxPayload)
	}
	ev := &event{RequestID: requestID, Account: account, Function: name, Qualifier: qualifier,
		Payload: payload, Accepted: q.cfg.Now().UTC(), Trace: traceID}
	if !validToken(ev.Account) || !lambdaapi.ValidName(ev.Function) {
		return fmt.Errorf("async: bad account or function %q %q", ev.Account, ev.Function)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := q.store(ctx, ev, b); err != nil {
		return err
	}
	q.accepted.Add(1)
	return nil
}

func (q *Queue) publish(ctx context.Context, ev *event, msgID string) error {
	if !validToken(ev.Account) || !lambdaapi.ValidName(ev.Function) {
		return fmt.Errorf("async: bad account or function %q %q", ev.Account, ev.Function)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return q.publishData(ctx, ev, b, msgID)
}

// publishData stores an event already encoded as b.
func (q *Queue) publishData(ctx context.Context, ev *event, b []byte, msgID string) error {
	msg := nats.NewMsg(subjectPrefix + ev.Account + "." + ev.Function)
	msg.Data = b
	if err := q.publishRetry(ctx, msg, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("async: storing event %s: %w", ev.RequestID, err)
	}
	return nil
}

// publishRetry stores msg, whose options name a message id. A publish
// that timed out may have been stored: publishing again with the same
// message id is deduplicated by the server, so it is tried again (up to
// publishTries) before the caller gives up (which, for a retry or an
// outcome, would run the function again).
func (q *Queue) publishRetry(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) error {
	for try := 1; ; try++ {
		_, err := q.js.PublishMsg(ctx, msg, opts...)
		if err == nil {
			return nil
		}
		if try == publishTries || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		q.log.Warn("storing a message timed out; trying again", "subject", msg.Subject, "try", try)
	}
}

// publishTries bounds the stores of one message that time out (each
// waits for the JetStream API timeout, 5 s).
const publishTries = 3

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Run polls events and invokes them through inv until ctx ends; then it
// waits for the invocations in flight (an event whose invocation was
// interrupted is redelivered later).
func (q *Queue) Run(ctx context.Context, inv Invoker) error {
	cons, err := q.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       consumerName,
		Description:   "Ember's asynchronous invocation pollers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.ackWait(),
		MaxDeliver:    -1,
		MaxAckPending: 100000,
		FilterSubject: subjectPrefix + ">",
	})
	if err != nil {
		return fmt.Errorf("async: consumer: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	groups, err := q.groupRunner(ctx)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		q.runGroups(ctx, inv, groups)
	}()
	for ctx.Err() == nil {
		// Fetch as many events as there are free places (at least one,
		// waiting up to a second for it), then run each in a place,
		// waiting for one: the pollers hold no goroutine for an empty
		// queue but this loop.
		batch, err := cons.Fetch(max(1, q.limit.free()), jetstream.FetchMaxWait(time.Second))
		if err == nil {
			for msg := range batch.Messages() {
				stop := keepInProgress(msg, q.ackWait()/3)
				if !q.limit.acquire(ctx) {
					stop()
					_ = msg.Nak() // shutting down: the next start runs it
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer q.limit.release()
					defer stop()
					q.handle(ctx, inv, msg)
				}()
			}
			err = batch.Error()
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			q.log.Warn("fetching events", "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
	}
	return nil
}

// ackWait is how long a delivery stays ours without an ack or a sign of
// progress: after a crash, the events in flight are redelivered that much
// later. Scaled for tests (TimeScale below 1), but never below 10 s.
func (q *Queue) ackWait() time.Duration {
	return max(min(q.scaled(ackWait), ackWait), 10*time.Second)
}

// scaled applies the time scale.
func (q *Queue) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * q.cfg.TimeScale)
}

// handle runs one delivery of an event and records its outcome.
func (q *Queue) handle(ctx context.Context, inv Invoker, msg delivery) {
	var ev event
	if m, ok := msg.(*member); ok {
		ev = m.ev
	} else if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		q.malformed.Add(1)
		q.log.Error("dropping a malformed event", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	log := q.log.With("function", ev.Account+"."+ev.Function, "request_id", ev.RequestID)
	retryLater := func(d time.Duration) { _ = msg.NakWithDelay(d) }
	// Why the last delivery of this event on this node did not run (a
	// throttle or platform error), if it did not: the cause should it
	// expire now.
	var lastCause *lambdaapi.Error
	if c, ok := q.backingOff.LoadAndDelete(ev.RequestID); ok {
		lastCause = c.(*lambdaapi.Error)
	}
	cfg, err := q.effectiveConfig(ctx, ev.Account, ev.Function, ev.Qualifier)
	if err != nil {
		log.Warn("reading the event invoke config", "err", err)
		retryLater(time.Second)
		return
	}
	now := q.cfg.Now()
	if !ev.NotBefore.IsZero() && now.Before(ev.NotBefore) {
		retryLater(ev.NotBefore.Sub(now))
		return
	}
	maxAge := q.scaled(time.Duration(cfg.maxAge) * time.Second)
	if now.Sub(ev.Accepted) > maxAge {
		q.finish(ctx, msg, &ev, cfg, conditionEventAgeExceeded, lastCause, log)
		return
	}

	q.invocations.Add(1)
	began := time.Now()
	res, version, err := inv.InvokeAsync(ctx, ev.Account, ev.Function, ev.Qualifier, ev.Payload, ev.RequestID, ev.Trace)
	if err == nil {
		q.limit.observe(ev.Account+"/"+ev.Function, time.Since(began))
	}
	if err != nil {
		if ctx.Err() != nil {
			_ = msg.Nak() // shutting down: the next start runs it
			return
		}
		le := lambdaapi.AsError(err)
		if le.Type == lambdaapi.ResourceNotFound {
			q.gone.Add(1)
			log.Warn("dropping an event of a function that is gone")
			_ = msg.Ack()
			return
		}
		if le.Type == lambdaapi.TooManyRequests {
			q.throttled.Add(1)
		} else {
			log.Warn("platform error invoking an event; backing off", "err", err)
		}
		// Exponential backoff from 1 s to 5 min, by deliveries of this
		// message, until the maximum age: a backoff that would pass it is
		// cut short so that the last attempt comes just before it (half
		// the shortest backoff before). When no such attempt is left, the
		// event expires at its maximum age, not before: the poller holds
		// it that last short while (at most half the shortest backoff).
		n := uint64(1)
		if md, err := msg.Metadata(); err == nil && md.NumDelivered > 0 {
			n = md.NumDelivered
		}
		d := throttleBackoffMin << min(n-1, 16)
		d = q.scaled(min(d, throttleBackoffMax))
		remaining := ev.Accepted.Add(maxAge).Sub(q.cfg.Now())
		if d >= remaining {
			d = remaining - q.scaled(throttleBackoffMin)/2
		}
		if d <= 0 {
			if remaining > 0 {
				t := time.NewTimer(remaining)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					_ = msg.Nak() // shutting down: the next start decides
					return
				}
			}
			q.finish(ctx, msg, &ev, cfg, conditionEventAgeExceeded, le, log)
			return
		}
		q.backingOff.Store(ev.RequestID, le)
		retryLater(d)
		return
	}
	ev.Attempts++
	ev.Last = &response{ExecutedVersion: version, FunctionError: res.FunctionError, Payload: asJSON(res.Payload)}
	if res.FunctionError == "" {
		q.succeeded.Add(1)
		q.finish(ctx, msg, &ev, cfg, conditionSuccess, nil, log)
		return
	}
	q.functionErrors.Add(1)
	if ev.Attempts > cfg.retries {
		q.finish(ctx, msg, &ev, cfg, conditionRetriesExhausted, nil, log)
		return
	}
	// Retry after about 1 min, then 2 min: a new message (so the attempt
	// count is durable), acked before the old one is.
	ev.NotBefore = q.cfg.Now().Add(q.scaled(functionErrorRetry1 * time.Duration(ev.Attempts))).UTC()
	if len(ev.Last.Payload) > MaxPayload {
		ev.Last.Payload = nil
	}
	if err := q.publish(ctx, &ev, ev.RequestID+"/attempt-"+strconv.Itoa(ev.Attempts+1)); err != nil {
		log.Warn("storing a retry", "err", err)
		retryLater(time.Second)
		return
	}
	q.retries.Add(1)
	log.Info("event failed; retry scheduled", "attempts", ev.Attempts, "at", ev.NotBefore)
	_ = msg.Ack()
}

// asJSON keeps a payload that is JSON; anything else becomes a JSON string.
func asJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// Conditions of an invocation record.
const (
	conditionSuccess          = "Success"
	conditionRetriesExhausted = "RetriesExhausted"
	conditionEventAgeExceeded = "EventAgeExceeded"
)

// record is Lambda's invocation record, sent to destinations.
type record struct {
	Version         string           `json:"version"`
	Timestamp       string           `json:"timestamp"`
	RequestContext  requestContext   `json:"requestContext"`
	RequestPayload  json.RawMessage  `json:"requestPayload"`
	ResponseContext *responseContext `json:"responseContext,omitempty"`
	ResponsePayload json.RawMessage  `json:"responsePayload,omitempty"`
}

type requestContext struct {
	RequestID              string `json:"requestId"`
	FunctionARN            string `json:"functionArn"`
	Condition              string `json:"condition"`
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

type responseContext struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError,omitempty"`
}

// finish records an event's outcome (a destination event or queue
// message, a dead-letter message, or a drop by policy) and then acks it.
// cause is the error of the last attempt that did not reach the function
// (a throttle or platform error), if that is why the event expired.
func (q *Queue) finish(ctx context.Context, msg delivery, ev *event, cfg effective, condition string, cause *lambdaapi.Error, log *slog.Logger) {
	dest := cfg.onFailure
	if condition == conditionSuccess {
		dest = cfg.onSuccess
	}
	if dest == nil {
		if condition != conditionSuccess {
			if q.deadLetter(ctx, msg, ev, cause, log) {
				return
			}
			q.dropped.Add(1)
			log.Warn("dropping an event", "condition", condition, "attempts", ev.Attempts)
		}
		_ = msg.Ack()
		return
	}
	qualifier := ev.Qualifier
	if qualifier == "" {
		qualifier = lambdaapi.VersionLatest
	}
	rec := record{
		Version:   "1.0",
		Timestamp: q.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		RequestContext: requestContext{
			RequestID:              ev.RequestID,
			FunctionARN:            lambdaapi.QualifiedARN(q.cfg.Region, ev.Account, ev.Function, qualifier),
			Condition:              condition,
			ApproximateInvokeCount: ev.Attempts,
		},
		RequestPayload: ev.Payload,
	}
	if ev.Last != nil {
		rec.ResponseContext = &responseContext{StatusCode: 200, ExecutedVersion: ev.Last.ExecutedVersion, FunctionError: ev.Last.FunctionError}
		rec.ResponsePayload = ev.Last.Payload
	}
	b, err := json.Marshal(rec)
	if err == nil && len(b) > maxRecordPayload {
		// Too large for a destination: the payloads are left out.
		rec.RequestPayload, rec.ResponsePayload = json.RawMessage("null"), nil
		b, err = json.Marshal(rec)
	}
	if err != nil {
		log.Error("encoding an invocation record", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if dest.Queue {
		q.toQueueDestination(ctx, msg, ev, dest, b, condition, log)
		return
	}
	// The destination event's id is derived from the source's: a retried
	// hand-over is stored once.
	d := &event{RequestID: lambdaapi.NewRequestID(), Account: dest.Account, Function: dest.Name, Qualifier: dest.Qualifier,
		Payload: b, Accepted: q.cfg.Now().UTC(), Trace: ev.Trace}
	if err := q.publish(ctx, d, ev.RequestID+"/destination"); err != nil {
		log.Warn("storing a destination event", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	q.toDestination.Add(1)
	log.Info("event outcome sent to its destination", "condition", condition, "destination", dest.ARN)
	_ = msg.Ack()
}

// effective is the configuration that applies to one event.
type effective struct {
	retries, maxAge      int
	onSuccess, onFailure *destination
}

// destination is a function (Name, Qualifier) or, with Queue set, an
// Ember queue (Name) of Account.
type destination struct {
	ARN                      string
	Account, Name, Qualifier string
	Queue                    bool
}

// effectiveConfig reads the event invoke config of a function and
// qualifier, with Lambda's defaults.
func (q *Queue) effectiveConfig(ctx context.Context, account, name, qualifier string) (effective, error) {
	e := effective{retries: DefaultRetries, maxAge: DefaultMaxEventAge}
	c, err := q.config(ctx, account, name, qualifier)
	if errors.Is(err, store.ErrNotFound) {
		return e, nil
	}
	if err != nil {
		return e, err
	}
	if c.MaximumRetryAttempts != nil {
		e.retries = *c.MaximumRetryAttempts
	}
	if c.MaximumEventAgeInSeconds != nil {
		e.maxAge = *c.MaximumEventAgeInSeconds
	}
	if c.DestinationConfig != nil {
		e.onSuccess = parseDestination(c.DestinationConfig.OnSuccess)
		e.onFailure = parseDestination(c.DestinationConfig.OnFailure)
	}
	return e, nil
}

func parseDestination(d *Destination) *destination {
	if d == nil || d.Destination == nil || *d.Destination == "" {
		return nil
	}
	if _, account, name, ok := ParseQueueARN(*d.Destination); ok {
		return &destination{ARN: *d.Destination, Account: account, Name: name, Queue: true}
	}
	ref, err := lambdaapi.ParseFunctionRef(*d.Destination)
	if err != nil {
		return nil
	}
	return &destination{ARN: *d.Destination, Account: ref.Account, Name: ref.Name, Qualifier: ref.Qualifier}
}
