package controlapi

import (
	"context"

	"github.com/emberfn/ember/internal/lambdaapi"
)

// DeadLetterTargets checks a function's DeadLetterConfig.TargetArn
// (internal/async: an existing Ember queue of the same account and
// region); its errors are Lambda's.
type DeadLetterTargets interface {
	CheckDeadLetterTarget(ctx context.Context, account, arn string) error
}

type deadLetterTargets struct{ DeadLetterTargets }

// SetDeadLetterTargets sets the checker of dead-letter targets later than
// New (the async queue is opened after the control API); until one is
// set, a DeadLetterConfig with a target is refused.
func (s *Server) SetDeadLetterTargets(t DeadLetterTargets) {
	s.deadLetters.Store(&deadLetterTargets{t})
}

// deadLetterTarget validates a DeadLetterConfig: the target to store ("" to
// remove it).
func (s *Server) deadLetterTarget(ctx context.Context, account string, in *lambdaapi.DeadLetterConfig) (string, error) {
	if in.TargetArn == nil || *in.TargetArn == "" {
		return "", nil
	}
	arn := *in.TargetArn
	if len(arn) > 256 {
		return "", lambdaapi.Validationf(
			"Value at 'deadLetterConfig.targetArn' failed to satisfy constraint: Member must have length less than or equal to 256")
	}
	t := s.deadLetters.Load()
	if t == nil || t.DeadLetterTargets == nil {
		return "", lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "DeadLetterConfig is not supported by this Ember")
	}
	if err := t.CheckDeadLetterTarget(ctx, account, arn); err != nil {
		return "", err
	}
	return arn, nil
}
