package logs

import (
	"cmp"
	"context"
	"sort"
	"strings"
	"time"
)

type logGroup struct {
	LogGroupName      string `json:"logGroupName"`
	CreationTime      int64  `json:"creationTime"`
	RetentionInDays   *int   `json:"retentionInDays,omitempty"`
	MetricFilterCount int    `json:"metricFilterCount"`
	Arn               string `json:"arn"`
	LogGroupArn       string `json:"logGroupArn"`
	StoredBytes       int64  `json:"storedBytes"`
	LogGroupClass     string `json:"logGroupClass"`
}

// sizeBudget bounds the bytes of batches one DescribeLogGroups reads to
// bring its groups' storedBytes up to date (Store.storedBytes).
const sizeBudget = 16 << 20

// describeLogGroups lists the caller's log groups by name.
func (a *API) describeLogGroups(ctx context.Context, account string, body []byte) (any, error) {
	var in struct {
		LogGroupNamePrefix  *string `json:"logGroupNamePrefix"`
		LogGroupNamePattern *string `json:"logGroupNamePattern"`
		NextToken           *string `json:"nextToken"`
		Limit               *int    `json:"limit"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.LogGroupNamePrefix != nil && in.LogGroupNamePattern != nil {
		return nil, errorf(InvalidParameter, "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.")
	}
	n, err := limit(in.Limit, maxDescribeLimit, maxDescribeLimit)
	if err != nil {
		return nil, err
	}
	tok, err := parsePageToken(in.NextToken)
	if err != nil {
		return nil, err
	}
	names, err := a.cfg.Store.groups(ctx, account)
	if err != nil {
		return nil, err
	}
	var retention *int
	if _, age := a.cfg.Store.Limits(); age%(24*time.Hour) == 0 {
		days := int(age / (24 * time.Hour))
		retention = &days
	}
	out := struct {
		LogGroups []logGroup `json:"logGroups"`
		NextToken string     `json:"nextToken,omitempty"`
	}{LogGroups: []logGroup{}}
	budget := sizeBudget
	for _, g := range names {
		switch {
		case tok != nil && g <= tok.Name:
			continue
		case in.LogGroupNamePrefix != nil && !strings.HasPrefix(g, *in.LogGroupNamePrefix):
			continue
		case in.LogGroupNamePattern != nil && !strings.Contains(strings.ToLower(g), strings.ToLower(*in.LogGroupNamePattern)):
			continue
		}
		if len(out.LogGroups) == n {
			out.NextToken = pageToken{Name: out.LogGroups[n-1].LogGroupName}.encode()
			break
		}
		created, err := a.cfg.Store.groupCreation(ctx, account, g)
		if err != nil {
			return nil, err
		}
		stored, err := a.cfg.Store.storedBytes(ctx, account, g, &budget)
		if err != nil {
			return nil, err
		}
		arn := a.groupARN(account, g)
		out.LogGroups = append(out.LogGroups, logGroup{
			LogGroupName: g, CreationTime: created, RetentionInDays: retention,
			Arn: arn + ":*", LogGroupArn: arn, LogGroupClass: "STANDARD", StoredBytes: stored,
		})
	}
	return out, nil
}

type logStream struct {
	LogStreamName       string `json:"logStreamName"`
	CreationTime        int64  `json:"creationTime"`
	FirstEventTimestamp int64  `json:"firstEventTimestamp,omitempty"`
	LastEventTimestamp  int64  `json:"lastEventTimestamp,omitempty"`
	LastIngestionTime   int64  `json:"lastIngestionTime,omitempty"`
	Arn                 string `json:"arn"`
	StoredBytes         int64  `json:"storedBytes"`
}

// describeLogStreams lists a group's streams by name or by last event.
func (a *API) describeLogStreams(ctx context.Context, account string, body []byte) (any, error) {
	var in struct {
		LogGroupName        *string `json:"logGroupName"`
		LogGroupIdentifier  *string `json:"logGroupIdentifier"`
		LogStreamNamePrefix *string `json:"logStreamNamePrefix"`
		OrderBy             *string `json:"orderBy"`
		Descending          bool    `json:"descending"`
		NextToken           *string `json:"nextToken"`
		Limit               *int    `json:"limit"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	group, err := a.groupName(account, in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	byTime := false
	if in.OrderBy != nil {
		switch *in.OrderBy {
		case "LogStreamName":
		case "LastEventTime":
			byTime = true
		default:
			return nil, errorf(InvalidParameter,
				"1 validation error detected: Value '%s' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]", *in.OrderBy)
		}
	}
	if byTime && in.LogStreamNamePrefix != nil {
		return nil, errorf(InvalidParameter, "Cannot order by LastEventTime with a logStreamNamePrefix.")
	}
	n, err := limit(in.Limit, maxDescribeLimit, maxDescribeLimit)
	if err != nil {
		return nil, err
	}
	tok, err := parsePageToken(in.NextToken)
	if err != nil {
		return nil, err
	}
	names, err := a.cfg.Store.streams(ctx, account, group)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, groupNotFound()
	}
	if in.LogStreamNamePrefix != nil {
		kept := names[:0]
		for _, s := range names {
			if strings.HasPrefix(s, *in.LogStreamNamePrefix) {
				kept = append(kept, s)
			}
		}
		names = kept
	}
	// after says whether a stream comes after the token in the order asked.
	after := func(name string, last int64) bool {
		if tok == nil {
			return true
		}
		c := strings.Compare(name, tok.Name)
		if byTime && last != tok.Time {
			c = cmp.Compare(last, tok.Time)
		}
		if in.Descending {
			return c < 0
		}
		return c > 0
	}
	describe := func(name string) (logStream, bool, error) {
		si, ok, err := a.cfg.Store.describeStream(ctx, account, group, name)
		if err != nil || !ok {
			return logStream{}, false, err
		}
		return logStream{
			LogStreamName: name, CreationTime: si.creation, FirstEventTimestamp: si.first,
			LastEventTimestamp: si.last, LastIngestionTime: si.lastIngestion,
			Arn: a.groupARN(account, group) + ":log-stream:" + name,
		}, true, nil
	}
	var all []logStream
	if byTime {
		// Every stream's last event is needed to order them.
		for _, s := range names {
			ls, ok, err := describe(s)
			if err != nil {
				return nil, err
			}
			if ok {
				all = append(all, ls)
			}
		}
		sort.Slice(all, func(i, j int) bool {
			if all[i].LastEventTimestamp != all[j].LastEventTimestamp {
				return all[i].LastEventTimestamp < all[j].LastEventTimestamp
			}
			return all[i].LogStreamName < all[j].LogStreamName
		})
	} else {
		for _, s := range names {
			all = append(all, logStream{LogStreamName: s})
		}
	}
	if in.Descending {
		for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
			all[i], all[j] = all[j], all[i]
		}
	}
	out := struct {
		LogStreams []logStream `json:"logStreams"`
		NextToken  string      `json:"nextToken,omitempty"`
	}{LogStreams: []logStream{}}
	for _, ls := range all {
		if !after(ls.LogStreamName, ls.LastEventTimestamp) {
			continue
		}
		if len(out.LogStreams) == n {
			last := out.LogStreams[n-1]
			out.NextToken = pageToken{Name: last.LogStreamName, Time: last.LastEventTimestamp}.encode()
			break
		}
		if !byTime {
			var ok bool
			var err error
			if ls, ok, err = describe(ls.LogStreamName); err != nil {
				return nil, err
			} else if !ok {
				continue // trimmed away since it was listed
			}
		}
		out.LogStreams = append(out.LogStreams, ls)
	}
	return out, nil
}

