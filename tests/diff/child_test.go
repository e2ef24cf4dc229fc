package diff

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Every process a test starts (cairn, stock etcd, etcdctl, cairnctl) is
// a child: started by startChild, in a process group of its own, and
// never waited on without a deadline. When a deadline passes, or the test
// ends, the whole group is SIGKILLed and waited for; a child that
// overstays a deadline fails the test with its command line and what it
// printed so far.
//
// The deadlines are generous: the tests run on machines whose cores other
// work keeps busy, and say how long things took with t.Logf, not by
// failing.
const (
	// commandDeadline bounds one command run to its end (etcdctl's and
	// cairnctl's own requests time out after 5 s).
	commandDeadline = 2 * time.Minute
	// exitDeadline bounds how long a child may take to exit once
	// interrupted or killed.
	exitDeadline = 30 * time.Second
	// waitDeadline bounds a wait for a condition on a running server:
	// serving, counting watchers, answering a progress request.
	waitDeadline = time.Minute
)

// child is a started process.
type child struct {
	cmd *exec.Cmd
	// stdout and stderr hold what it printed, unless the caller sent
	// its output elsewhere.
	stdout, stderr *lockedBuffer
	exited         chan struct{}
	// err is Wait's error; read it only once exited is closed.
	err error
}

// startChild starts cmd in a process group of its own, its output into
// the child's buffers unless cmd.Stdout/Stderr are set. The test's end
// kills the group and waits for it.
func startChild(t *testing.T, cmd *exec.Cmd) *child {
	t.Helper()
	c := &child{cmd: cmd, exited: make(chan struct{})}
	if cmd.Stdout == nil {
		c.stdout = new(lockedBuffer)
		cmd.Stdout = c.stdout
	}
	if cmd.Stderr == nil {
		c.stderr = new(lockedBuffer)
		cmd.Stderr = c.stderr
	}
	// The group: a kill reaches whatever the child started (a watch's or
	// a lock's command).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A grandchild holding the output pipes open does not keep Wait
	// waiting once the child itself has exited.
	cmd.WaitDelay = exitDeadline
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", c, err)
	}
	go func() { // ends when the process does (the test's end kills it)
		c.err = cmd.Wait()
		// Whatever the child left running in its group goes with it.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		close(c.exited)
	}()
	t.Cleanup(func() { c.kill(t) })
	return c
}

// runChild runs cmd (as startChild; its Stdout and Stderr unset) to its
// end, for at most deadline, and returns what it printed and its
// exit code. A command still running at its deadline is killed, and fails
// the test.
func runChild(t *testing.T, cmd *exec.Cmd, deadline time.Duration) (stdout, stderr string, code int) {
	t.Helper()
	c := startChild(t, cmd)
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	select {
	case <-c.exited:
	case <-timer.C:
		c.kill(t)
		t.Fatalf("%s was still running after %v: killed\n%s", c, deadline, c.output())
	}
	code = c.exitCode(t)
	return c.stdout.String(), c.stderr.String(), code
}

// exitCode is the exited child's exit code; an error other than a
// non-zero exit fails the test.
func (c *child) exitCode(t *testing.T) int {
	t.Helper()
	if ee, ok := c.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if errors.Is(c.err, exec.ErrWaitDelay) {
		t.Fatalf("%s exited, but something it started held its output open %v longer (killed with its group)\n%s",
			c, exitDeadline, c.output())
	}
	if c.err != nil {
		t.Fatalf("%s: %v\n%s", c, c.err, c.output())
	}
	return 0
}

// interrupt sends the child SIGINT (as ^C would) and waits for it to exit.
// If it has not within exitDeadline, it is killed, and the test fails.
func (c *child) interrupt(t *testing.T) {
	t.Helper()
	if c.done() {
		return
	}
	c.cmd.Process.Signal(os.Interrupt)
	timer := time.NewTimer(exitDeadline)
	defer timer.Stop()
	select {
	case <-c.exited:
	case <-timer.C:
		c.kill(t)
		t.Fatalf("%s did not exit within %v of SIGINT: killed\n%s", c, exitDeadline, c.output())
	}
}

// kill SIGKILLs the child's process group, if the child is running, and
// waits for the child to exit.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if c.done() {
		return
	}
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	timer := time.NewTimer(exitDeadline)
	defer timer.Stop()
	select {
	case <-c.exited:
	case <-timer.C:
		// Not even SIGKILL: a process stuck in the kernel.
		t.Fatalf("%s (pid %d) did not exit within %v of SIGKILL", c, c.cmd.Process.Pid, exitDeadline)
	}
}

func (c *child) done() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// String names the command and its arguments.
func (c *child) String() string {
	return fmt.Sprintf("%s %q", c.cmd.Path, c.cmd.Args[1:])
}

// output is what the child printed so far, for a failure message.
func (c *child) output() string {
	var b strings.Builder
	if c.stdout != nil {
		fmt.Fprintf(&b, "--- stdout so far:\n%s\n", c.stdout.String())
	}
	if c.stderr != nil {
		fmt.Fprintf(&b, "--- stderr so far:\n%s\n", c.stderr.String())
	}
	return b.String()
}

// lockedBuffer is a buffer a running process writes and the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
