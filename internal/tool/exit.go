package tool

import "fmt"

// Exit codes, etcdctl's and etcdutl's (cobrautl's).
const (
	ExitSuccess       = 0
	ExitError         = 1
	ExitBadConnection = 2
	ExitInvalidInput  = 3
	ExitBadFeature    = 4
	ExitInterrupted   = 5
	ExitBadArgs       = 128
)

// ExitErr carries an exit code with its message.
type ExitErr struct {
	Code int
	Err  error
}

func (e ExitErr) Error() string { return e.Err.Error() }
func (e ExitErr) Unwrap() error { return e.Err }

// BadArgs is an error of the command line (ExitBadArgs).
func BadArgs(format string, a ...any) error {
	return ExitErr{ExitBadArgs, fmt.Errorf(format, a...)}
}
