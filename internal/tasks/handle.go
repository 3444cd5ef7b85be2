package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/queue"
)

// ErrBadPayload is what every BadPayloadError matches with errors.Is.
var ErrBadPayload = errors.New("bad task payload")

// BadPayloadError says why a task's payload can never be processed.
type BadPayloadError struct {
	Kind   string
	Reason string
}

func (e *BadPayloadError) Error() string {
	return fmt.Sprintf("bad %s payload: %s", e.Kind, e.Reason)
}

// Is makes errors.Is(err, ErrBadPayload) true.
func (e *BadPayloadError) Is(target error) bool { return target == ErrBadPayload }

// Decode reads a task's payload into A and validates it. A payload that cannot be
// decoded or fails A.Validate, or a task of another kind, is a *BadPayloadError
// wrapped as permanent (asynq archives the task without a retry).
func Decode[A Args](t *asynq.Task) (A, error) {
	var a A
	if t.Type() != a.Kind() {
		return a, queue.Permanent(&BadPayloadError{Kind: a.Kind(), Reason: fmt.Sprintf("task of type %q handed to the %s handler", t.Type(), a.Kind())})
	}
	if err := json.Unmarshal(t.Payload(), &a); err != nil {
		return a, queue.Permanent(&BadPayloadError{Kind: a.Kind(), Reason: "not a JSON object of this kind: " + err.Error()})
	}
	if err := a.Validate(); err != nil {
		return a, queue.Permanent(&BadPayloadError{Kind: a.Kind(), Reason: err.Error()})
	}
	return a, nil
}

// WorkFunc does one task of kind A with its decoded, valid args.
type WorkFunc[A Args] func(ctx context.Context, args A) error

// Handle adapts work to asynq (after River's Worker[T]): it decodes and validates
// the payload once and hands work a typed value; a bad payload ends the task for
// good with its reason (logged once, by the worker's logging middleware), and work
// is never called with it.
func Handle[A Args](work WorkFunc[A]) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		a, err := Decode[A](t)
		if err != nil {
			return err
		}
		return work(ctx, a)
	})
}

// Register mounts work on mux under A's kind: one line of wiring per task type.
func Register[A Args](mux *asynq.ServeMux, work WorkFunc[A]) {
	var a A
	mux.Handle(a.Kind(), Handle(work))
}
