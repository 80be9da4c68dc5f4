package async

// Ember's queue API (SigV4, service "ember", like the account API); every
// call acts on the caller's account's queues only. {queue} is a queue's
// name or ARN. Errors are Lambda's error shape.
//
//	POST   /ember/v1/queues                         create: {"QueueName", "MessageRetentionPeriod"?, "VisibilityTimeout"?} -> 201 (200: it exists, same attributes)
//	GET    /ember/v1/queues                         list -> {"Queues": [...]}
//	GET    /ember/v1/queues/{queue}                 describe
//	DELETE /ember/v1/queues/{queue}[?Force=true]     delete (409 while a config names it, unless forced) -> 204
//	POST   /ember/v1/queues/{queue}/receive         {"MaxNumberOfMessages": 1-100 (10), "WaitTimeSeconds": 0-20 (0)} -> {"Messages": [...]}
//	POST   /ember/v1/queues/{queue}/delete-messages {"ReceiptHandles": [...]} -> {"Deleted": n, "Failed": [...]}
//	GET    /ember/v1/queues/{queue}/messages[?MaxNumberOfMessages=10&After=SEQ]  peek: list without receiving

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

const queuesPath = "/ember/v1/queues"

// queuePatterns are the ServeMux patterns of the queue API (part of
// Patterns).
var queuePatterns = []string{
	"POST " + queuesPath, "GET " + queuesPath,
	"GET " + queuesPath + "/{queue}", "DELETE " + queuesPath + "/{queue}",
	"POST " + queuesPath + "/{queue}/receive", "POST " + queuesPath + "/{queue}/delete-messages",
	"GET " + queuesPath + "/{queue}/messages",
}

func (a *API) routeQueues() {
	a.routeService("POST "+queuesPath, "ember", a.createQueue)
	a.routeService("GET "+queuesPath, "ember", a.listQueues)
	a.routeService("GET "+queuesPath+"/{queue}", "ember", a.getQueue)
	a.routeService("DELETE "+queuesPath+"/{queue}", "ember", a.deleteQueue)
	a.routeService("POST "+queuesPath+"/{queue}/receive", "ember", a.receive)
	a.routeService("POST "+queuesPath+"/{queue}/delete-messages", "ember", a.deleteMessages)
	a.routeService("GET "+queuesPath+"/{queue}/messages", "ember", a.peek)
}

// queueOutput describes a queue.
type queueOutput struct {
	QueueName              string `json:"QueueName"`
	QueueArn               string `json:"QueueArn"`
	CreatedTimestamp       int64  `json:"CreatedTimestamp"` // seconds since the epoch
	MessageRetentionPeriod int    `json:"MessageRetentionPeriod"`
	VisibilityTimeout      int    `json:"VisibilityTimeout"`
	// Counts, as SQS's approximate ones: visible messages, and messages
	// received but not deleted yet.
	ApproximateNumberOfMessages           uint64 `json:"ApproximateNumberOfMessages"`
	ApproximateNumberOfMessagesNotVisible uint64 `json:"ApproximateNumberOfMessagesNotVisible"`
}

func (a *API) queueOutput(ctx context.Context, m queueMeta) (queueOutput, error) {
	out := queueOutput{QueueName: m.Name, QueueArn: QueueARN(a.cfg.Region, m.Account, m.Name),
		CreatedTimestamp: m.Created.Unix(), MessageRetentionPeriod: m.Retention, VisibilityTimeout: m.Visibility}
	visible, inFlight, err := a.cfg.Queue.queueCounts(ctx, m)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return out, err
	}
	out.ApproximateNumberOfMessages, out.ApproximateNumberOfMessagesNotVisible = visible, inFlight
	return out, nil
}

// decodeBody parses an optional JSON body into v.
func decodeBody(r *request, v any) error {
	if len(r.body) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		return lambdaapi.Errorf(lambdaapi.InvalidRequestContent, "Could not parse request body into json: %v", err)
	}
	return nil
}

