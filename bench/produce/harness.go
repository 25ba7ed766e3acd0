package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	sinkPkg    = "github.com/ktape/ktape/bench/sink/cmd/sink"
	producePkg = "github.com/ktape/ktape/bench/produce"
	// sinkStartTimeout bounds how long a sink may take to say "ready",
	// and to print its totals after SIGTERM.
	sinkStartTimeout = 15 * time.Second
)

// harness runs every configuration for every impl, each in a child process
// against its own sink process.
type harness struct {
	opts    *options
	self    string   // this executable, re-run as the child
	selfEnv []string // added to the child's environment
	stdout  io.Writer
	stderr  io.Writer

	tmp      string
	sinkBin  string
	childBin map[string]string // impl -> executable
}

func (h *harness) run() error {
	h.stderr = &syncWriter{w: h.stderr}
	tmp, err := os.MkdirTemp("", "ktape-bench-produce-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	h.tmp = tmp

	h.sinkBin = h.opts.sinkBin
	if h.sinkBin == "" {
		h.sinkBin = filepath.Join(tmp, "sink")
		if out, err := goBuild(h.sinkBin, sinkPkg); err != nil {
			return fmt.Errorf("build the sink (or pass -sink-bin): %v\n%s", err, out)
		}
	}
	impls, err := h.resolveImpls()
	if err != nil {
		return err
	}
	if len(impls) == 0 {
		return fmt.Errorf("no impl to run")
	}

	type conf struct {
		vb, g, p int
		c        string
	}
	var confs []conf
	for _, vb := range h.opts.valueBytes {
		for _, g := range h.opts.goroutines {
			for _, p := range h.opts.partitions {
				for _, c := range h.opts.compression {
					confs = append(confs, conf{vb, g, p, c})
				}
			}
		}
	}
	failed, total, i := 0, len(confs)*len(impls), 0
	enc := json.NewEncoder(h.stdout)
	for _, c := range confs {
		for _, impl := range impls {
			i++
			fmt.Fprintf(h.stderr, "produce: run %d/%d: %s, %d B values, %d goroutines, %d partitions, %s, acks=%s\n",
				i, total, impl, c.vb, c.g, c.p, c.c, h.opts.acks)
			res := h.runOne(impl, c.vb, c.g, c.p, c.c)
			if res.Error != "" {
				failed++
				fmt.Fprintf(h.stderr, "produce: %s failed: %s\n", impl, res.Error)
			}
			if err := enc.Encode(res); err != nil {
				return fmt.Errorf("write result: %w", err)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d runs failed", failed, total)
	}
	return nil
}

// resolveImpls decides which impls run and which executable runs each.
// Without an explicit -impl, impls that are unavailable are skipped with a
// message; named explicitly, they are an error.
func (h *harness) resolveImpls() ([]string, error) {
	h.childBin = map[string]string{}
	var out []string
	for _, name := range h.opts.impls {
		if _, ok := lookupImpl(name); ok {
			h.childBin[name] = h.self
			out = append(out, name)
			continue
		}
		var why string
		if name == "confluent" {
			bin := filepath.Join(h.tmp, "produce-confluent")
			fmt.Fprintf(h.stderr, "produce: building the confluent child (-tags confluent,dynamic, needs cgo and librdkafka-dev)\n")
			if msg, err := goBuild(bin, producePkg, "-tags", "confluent,dynamic"); err != nil {
				why = fmt.Sprintf("building with -tags confluent,dynamic failed (is librdkafka-dev installed?): %v: %s", err, lastLines(msg, 5))
			} else {
				h.childBin[name] = bin
				out = append(out, name)
				continue
			}
		} else {
			why = "not built into this harness (no file registers it yet)"
		}
		if h.opts.implsSet {
			return nil, fmt.Errorf("-impl %s: %s", name, why)
		}
		fmt.Fprintf(h.stderr, "produce: skipping %s: %s\n", name, why)
	}
	return out, nil
}

// runOne makes one measurement: a fresh sink, a fresh child.
func (h *harness) runOne(impl string, vb, g, p int, c string) result {
	res := result{Impl: impl, ValueBytes: vb, Goroutines: g, Partitions: p, Compression: c, Acks: h.opts.acks}
	if info, ok := lookupImpl(impl); ok {
		res.Note = info.note
	}
	s, err := startSink(h.sinkBin, p, h.opts.topic, h.opts.verify, h.stderr)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer s.kill()

	args := []string{"-child", "-impl", impl, "-brokers", s.addr,
		"-value-bytes", strconv.Itoa(vb), "-goroutines", strconv.Itoa(g),
		"-partitions", strconv.Itoa(p), "-compression", c, "-acks", h.opts.acks,
		"-records", strconv.FormatInt(h.opts.records, 10), "-duration", h.opts.duration.String(),
		"-timeout", h.opts.timeout.String(), "-topic", h.opts.topic}
	if h.opts.cpuprofile != "" {
		args = append(args, "-cpuprofile", filepath.Join(h.opts.cpuprofile, fmt.Sprintf("%s-%dB-%dg-%dp-%s.prof", impl, vb, g, p, c)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.childBin[impl], args...)
	cmd.Env = append(os.Environ(), h.selfEnv...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = h.stderr
	childErr := cmd.Run()

	totals, sinkErr := s.stop()
	if line := lastLine(out.String()); line != "" {
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			res.Error = fmt.Sprintf("child printed %q: %v", line, err)
		}
	}
	res.SinkRecords, res.SinkBatches, res.SinkRequests = totals.Records, totals.Batches, totals.Requests
	if totals.Batches > 0 {
		res.RecordsPerBatch = round(float64(totals.Records)/float64(totals.Batches), 1)
	}
	switch {
	case res.Error != "":
	case childErr != nil:
		res.Error = fmt.Sprintf("child: %v (its stderr is above)", childErr)
	case sinkErr != nil:
		res.Error = sinkErr.Error()
	case res.Records == 0:
		res.Error = "child reported no records"
	case totals.Records < res.Records+res.WarmupRecords:
		res.Error = fmt.Sprintf("the sink received %d records, fewer than the %d (+%d warm-up) the client reported delivered",
			totals.Records, res.Records, res.WarmupRecords)
	case totals.Corrupt > 0:
		res.Error = fmt.Sprintf("the sink found %d corrupt batches", totals.Corrupt)
	}
	return res
}

// sinkTotals is the sink's final JSON line.
type sinkTotals struct {
	Records  int64 `json:"records"`
	Batches  int64 `json:"batches"`
	Bytes    int64 `json:"bytes"`
	Requests int64 `json:"requests"`
	Corrupt  int64 `json:"corrupt"`
}

// sinkProc is a running sink process.
type sinkProc struct {
	cmd   *exec.Cmd
	addr  string
	lines chan string // its stdout, closed at EOF
	done  bool
}

func startSink(bin string, partitions int, topic string, verify bool, stderr io.Writer) (*sinkProc, error) {
	args := []string{"-partitions", strconv.Itoa(partitions), "-topics", topic}
	if verify {
		args = append(args, "-verify")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sink %s: %w", bin, err)
	}
	s := &sinkProc{cmd: cmd, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	timeout := time.After(sinkStartTimeout)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				s.kill()
				return nil, fmt.Errorf("sink %s exited before it was ready", bin)
			}
			if a, found := strings.CutPrefix(line, "listening on "); found {
				s.addr = a
			}
			if line == "ready" {
				if s.addr == "" {
					s.kill()
					return nil, fmt.Errorf("sink said ready without a listening address")
				}
				return s, nil
			}
		case <-timeout:
			s.kill()
			return nil, fmt.Errorf("sink %s not ready after %v", bin, sinkStartTimeout)
		}
	}
}

// stop asks the sink to exit and returns its totals.
func (s *sinkProc) stop() (sinkTotals, error) {
	var t sinkTotals
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return t, fmt.Errorf("signal sink: %w", err)
	}
	var last string
	timeout := time.After(sinkStartTimeout)
	for open := true; open; {
		select {
		case line, ok := <-s.lines:
			if !ok {
				open = false
			} else if strings.HasPrefix(line, "{") {
				last = line
			}
		case <-timeout:
			s.kill()
			return t, fmt.Errorf("sink did not print its totals within %v of SIGTERM", sinkStartTimeout)
		}
	}
	err := s.cmd.Wait()
	s.done = true
	if err != nil {
		return t, fmt.Errorf("sink: %w", err)
	}
	if last == "" {
		return t, fmt.Errorf("sink printed no totals")
	}
	if err := json.Unmarshal([]byte(last), &t); err != nil {
		return t, fmt.Errorf("sink totals %q: %w", last, err)
	}
	return t, nil
}

// kill ends the sink if stop has not.
func (s *sinkProc) kill() {
	if s.done {
		return
	}
	s.done = true
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// syncWriter serialises writes from the harness and from the goroutines
// os/exec starts to copy its children's output.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// goBuild builds pkg into out with the go command, returning its output.
func goBuild(out, pkg string, flags ...string) (string, error) {
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.Command(goCommand(), append(args, pkg)...)
	msg, err := cmd.CombinedOutput()
	return string(msg), err
}

// goCommand is $GO or go.
func goCommand() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
