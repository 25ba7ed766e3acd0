package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ktape/ktape/bench/internal/harness"
	"github.com/ktape/ktape/bench/source"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
)

// result is one output line: one run of a scenario.
type result struct {
	Scenario   string  `json:"scenario"`
	Note       string  `json:"note,omitempty"`
	Workers    int     `json:"workers"`
	Partitions int     `json:"partitions"`
	Codec      string  `json:"codec"`
	SizeBytes  int64   `json:"size_bytes"`
	BatchBytes int64   `json:"batch_bytes"`
	Memory     int64   `json:"memory"`
	SessionS   float64 `json:"session_timeout_s"`
	Rep        int     `json:"rep"`

	TopicBytes   int64 `json:"topic_bytes"`
	TopicBatches int64 `json:"topic_batches"`
	TopicRecords int64 `json:"topic_records"`

	Seconds     float64 `json:"seconds"`
	MBPerSec    float64 `json:"mb_per_sec"`
	CPUSeconds  float64 `json:"cpu_s"`
	CPUPerGiB   float64 `json:"cpu_s_per_gib"`
	FirstAssign float64 `json:"first_assign_s"`
	Stable      float64 `json:"stable_s"`
	Generations int     `json:"generations"`
	EventAt     float64 `json:"event_at_s,omitempty"`
	Rebalance   float64 `json:"rebalance_s,omitempty"`

	ServerBytes   int64 `json:"server_bytes"`
	ServerFetches int64 `json:"server_fetches"`
	// ServerCPU is the broker process's CPU seconds over its life:
	// generating the topic (before the workers start) and serving it.
	ServerCPU float64 `json:"server_cpu_s"`

	Backup    string         `json:"backup,omitempty"`
	PerWorker []workerResult `json:"per_worker"`

	Error string `json:"error,omitempty"`
}

// workerResult is one worker process of a run.
type workerResult struct {
	Name        string       `json:"name"`
	Started     float64      `json:"started_s"`
	Exit        float64      `json:"exit_s"`
	CPUUser     float64      `json:"cpu_user_s"`
	CPUSys      float64      `json:"cpu_sys_s"`
	MaxRSSMB    float64      `json:"max_rss_mb"`
	Bytes       int64        `json:"bytes"`
	Partitions  int          `json:"partitions"`
	Killed      bool         `json:"killed,omitempty"`
	Assignments []assignment `json:"assignments"`

	backup string // from its backup_done line
}

// assignment is one "assigned partitions by the workers group" log line.
type assignment struct {
	T          float64 `json:"t_s"`
	Generation int32   `json:"generation"`
	Members    int     `json:"members"`
	Partitions int     `json:"partitions"`
}

// runner runs the rounds.
type runner struct {
	opts    *options
	self    string
	selfEnv []string
	stdout  io.Writer
	stderr  io.Writer

	dir      string
	launcher string
	ktapeBin string
}

