package harness

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Timeouts of broker processes: StartTimeout bounds how long one may take
// to say "ready" (generating, and for kfake loading, a topic); StopTimeout
// how long it may take to exit after SIGTERM.
const (
	StartTimeout = 10 * time.Minute
	StopTimeout  = 30 * time.Second
)

// Server is a running broker process that speaks the protocol of
// bench/source's, bench/sink's and ServeKfake's commands on stdout: any
// JSON lines (the last one before "ready" is kept as Info), "listening on
// HOST:PORT", "ready"; and after SIGTERM a last JSON line of counters.
type Server struct {
	Name string // for messages
	Addr string
	Info []byte // the last JSON line before "ready", if any

	cmd   *exec.Cmd
	lines chan string // its stdout, closed at EOF
	done  bool
}

// StartServer runs bin with args (and env added to this process's
// environment), its stderr on stderr, and waits until it says "ready".
func StartServer(name, bin string, args, env []string, stderr io.Writer) (*Server, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &Server{Name: name, cmd: cmd, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	timeout := time.After(StartTimeout)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				s.Kill()
				return nil, fmt.Errorf("%s exited before it was ready", name)
			}
			switch {
			case strings.HasPrefix(line, "{"):
				s.Info = []byte(line)
			case strings.HasPrefix(line, "listening on "):
				s.Addr = strings.TrimPrefix(line, "listening on ")
			case line == "ready":
				if s.Addr == "" {
					s.Kill()
					return nil, fmt.Errorf("%s said ready without its address", name)
				}
				return s, nil
			}
		case <-timeout:
			s.Kill()
			return nil, fmt.Errorf("%s not ready after %v", name, StartTimeout)
		}
	}
}

// Stop asks the broker to exit (SIGTERM) and returns the last JSON line it
// printed after "ready" (nil if none).
func (s *Server) Stop() ([]byte, error) {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.Kill()
		return nil, fmt.Errorf("signal %s: %w", s.Name, err)
	}
	var last []byte
	timeout := time.After(StopTimeout)
	for open := true; open; {
		select {
		case line, ok := <-s.lines:
			if !ok {
				open = false
			} else if strings.HasPrefix(line, "{") {
				last = []byte(line)
			}
		case <-timeout:
			s.Kill()
			return nil, fmt.Errorf("%s did not exit within %v of SIGTERM", s.Name, StopTimeout)
		}
	}
	err := s.cmd.Wait()
	s.done = true
	if err != nil {
		return last, fmt.Errorf("%s: %w", s.Name, err)
	}
	return last, nil
}

// Pid is the broker process's id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// CPU is the user and system seconds the broker process used, once Stop
// has returned (0 before).
func (s *Server) CPU() (user, sys float64) {
	if s.cmd.ProcessState == nil {
		return 0, 0
	}
	return s.cmd.ProcessState.UserTime().Seconds(), s.cmd.ProcessState.SystemTime().Seconds()
}

// Kill ends the broker if Stop has not.
func (s *Server) Kill() {
	if s.done {
		return
	}
	s.done = true
	s.cmd.Process.Kill()
	s.cmd.Wait()
}