func (a *API) createQueue(w http.ResponseWriter, r *request) error {
	var in struct {
		QueueName              string `json:"QueueName"`
		MessageRetentionPeriod *int   `json:"MessageRetentionPeriod"`
		VisibilityTimeout      *int   `json:"VisibilityTimeout"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if !ValidQueueName(in.QueueName) {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"QueueName %q is invalid: 1-80 letters, digits, '-' or '_' (FIFO queues are not supported)", in.QueueName)
	}
	retention, visibility := 0, 0
	if p := in.MessageRetentionPeriod; p != nil {
		if *p < MinQueueRetention || *p > MaxQueueRetention {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"MessageRetentionPeriod %d is invalid: it must be between %d and %d seconds", *p, MinQueueRetention, MaxQueueRetention)
		}
		retention = *p
	}
	if p := in.VisibilityTimeout; p != nil {
		if *p < 1 || *p > MaxVisibilityTimeout {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"VisibilityTimeout %d is invalid: it must be between 1 and %d seconds", *p, MaxVisibilityTimeout)
		}
		visibility = *p
	}
	ctx := r.Context()
	m, created, err := a.cfg.Queue.createQueue(ctx, r.principal.AccountID, in.QueueName, retention, visibility)
	if errors.Is(err, errQueueConflict) {
		return lambdaapi.Errorf(lambdaapi.ResourceConflict,
			"Queue %s already exists with other attributes (MessageRetentionPeriod %d, VisibilityTimeout %d)", in.QueueName, m.Retention, m.Visibility)
	}
	if err != nil {
		return err
	}
	out, err := a.queueOutput(ctx, m)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return writeJSON(w, status, out)
}

func (a *API) listQueues(w http.ResponseWriter, r *request) error {
	ctx := r.Context()
	ms, err := a.cfg.Queue.listQueues(ctx, r.principal.AccountID)
	if err != nil {
		return err
	}
	out := struct {
		Queues []queueOutput `json:"Queues"`
	}{Queues: []queueOutput{}}
	for _, m := range ms {
		o, err := a.queueOutput(ctx, m)
		if err != nil {
			return err
		}
		out.Queues = append(out.Queues, o)
	}
	return writeJSON(w, http.StatusOK, out)
}

// queue resolves {queue} (a name or an ARN) to a queue of the caller's
// account.
func (a *API) queue(r *request) (queueMeta, error) {
	account := r.principal.AccountID
	name := r.PathValue("queue")
	if strings.HasPrefix(name, "arn:") {
		region, owner, n, ok := ParseQueueARN(name)
		if !ok {
			return queueMeta{}, lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "The queue ARN %s is invalid", name)
		}
		if owner != account || region != a.cfg.Region {
			return queueMeta{}, lambdaapi.Errorf(lambdaapi.ResourceNotFound, "Queue not found: %s", name)
		}
		name = n
	} else if !ValidQueueName(name) {
		return queueMeta{}, lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"Queue name %q is invalid: 1-80 letters, digits, '-' or '_'", name)
	}
	m, err := a.cfg.Queue.lookupQueue(r.Context(), account, name)
	if errors.Is(err, store.ErrNotFound) {
		return m, lambdaapi.Errorf(lambdaapi.ResourceNotFound, "Queue not found: %s", QueueARN(a.cfg.Region, account, name))
	}
	return m, err
}

func (a *API) getQueue(w http.ResponseWriter, r *request) error {
	m, err := a.queue(r)
	if err != nil {
		return err
	}
	out, err := a.queueOutput(r.Context(), m)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) deleteQueue(w http.ResponseWriter, r *request) error {
	m, err := a.queue(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	force, _ := strconv.ParseBool(r.URL.Query().Get("Force"))
	if !force {
		users, err := a.queueUsers(ctx, m)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return lambdaapi.Errorf(lambdaapi.ResourceConflict,
				"Queue %s is in use by %s; change those first, or delete it anyway with Force=true (`ember queue rm --force`): records for it are then dropped",
				m.Name, strings.Join(users, ", "))
		}
	}
	if err := a.cfg.Queue.deleteQueue(ctx, m.Account, m.Name); errors.Is(err, store.ErrNotFound) {
		return lambdaapi.Errorf(lambdaapi.ResourceNotFound, "Queue not found: %s", QueueARN(a.cfg.Region, m.Account, m.Name))
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// functionLister lists functions and versions (the store), to find the
// dead-letter configs that name a queue.
type functionLister interface {
	ListFunctions(ctx context.Context, account, after string, max int) ([]store.Function, bool, error)
	ListVersions(ctx context.Context, account, name string) ([]store.Function, error)
}

// queueUsers names the event invoke configs and dead-letter configs of
// the queue's account that name it (at most a few).
func (a *API) queueUsers(ctx context.Context, m queueMeta) ([]string, error) {
	const most = 5
	arn := QueueARN(a.cfg.Region, m.Account, m.Name)
	var users []string
	q := a.cfg.Queue
	l, err := q.kv.ListKeysFiltered(ctx, m.Account+".*.*")
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	_ = l.Stop()
	for _, k := range keys {
		_, rest, _ := strings.Cut(k, ".")
		name, qualifier, _ := strings.Cut(rest, ".")
		c, err := q.getConfig(ctx, m.Account, name, qualifier)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if qualifier == "=LATEST" {
			qualifier = lambdaapi.VersionLatest
		}
		if d := c.DestinationConfig; d != nil {
			for _, x := range []struct {
				what string
				d    *Destination
			}{{"OnSuccess", d.OnSuccess}, {"OnFailure", d.OnFailure}} {
				if x.d != nil && x.d.Destination != nil && *x.d.Destination == arn {
					users = append(users, fmt.Sprintf("the %s destination of %s:%s", x.what, name, qualifier))
				}
			}
		}
	}
	fl, ok := a.cfg.Functions.(functionLister)
	if !ok {
		return users, nil
	}
	after := ""
	for len(users) < most {
		fns, more, err := fl.ListFunctions(ctx, m.Account, after, 50)
		if err != nil {
			return nil, err
		}
		for _, f := range fns {
			after = f.Name
			if f.DeadLetterTarget == arn {
				users = append(users, "the dead-letter config of "+f.Name+":$LATEST")
			}
			vs, err := fl.ListVersions(ctx, m.Account, f.Name)
			if err != nil {
				return nil, err
			}
			for _, v := range vs {
				if v.DeadLetterTarget == arn {
					users = append(users, "the dead-letter config of "+f.Name+":"+v.Version)
				}
			}
		}
		if !more {
			break
		}
	}
	if len(users) > most {
		users = append(users[:most], "more")
	}
	return users, nil
}

func (a *API) receive(w http.ResponseWriter, r *request) error {
	m, err := a.queue(r)
	if err != nil {
		return err
	}
	var in struct {
		MaxNumberOfMessages *int `json:"MaxNumberOfMessages"`
		WaitTimeSeconds     *int `json:"WaitTimeSeconds"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	n, wait := 10, 0
	if p := in.MaxNumberOfMessages; p != nil {
		if *p < 1 || *p > MaxReceive {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "MaxNumberOfMessages %d is invalid: it must be between 1 and %d", *p, MaxReceive)
		}
		n = *p
	}
	if p := in.WaitTimeSeconds; p != nil {
		if *p < 0 || *p > MaxReceiveWait {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "WaitTimeSeconds %d is invalid: it must be between 0 and %d", *p, MaxReceiveWait)
		}
		wait = *p
	}
	msgs, err := a.cfg.Queue.receive(r.Context(), m, n, time.Duration(wait)*time.Second)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Messages []Message `json:"Messages"`
	}{msgs})
}