type outputEvent struct {
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
}

// getLogEvents reads one log stream forwards or backwards.
func (a *API) getLogEvents(ctx context.Context, account string, body []byte) (any, error) {
	var in struct {
		LogGroupName       *string `json:"logGroupName"`
		LogGroupIdentifier *string `json:"logGroupIdentifier"`
		LogStreamName      *string `json:"logStreamName"`
		StartTime          *int64  `json:"startTime"`
		EndTime            *int64  `json:"endTime"`
		NextToken          *string `json:"nextToken"`
		Limit              *int    `json:"limit"`
		StartFromHead      bool    `json:"startFromHead"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	group, err := a.groupName(account, in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	if in.LogStreamName == nil || !validName(*in.LogStreamName) {
		return nil, errorf(InvalidParameter, "1 validation error detected: Value at 'logStreamName' failed to satisfy constraint: Member must have length between 1 and 512")
	}
	n, err := limit(in.Limit, maxEventsLimit, maxEventsLimit)
	if err != nil {
		return nil, err
	}
	var w window
	if in.StartTime != nil {
		w.start = *in.StartTime
	}
	if in.EndTime != nil {
		w.end = *in.EndTime - 1 // GetLogEvents' endTime is exclusive
	}
	forward := in.StartFromHead
	var from position
	if in.NextToken != nil {
		dir, p, ok := strings.Cut(*in.NextToken, "/")
		pos, okp := parsePosition(p)
		if !ok || !okp || (dir != "f" && dir != "b") {
			return nil, errorf(InvalidParameter, "The specified nextToken is invalid.")
		}
		forward, from = dir == "f", pos
	}
	subj, err := subject(account, group, *in.LogStreamName)
	if err != nil {
		return nil, errorf(ResourceNotFound, "The specified log stream does not exist.")
	}
	last, err := a.cfg.Store.last(ctx, subj)
	if err != nil {
		return nil, err
	}
	if last == nil {
		if m, err := a.cfg.Store.next(ctx, groupFilter(account, group), 1); err != nil {
			return nil, err
		} else if m == nil {
			return nil, groupNotFound()
		}
		return nil, errorf(ResourceNotFound, "The specified log stream does not exist.")
	}
	out := struct {
		Events            []outputEvent `json:"events"`
		NextForwardToken  string        `json:"nextForwardToken"`
		NextBackwardToken string        `json:"nextBackwardToken"`
	}{Events: []outputEvent{}}
	var events []readEvent
	var next position
	if forward {
		if in.NextToken == nil {
			from = position{1, 0}
			if w.start != 0 {
				seq, err := a.cfg.Store.seqFromTime(ctx, time.UnixMilli(w.start).Add(-clockSlack))
				if err != nil {
					return nil, err
				}
				from = position{seq, 0}
			}
		}
		bytes := 0
		next, _, err = a.cfg.Store.scan(ctx, subj, from, scanBudget, func(m *message, idx int) step {
			if w.end != 0 && m.stored.UnixMilli() > w.end+clockSlack.Milliseconds() {
				return done
			}
			e := eventOf(m, idx)
			if !w.has(e.timestamp) {
				return take
			}
			if len(events) == n || bytes+eventSize(e.message) > maxResponseBytes {
				return stop
			}
			bytes += eventSize(e.message)
			events = append(events, e)
			return take
		})
		if err != nil {
			return nil, err
		}
	} else {
		end := from
		if in.NextToken == nil {
			end = position{last.seq + 1, 0}
		}
		events, err = a.cfg.Store.backward(ctx, subj, end, n, maxResponseBytes, w)
		if err != nil {
			return nil, err
		}
		next, from = end, end
		if len(events) > 0 {
			l := events[len(events)-1].pos
			next = position{l.seq, l.idx + 1}
		}
	}
	for _, e := range events {
		out.Events = append(out.Events, outputEvent{Timestamp: e.timestamp, Message: e.message, IngestionTime: e.ingestion})
	}
	out.NextForwardToken = "f/" + next.String()
	out.NextBackwardToken = "b/" + from.String()
	if len(events) > 0 {
		out.NextBackwardToken = "b/" + events[0].pos.String()
	}
	// At the end of the stream the token asked with comes back, which is
	// how the SDKs' paginators know to stop.
	if len(events) == 0 && in.NextToken != nil {
		if forward {
			out.NextForwardToken = *in.NextToken
		} else {
			out.NextBackwardToken = *in.NextToken
		}
	}
	return out, nil
}

type filteredEvent struct {
	LogStreamName string `json:"logStreamName"`
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
	EventID       string `json:"eventId"`
}

// filterLogEvents searches a group's streams in the order events were
// stored (interleaved across streams), from startTime on.
func (a *API) filterLogEvents(ctx context.Context, account string, body []byte) (any, error) {
	var in struct {
		LogGroupName        *string  `json:"logGroupName"`
		LogGroupIdentifier  *string  `json:"logGroupIdentifier"`
		LogStreamNames      []string `json:"logStreamNames"`
		LogStreamNamePrefix *string  `json:"logStreamNamePrefix"`
		StartTime           *int64   `json:"startTime"`
		EndTime             *int64   `json:"endTime"`
		FilterPattern       *string  `json:"filterPattern"`
		NextToken           *string  `json:"nextToken"`
		Limit               *int     `json:"limit"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	group, err := a.groupName(account, in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	if in.LogStreamNames != nil && in.LogStreamNamePrefix != nil {
		return nil, errorf(InvalidParameter, "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.")
	}
	if len(in.LogStreamNames) > 100 {
		return nil, errorf(InvalidParameter, "1 validation error detected: Value at 'logStreamNames' failed to satisfy constraint: Member must have length less than or equal to 100")
	}
	n, err := limit(in.Limit, maxEventsLimit, maxEventsLimit)
	if err != nil {
		return nil, err
	}
	pat := &pattern{}
	if in.FilterPattern != nil && len(*in.FilterPattern) > 1024 {
		return nil, errorf(InvalidParameter, "1 validation error detected: Value at 'filterPattern' failed to satisfy constraint: Member must have length less than or equal to 1024")
	}
	if in.FilterPattern != nil {
		if pat, err = parsePattern(*in.FilterPattern); err != nil {
			return nil, errorf(InvalidParameter, "Invalid filter pattern: %v", err)
		}
	}
	var w window
	if in.StartTime != nil {
		w.start = *in.StartTime
	}
	if in.EndTime != nil {
		w.end = *in.EndTime
	}
	if w.start != 0 && w.end != 0 && w.end < w.start {
		return nil, errorf(InvalidParameter, "endTime must not be before startTime.")
	}
	gf := groupFilter(account, group)
	if first, err := a.cfg.Store.next(ctx, gf, 1); err != nil {
		return nil, err
	} else if first == nil {
		return nil, groupNotFound()
	}
	filter := gf
	names := map[string]bool{}
	for _, s := range in.LogStreamNames {
		names[s] = true
	}
	if len(in.LogStreamNames) == 1 {
		if filter, err = subject(account, group, in.LogStreamNames[0]); err != nil {
			return nil, errorf(InvalidParameter, "Invalid log stream name")
		}
	}
	from := position{1, 0}
	switch {
	case in.NextToken != nil:
		p, ok := parsePosition(strings.TrimPrefix(*in.NextToken, "p/"))
		if !ok {
			return nil, errorf(InvalidParameter, "The specified nextToken is invalid.")
		}
		from = p
	case w.start != 0:
		seq, err := a.cfg.Store.seqFromTime(ctx, time.UnixMilli(w.start).Add(-clockSlack))
		if err != nil {
			return nil, err
		}
		from = position{seq, 0}
	}
	out := struct {
		Events             []filteredEvent `json:"events"`
		SearchedLogStreams []struct{}      `json:"searchedLogStreams"`
		NextToken          string          `json:"nextToken,omitempty"`
	}{Events: []filteredEvent{}, SearchedLogStreams: []struct{}{}}
	streamOf := map[string]string{} // subject -> stream name
	bytes := 0
	endMs := w.end + clockSlack.Milliseconds()
	next, end, err := a.cfg.Store.scan(ctx, filter, from, scanBudget, func(m *message, idx int) step {
		if w.end != 0 && m.stored.UnixMilli() > endMs {
			return done
		}
		name, ok := streamOf[m.subject]
		if !ok {
			_, name, _ = parseSubject(m.subject)
			streamOf[m.subject] = name
		}
		if len(names) > 0 && !names[name] ||
			in.LogStreamNamePrefix != nil && !strings.HasPrefix(name, *in.LogStreamNamePrefix) {
			return take
		}
		e := eventOf(m, idx)
		if !w.has(e.timestamp) || !pat.match(e.message) {
			return take
		}
		if len(out.Events) == n || bytes+eventSize(e.message) > maxResponseBytes {
			return stop
		}
		bytes += eventSize(e.message)
		out.Events = append(out.Events, filteredEvent{
			LogStreamName: name, Timestamp: e.timestamp, Message: e.message,
			IngestionTime: e.ingestion, EventID: eventID(e.pos),
		})
		return take
	})
	if err != nil {
		return nil, err
	}
	if !end {
		out.NextToken = "p/" + next.String()
	}
	return out, nil
}
