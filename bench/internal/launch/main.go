// Command launch runs a benchmark's client and reports what it cost, for
// bench/internal/harness's Measure: "launch PROGRAM ARGS..." starts
// PROGRAM with this process's stdin, stdout and stderr, waits for it, and
// writes one JSON line to file descriptor 3 (the child's wall time in
// seconds, its user and system CPU seconds, its peak RSS in KiB, and how
// it ended), then exits with the child's exit status (128+signal if a
// signal ended it). If launch dies, the kernel kills the child
// (PR_SET_PDEATHSIG).
//
// It exists because on Linux a child's peak RSS, as getrusage reports it,
// is at least its parent's when it was started: exec takes the
// high-water mark of the memory it replaces, which os/exec shares with the
// parent. The harnesses link cloud storage SDKs, kfake and more, and start
// at about 50 MB; this program imports next to nothing and starts at a few.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// report is the JSON line written to fd 3.
type report struct {
	Seconds   float64 `json:"seconds"`
	User      float64 `json:"user_s"`
	Sys       float64 `json:"sys_s"`
	MaxRSSKiB int64   `json:"max_rss_kib"`
	ExitCode  int     `json:"exit_code"`
	Signal    string  `json:"signal,omitempty"`
	Error     string  `json:"error,omitempty"`
	// SelfMaxRSSKiB is this program's own peak when it reported, the
	// floor under MaxRSSKiB.
	SelfMaxRSSKiB int64 `json:"self_max_rss_kib"`
}

func main() {
	out := os.NewFile(3, "report")
	if out == nil || len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: launch PROGRAM [ARGS...] 3>report")
		os.Exit(2)
	}
	syscall.CloseOnExec(3) // not the child's
	var r report
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err := cmd.Run()
	r.Seconds = time.Since(start).Seconds()
	code := 0
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.User = time.Duration(ru.Utime.Nano()).Seconds()
			r.Sys = time.Duration(ru.Stime.Nano()).Seconds()
			r.MaxRSSKiB = ru.Maxrss
		}
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.Signal = ws.Signal().String()
			code = 128 + int(ws.Signal())
		} else {
			code = ps.ExitCode()
		}
	} else if err != nil {
		r.Error = err.Error()
		code = 127
	}
	r.ExitCode = code
	var self syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) == nil {
		r.SelfMaxRSSKiB = self.Maxrss
	}
	line, _ := json.Marshal(r)
	out.Write(append(line, '\n'))
	os.Exit(code)
}
