// Package stagetime times the stages of one warm invoke at a time, for
// `ember bench` built with `-tags stagetime`: where a concurrency-1 invoke's
// time goes, from the client through the Front End, the Worker and the
// Runtime API to the function and back (docs/performance.md). In the
// default build every call is an empty function the compiler removes, so
// the invoke path pays nothing for it.
package stagetime

// The points an invoke passes, in order. Mark(p) records when it passed p.
const (
	ClientStart     = iota // the bench's client begins a request
	ClientSigned           // its request is made and signed
	FrontEnd               // the Front End's (or the echo server's) handler begins
	ToWorker               // the Front End hands the invoke to the Worker
	RuntimeAPI             // the Worker hands it to the Runtime API server
	EventWritten           // the event is written to the runtime's /next
	AnswerArrived          // the runtime's /response has arrived (its head read)
	AnswerRecorded         // its body is read and recorded for Invoke
	InvokeResumed          // Invoke's caller runs again with the answer
	FromWorker             // the Worker has returned the result
	ResponseWritten        // the handler has written the response (not yet flushed)
	ClientDone             // the client has read the whole response
	NumPoints
)

// Names are the points' names, for the bench's table.
var Names = [NumPoints]string{
	"client starts", "client signed", "handler begins", "to the Worker", "to the Runtime API",
	"event written to /next", "answer arrived", "answer recorded", "Invoke resumes",
	"Worker returned", "response written", "client done",
}