func (a *API) deleteMessages(w http.ResponseWriter, r *request) error {
	m, err := a.queue(r)
	if err != nil {
		return err
	}
	var in struct {
		ReceiptHandles []string `json:"ReceiptHandles"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if len(in.ReceiptHandles) == 0 || len(in.ReceiptHandles) > MaxReceive {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "ReceiptHandles must hold 1 to %d receipt handles", MaxReceive)
	}
	failed := a.cfg.Queue.deleteMessages(r.Context(), m, in.ReceiptHandles)
	return writeJSON(w, http.StatusOK, struct {
		Deleted int      `json:"Deleted"`
		Failed  []string `json:"Failed"`
	}{len(in.ReceiptHandles) - len(failed), append([]string{}, failed...)})
}

func (a *API) peek(w http.ResponseWriter, r *request) error {
	m, err := a.queue(r)
	if err != nil {
		return err
	}
	query := r.URL.Query()
	n := 10
	if v := query.Get("MaxNumberOfMessages"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil || x < 1 || x > MaxReceive {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "MaxNumberOfMessages %q is invalid: it must be between 1 and %d", v, MaxReceive)
		}
		n = x
	}
	var after uint64
	if v := query.Get("After"); v != "" {
		x, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "After %q is invalid: a message sequence number", v)
		}
		after = x
	}
	msgs, err := a.cfg.Queue.peek(r.Context(), m, after, n)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Messages []Message `json:"Messages"`
	}{msgs})
}