func (h *runner) run() error {
	tmp, err := os.MkdirTemp(h.opts.dir, "ktape-bench-workers-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	h.dir = tmp
	if h.launcher, err = harness.Launcher(tmp); err != nil {
		return err
	}
	if h.ktapeBin, err = harness.Ktape(h.opts.ktapeBin, tmp, h.stderr); err != nil {
		return err
	}
	type runSpec struct {
		scenario string
		n        int
	}
	var specs []runSpec
	for _, s := range h.opts.scenarios {
		switch s {
		case "scale":
			for _, n := range h.opts.workers {
				specs = append(specs, runSpec{s, n})
			}
		case "join":
			specs = append(specs, runSpec{s, h.opts.joinWorkers})
		case "kill":
			specs = append(specs, runSpec{s, h.opts.killWorkers})
		}
	}
	enc := json.NewEncoder(h.stdout)
	failed, total, i := 0, h.opts.reps*len(specs), 0
	for rep := 1; rep <= h.opts.reps; rep++ {
		// The scale runs first in every round: the join and kill runs
		// are timed from them. Within, the counts in a shuffled order.
		var scale []string
		for _, n := range h.opts.workers {
			scale = append(scale, strconv.Itoa(n))
		}
		walls := map[int]float64{}
		order := []runSpec{}
		if contains(h.opts.scenarios, "scale") {
			for _, n := range harness.Shuffled(scale, rep, 0) {
				k, _ := strconv.Atoi(n)
				order = append(order, runSpec{"scale", k})
			}
		}
		for _, sp := range specs {
			if sp.scenario != "scale" {
				order = append(order, sp)
			}
		}
		for _, sp := range order {
			i++
			fmt.Fprintf(h.stderr, "workers: run %d/%d: %s, %d workers, round %d\n", i, total, sp.scenario, sp.n, rep)
			eventAt := h.opts.eventAt
			if eventAt == 0 && sp.scenario != "scale" {
				base := sp.n
				if sp.scenario == "join" {
					base = sp.n - 1
				}
				w, ok := walls[base]
				if !ok {
					res := result{Scenario: sp.scenario, Workers: sp.n, Rep: rep, Error: fmt.Sprintf("no scale run of %d workers in this round to time the event from", base)}
					failed++
					enc.Encode(res)
					continue
				}
				eventAt = time.Duration(0.4 * w * float64(time.Second))
			}
			res := h.runOne(sp.scenario, sp.n, rep, eventAt)
			if res.Error != "" {
				failed++
				fmt.Fprintf(h.stderr, "workers: failed: %s\n", res.Error)
			} else {
				if sp.scenario == "scale" {
					walls[sp.n] = res.Seconds
				}
				fmt.Fprintf(h.stderr, "workers: %.1f s, %.0f MB/s, %.2f CPU-s/GiB, first assignment %.3f s, stable %.3f s, %d generations, rebalance %.3f s\n",
					res.Seconds, res.MBPerSec, res.CPUPerGiB, res.FirstAssign, res.Stable, res.Generations, res.Rebalance)
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

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// proc is one running worker.
type proc struct {
	name    string
	started time.Time
	cmd     *exec.Cmd
	stdout  bytes.Buffer
	stderr  bytes.Buffer
	done    chan struct{}
	pid     chan int // the launcher's, once started
	use     harness.Usage
	err     error
	exited  time.Time
	killed  bool
}

// start runs worker name under the launcher.
func (h *runner) start(ctx context.Context, name, brokers, repoDir string) *proc {
	args := []string{"backup", "--brokers", brokers, "--repo", repoDir, "--json", "--compression", "none",
		"--memory", strconv.FormatInt(h.opts.memory, 10), "--workers-group", "bench", "--worker-name", name,
		"--worker-session-timeout", h.opts.sessionTimeout.String(), "--worker-rebalance-timeout", h.opts.rebalanceTimeout.String()}
	if h.opts.checkpointInterval != "" {
		args = append(args, "--checkpoint-interval", h.opts.checkpointInterval)
	}
	p := &proc{name: name, done: make(chan struct{}), pid: make(chan int, 1)}
	p.cmd = exec.CommandContext(ctx, h.ktapeBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.started = time.Now()
	go func() {
		p.use, p.err = harness.MeasureNotify(h.launcher, p.cmd, p.pid)
		p.exited = time.Now()
		close(p.done)
	}()
	return p
}

// kill SIGKILLs the worker itself (the launcher's child), so that the
// launcher still reports its CPU time.
func (p *proc) kill() error {
	var pid int
	select {
	case pid = <-p.pid:
	case <-p.done:
		return fmt.Errorf("worker %s ended before it could be killed", p.name)
	}
	for range 100 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err == nil && len(strings.Fields(string(b))) == 1 {
			child, _ := strconv.Atoi(strings.Fields(string(b))[0])
			p.killed = true
			return syscall.Kill(child, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("worker %s: no process to kill under its launcher", p.name)
}

// runOne makes one measurement: a fresh broker and repository, n workers.
func (h *runner) runOne(scenario string, n, rep int, eventAt time.Duration) result {
	o := h.opts
	res := result{Scenario: scenario, Note: o.note, Workers: n, Partitions: o.partitions, Codec: o.codec, SizeBytes: o.size,
		BatchBytes: o.batchBytes, Memory: o.memory, SessionS: o.sessionTimeout.Seconds(), Rep: rep}
	runDir, err := os.MkdirTemp(h.dir, "run-")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer os.RemoveAll(runDir)
	repoDir := filepath.Join(runDir, "repo")

	args := []string{"serve-source", "-partitions", strconv.Itoa(o.partitions), "-size", strconv.FormatInt(o.size, 10), "-codec", o.codec,
		"-batch-bytes", strconv.FormatInt(o.batchBytes, 10), "-pool-bytes", strconv.FormatInt(o.poolBytes, 10),
		"-fetch-delay", o.fetchDelay.String(), "-partition-max-bytes", strconv.Itoa(o.partitionMaxBytes)}
	srv, err := harness.StartServer("serve-source", h.self, args, h.selfEnv, h.stderr)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer srv.Kill()
	var ti source.TopicInfo
	if err := json.Unmarshal(srv.Info, &ti); err != nil || ti.Records == 0 {
		res.Error = fmt.Sprintf("serve-source said ready without its topic (%q: %v)", srv.Info, err)
		return res
	}
	res.TopicBytes, res.TopicBatches, res.TopicRecords = ti.Bytes, ti.Batches, ti.Records
	genCPU := procCPU(srv.Pid())
	time.Sleep(o.settle)

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	initial := n
	if scenario == "join" {
		initial = n - 1
	}
	start := time.Now()
	var procs []*proc
	for i := range initial {
		procs = append(procs, h.start(ctx, fmt.Sprintf("w%d", i), srv.Addr, repoDir))
	}
	var eventErr error
	if scenario != "scale" {
		select {
		case <-time.After(time.Until(start.Add(eventAt))):
		case <-ctx.Done():
		}
		res.EventAt = harness.Round(time.Since(start).Seconds(), 3)
		for _, p := range procs {
			select {
			case <-p.done:
				eventErr = fmt.Errorf("worker %s exited before the %s at %.3f s: the run is too short for -event-at", p.name, scenario, res.EventAt)
			default:
			}
		}
		switch scenario {
		case "join":
			procs = append(procs, h.start(ctx, fmt.Sprintf("w%d", n-1), srv.Addr, repoDir))
		case "kill":
			if err := procs[n-1].kill(); err != nil {
				eventErr = errors.Join(eventErr, err)
			}
		}
	}
	for _, p := range procs {
		<-p.done
	}
	end := time.Now()
	stats, statsErr := stopSource(srv)
	res.ServerBytes, res.ServerFetches = stats.Bytes, stats.Fetches
	if u, sy := srv.CPU(); u+sy > 0 {
		res.ServerCPU = harness.Round(u+sy-genCPU, 3)
	}

	wall := end.Sub(start)
	res.Seconds = harness.Round(wall.Seconds(), 3)
	res.MBPerSec = harness.Round(float64(ti.Bytes)/1e6/wall.Seconds(), 1)
	var failures []string
	if eventErr != nil {
		failures = append(failures, eventErr.Error())
	}
	if statsErr != nil {
		failures = append(failures, statsErr.Error())
	}
	cpu := 0.0
	for _, p := range procs {
		wr, err := p.result(start)
		if err != nil {
			failures = append(failures, err.Error())
		}
		cpu += wr.CPUUser + wr.CPUSys
		res.PerWorker = append(res.PerWorker, wr)
	}
	res.CPUSeconds = harness.Round(cpu, 3)
	res.CPUPerGiB = harness.Round(cpu/(float64(ti.Bytes)/(1<<30)), 3)
	coordination(&res, initial, eventAt > 0 && scenario != "scale")
	if len(failures) == 0 {
		if err := h.checkRepo(ctx, repoDir, &res, ti); err != nil {
			failures = append(failures, err.Error())
		}
	}
	res.Error = strings.Join(failures, "; ")
	return res
}

// result reads what a finished worker reported: its usage, its log's
// assignments and its backup_done line.
func (p *proc) result(start time.Time) (workerResult, error) {
	wr := workerResult{Name: p.name, Started: harness.Round(p.started.Sub(start).Seconds(), 3),
		Exit: harness.Round(p.exited.Sub(start).Seconds(), 3), CPUUser: harness.Round(p.use.User, 3),
		CPUSys: harness.Round(p.use.Sys, 3), MaxRSSMB: harness.Round(p.use.MaxRSSMB, 1), Killed: p.killed}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(p.stderr.Bytes()))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l struct {
			Time       time.Time `json:"time"`
			Msg        string    `json:"msg"`
			Generation int32     `json:"generation"`
			Members    int       `json:"members"`
			Partitions int       `json:"partitions"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "backup: assigned partitions by the workers group" {
			continue
		}
		wr.Assignments = append(wr.Assignments, assignment{T: harness.Round(l.Time.Sub(start).Seconds(), 3),
			Generation: l.Generation, Members: l.Members, Partitions: l.Partitions})
	}
	if p.killed {
		if p.err == nil {
			errs = append(errs, fmt.Errorf("worker %s was killed but exited 0", p.name))
		}
		return wr, errors.Join(errs...)
	}
	if p.err != nil {
		return wr, fmt.Errorf("worker %s: %v: %s", p.name, p.err, harness.LastLines(p.stderr.String(), 5))
	}
	var done struct {
		MessageType string `json:"message_type"`
		Backup      string `json:"backup"`
		Partitions  int    `json:"partitions"`
		Bytes       int64  `json:"bytes"`
	}
	line := harness.LastLine(p.stdout.String())
	if err := json.Unmarshal([]byte(line), &done); err != nil || done.MessageType != "backup_done" {
		return wr, fmt.Errorf("worker %s printed %q, not a backup_done line", p.name, line)
	}
	// A worker may log no assignment: one that joins as the run
	// finishes is handed the finished run and returns it. checkRepo
	// checks that it names the one backup.
	wr.Bytes, wr.Partitions, wr.backup = done.Bytes, done.Partitions, done.Backup
	return wr, errors.Join(errs...)
}

// coordination works out, from the workers' assignments, when the first
// one came, when every one of the first initial workers held partitions
// in a generation of all of them, how many generations there were, and
// how long the rebalance after the join or kill took.
func coordination(res *result, initial int, event bool) {
	first, stable := -1.0, 0.0
	gens := map[int32]bool{}
	for i, w := range res.PerWorker {
		got := -1.0
		for _, a := range w.Assignments {
			gens[a.Generation] = true
			if first < 0 || a.T < first {
				first = a.T
			}
			if i < initial && got < 0 && a.Members >= initial {
				got = a.T
			}
		}
		if i < initial {
			stable = max(stable, got)
			if got < 0 {
				stable = -1
			}
		}
	}
	res.FirstAssign, res.Stable, res.Generations = first, harness.Round(stable, 3), len(gens)
	if !event {
		return
	}
	// The new generation: the first one assigned after the event with as
	// many members as were left running (a kill) or had joined (a join).
	want := len(res.PerWorker)
	if res.Scenario == "kill" {
		want--
	}
	done := 0.0
	for _, w := range res.PerWorker {
		if w.Killed {
			continue
		}
		got := -1.0
		for _, a := range w.Assignments {
			if a.T >= res.EventAt && a.Members == want {
				got = a.T
				break
			}
		}
		if got < 0 {
			// The run ended before this worker saw the new generation
			// (its partitions were done and the run finished).
			res.Rebalance = -1
			return
		}
		done = max(done, got)
	}
	res.Rebalance = harness.Round(done-res.EventAt, 3)
}

// checkRepo checks that the repository holds exactly one backup, complete,
// and that every worker that finished names it.
func (h *runner) checkRepo(ctx context.Context, repoDir string, res *result, ti source.TopicInfo) error {
	st, err := storage.OpenExisting(ctx, repoDir)
	if err != nil {
		return fmt.Errorf("open the repository: %w", err)
	}
	r, err := repo.Open(ctx, st, false)
	if err != nil {
		st.Close()
		return fmt.Errorf("open the repository: %w", err)
	}
	ids, err := r.Backups(ctx)
	st.Close()
	if err != nil {
		return fmt.Errorf("list backups: %w", err)
	}
	if len(ids) != 1 {
		return fmt.Errorf("the repository holds %d backups (%v), want the one shared run", len(ids), ids)
	}
	res.Backup = ids[0]
	for _, w := range res.PerWorker {
		if !w.Killed && w.backup != ids[0] {
			return fmt.Errorf("worker %s reported backup %q, the repository holds %s", w.Name, w.backup, ids[0])
		}
	}
	tot, err := harness.CheckManifest(ctx, repoDir, ids[0], "")
	if err != nil {
		return err
	}
	if tot.Records != ti.Records || tot.Batches != ti.Batches || tot.Bytes != ti.Bytes {
		return fmt.Errorf("the backup holds %d records, %d batches, %d bytes; the topic %d, %d, %d", tot.Records, tot.Batches, tot.Bytes, ti.Records, ti.Batches, ti.Bytes)
	}
	return nil
}

// procCPU is the user and system seconds process pid has used so far
// (/proc/PID/stat), 0 if it cannot be read.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and
	// may hold spaces: utime and stime are the 14th and 15th fields.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (ut + stime) / 100 // USER_HZ is 100 on Linux
}

// stopSource stops the broker and returns its counters.
func stopSource(srv *harness.Server) (source.Stats, error) {
	var st source.Stats
	last, err := srv.Stop()
	if err != nil {
		return st, err
	}
	if last == nil {
		return st, errors.New("the broker printed no counters")
	}
	if err := json.Unmarshal(last, &st); err != nil {
		return st, fmt.Errorf("broker stats %q: %w", last, err)
	}
	if st.Errors > 0 {
		return st, fmt.Errorf("the broker closed %d connections on bad requests (its log is above)", st.Errors)
	}
	return st, nil
}
