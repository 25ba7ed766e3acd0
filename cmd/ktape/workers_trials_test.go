package main

// Seeded trials of workers groups (the WORKERS class of the reliability
// suite): a snapshot backup, then a restore, shared by 2 to 4 ktape
// processes (--workers-group), while workers are killed (SIGKILL), stopped
// (SIGTERM: they checkpoint and leave), started part-way, and restarted
// in place under their old --worker-name and, sometimes, a static
// --worker-instance-id. Whatever happens, the result must be exact:
//
//   - a backup equals the one-process backup of the same data batch for
//     batch, byte for byte, each offset stored once; franz-go reads it as
//     the broker serves it; verify --deep is clean; the run's checkpoints
//     are gone;
//   - a restore leaves every target partition holding, record by record
//     as franz-go reads it, what a one-process restore writes (each record
//     once, at the same offset), the restore recorded done and the
//     consumer group offsets committed as the one-process restore commits
//     them.
//
// Settings come from the environment, so that CI runs one trial of each
// kind and a make target (make reliability-workers) runs many:
//
//	KTAPE_WORKERS_TRIALS   trials per kind (default 1)
//	KTAPE_WORKERS_SEED     the first trial's seed (default 1; "random" picks
//	                       one and logs it); trial i has seed+i, and
//	                       KTAPE_WORKERS_SEED=<a trial's seed> with
//	                       KTAPE_WORKERS_TRIALS=1 runs that trial again
//	KTAPE_WORKERS_SUMMARY  append one JSON line per kind with the figures
//
// A seed fixes the plan (how many workers, which events, when, which
// worker they hit by rank), not the processes' scheduling: a failing seed
// is a strong lead, not an exact replay.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/repotest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// workersSettings are the trial count and first seed, from the
// environment.
type workersSettings struct {
	trials int
	seed   uint64
}

func workersConfig(t *testing.T) workersSettings {
	s := workersSettings{trials: 1, seed: 1}
	if v := os.Getenv("KTAPE_WORKERS_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KTAPE_WORKERS_TRIALS=%q: want a positive number", v)
		}
		s.trials = n
	}
	switch v := os.Getenv("KTAPE_WORKERS_SEED"); v {
	case "":
	case "random":
		s.seed = uint64(time.Now().UnixNano()) % 1e9
	default:
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("KTAPE_WORKERS_SEED=%q: want a number or random", v)
		}
		s.seed = n
	}
	return s
}

// workersTally is one kind's figures.
type workersTally struct {
	Kind   string   `json:"kind"`
	Seed   uint64   `json:"first_seed"`
	Trials int      `json:"trials"`
	Failed []uint64 `json:"failed_seeds"`
	// Initial are the workers each trial starts with, summed.
	Initial int `json:"workers_at_start"`
	// The events that found their target running (Kills, Terms) or that
	// started a process (Starts: a new worker; Restarts: a worker stopped
	// before, under its old name, StaticRestarts of them with a
	// --worker-instance-id).
	Kills          int `json:"kills"`
	Terms          int `json:"graceful_stops"`
	Starts         int `json:"starts"`
	Restarts       int `json:"restarts"`
	StaticRestarts int `json:"static_restarts"`
	// Late are signals that found their worker already exited; Skipped
	// starts planned after the backup was complete (a worker started
	// then begins the group's next backup, by design).
	Late    int `json:"signals_after_exit"`
	Skipped int `json:"starts_skipped_run_done"`
	// Finalized: trials left with no worker, whose backup `ktape backup
	// finalize` wrote; FinalWorkers: trials left with no worker and work
	// to do, which a worker started at the end completed.
	Finalized    int `json:"finalized"`
	FinalWorkers int `json:"final_workers"`
	// NextBackups: backups begun by a worker started as the shared one
	// finished (see workersBackupTrials).
	NextBackups int `json:"next_backups_by_late_workers"`
	// Nudges: runs stalled by a member kfake never expires, given one
	// more worker (see waitAll).
	Nudges int `json:"kfake_stall_nudges"`
	// Records are the records compared with the one-process run's.
	Records    int64 `json:"records_compared"`
	Lost       int64 `json:"lost"`
	Duplicated int64 `json:"duplicated"`
	// Misplaced are records present once but at another offset or
	// partition than the one-process run put them, or with other
	// contents, or not in it at all.
	Misplaced  int64   `json:"misplaced"`
	OneProcess float64 `json:"one_process_seconds"`
	TrialMean  float64 `json:"trial_seconds_mean"`
	TrialMax   float64 `json:"trial_seconds_max"`
	// AfterLast is the mean time from a trial's last event to the end of
	// its run.
	AfterLast float64 `json:"after_last_event_seconds_mean"`
	Seconds   float64 `json:"seconds"`
	sum       float64
	afterSum  float64
}

// trialDone adds a finished trial's durations.
func (w *workersTally) trialDone(total, afterLast time.Duration) {
	w.sum += total.Seconds()
	w.afterSum += afterLast.Seconds()
	w.TrialMax = max(w.TrialMax, total.Seconds())
}

// report logs the tally as JSON, appends it to $KTAPE_WORKERS_SUMMARY,
// and fails on any record lost, duplicated or misplaced.
func (w *workersTally) report(t *testing.T, start time.Time) {
	w.Seconds = time.Since(start).Seconds()
	if w.Trials > 0 {
		w.TrialMean = w.sum / float64(w.Trials)
		w.AfterLast = w.afterSum / float64(w.Trials)
	}
	b, _ := json.Marshal(w)
	t.Logf("workers %s summary: %s", w.Kind, b)
	if w.Lost+w.Duplicated+w.Misplaced > 0 {
		t.Errorf("workers %s: records lost, duplicated or misplaced (first seed %d)", w.Kind, w.Seed)
	}
	f := os.Getenv("KTAPE_WORKERS_SUMMARY")
	if f == "" {
		return
	}
	out, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err == nil {
		_, err = out.Write(append(b, '\n'))
		err = errors.Join(err, out.Close())
	}
	if err != nil {
		t.Errorf("KTAPE_WORKERS_SUMMARY: %v", err)
	}
}

// each runs trial once per seed, as subtests named by seed.
func (s workersSettings) each(t *testing.T, tally *workersTally, trial func(t *testing.T, seed uint64, r *rand.Rand)) {
	for i := range s.trials {
		seed := s.seed + uint64(i)
		r := rand.New(rand.NewPCG(seed, uint64(len(tally.Kind))))
		tally.Trials++
		if !t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { trial(t, seed, r) }) {
			tally.Failed = append(tally.Failed, seed)
			t.Logf("%s trial with seed %d failed: KTAPE_WORKERS_SEED=%d KTAPE_WORKERS_TRIALS=1 go test -run 'TestWorkersTrials/%s' reruns it", tally.Kind, seed, seed, tally.Kind)
		}
	}
}

// workerEvent is one planned event of a trial.
type workerEvent struct {
	at   time.Duration
	kind string // kill, term, start, restart
	// pick chooses the event's worker among those it can hit, by rank.
	pick int
	// static gives a started or restarted worker a --worker-instance-id
	// (a restart keeps the one it had).
	static bool
}

// planWorkers draws a trial: 2 to 4 workers at the start (each static
// one time in four), then 1 to 4 events within window, one in six of
// them within its first tenth (while the workers join): kills, graceful
// stops, starts and restarts.
func planWorkers(r *rand.Rand, window time.Duration) (initial []bool, events []workerEvent) {
	initial = make([]bool, 2+r.IntN(3))
	for i := range initial {
		initial[i] = r.IntN(4) == 0
	}
	events = make([]workerEvent, 1+r.IntN(4))
	for i := range events {
		w := window
		if r.IntN(6) == 0 {
			w = window / 10
		}
		e := workerEvent{at: time.Duration(r.Int64N(int64(w))), pick: r.IntN(4), static: r.IntN(3) == 0}
		switch n := r.IntN(20); {
		case n < 7:
			e.kind = "kill"
		case n < 11:
			e.kind = "term"
		case n < 15:
			e.kind = "start"
		default:
			e.kind = "restart"
		}
		events[i] = e
	}
	// In time order.
	for i := 1; i < len(events); i++ {
		for j := i; j > 0 && events[j].at < events[j-1].at; j-- {
			events[j], events[j-1] = events[j-1], events[j]
		}
	}
	return initial, events
}

// trialWorker is one process of a trial.
type trialWorker struct {
	name, instance string
	p              *proc
	sig            syscall.Signal // the signal sent to it, 0 if none
	replaced       bool           // restarted: a newer process has its name
	// event: started by an event (a start or restart part-way), not with
	// the trial.
	event bool
}

// exited reports whether the process has ended.
func (w *trialWorker) exited() bool {
	select {
	case <-w.p.exited:
		return true
	default:
		return false
	}
}

// workersRun is a trial's processes and what happened to them.
type workersRun struct {
	t     *testing.T
	bin   string
	args  func(name, instance string) []string
	tally *workersTally
	// complete reports whether the shared work is already complete, when
	// starting a worker then would begin new work (a backup); nil when
	// it would not (a restore).
	complete func() bool
	ws       []*trialWorker
	next     int
	t0       time.Time
	log      []string
	last     time.Time
}

// start starts a worker process, killed at the end of the test if it
// is still running.
func (wr *workersRun) start(name, instance string) *trialWorker {
	if name == "" {
		name = fmt.Sprint("w", wr.next)
		wr.next++
	}
	args := wr.args(name, instance)
	p := &proc{args: args, exited: make(chan struct{})}
	p.cmd = exec.Command(wr.bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.Env = cleanEnv()
	if err := p.cmd.Start(); err != nil {
		wr.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	wr.t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	w := &trialWorker{name: name, instance: instance, p: p}
	wr.ws = append(wr.ws, w)
	return w
}

// running are the workers started and neither signalled nor exited.
func (wr *workersRun) running() []*trialWorker {
	var out []*trialWorker
	for _, w := range wr.ws {
		if w.sig == 0 && !w.exited() {
			out = append(out, w)
		}
	}
	return out
}

// apply carries out one event; one that cannot hit anything (a kill
// with no worker running, a restart with none stopped) starts a worker
// instead, so that every event changes the group.
func (wr *workersRun) apply(e workerEvent) {
	at := time.Since(wr.t0).Seconds()
	note := func(s string) { wr.log = append(wr.log, fmt.Sprintf("%s@%.1fs", s, at)) }
	kind := e.kind
	var stopped []*trialWorker
	for _, w := range wr.ws {
		if w.sig != 0 && !w.replaced && w.exited() {
			stopped = append(stopped, w)
		}
	}
	running := wr.running()
	if (kind == "kill" || kind == "term") && len(running) == 0 || kind == "restart" && len(stopped) == 0 {
		kind = "start"
	}
	if kind == "start" || kind == "restart" {
		if wr.complete != nil && wr.complete() {
			wr.tally.Skipped++
			note("SKIP-" + strings.ToUpper(kind))
			return
		}
	}
	wr.last = time.Now()
	switch kind {
	case "kill", "term":
		w := running[e.pick%len(running)]
		w.sig = syscall.SIGKILL
		if kind == "term" {
			w.sig = syscall.SIGTERM
		}
		if w.exited() || w.p.cmd.Process.Signal(w.sig) != nil {
			wr.tally.Late++
			note(strings.ToUpper(kind) + "-LATE " + w.name)
			return
		}
		if kind == "kill" {
			wr.tally.Kills++
		} else {
			wr.tally.Terms++
		}
		note(strings.ToUpper(kind) + " " + w.name)
	case "start":
		instance := ""
		name := fmt.Sprint("w", wr.next)
		if e.static {
			instance = "static-" + name
		}
		wr.start("", instance).event = true
		wr.tally.Starts++
		note(fmt.Sprintf("START %s%s", name, staticMark(instance)))
	case "restart":
		old := stopped[e.pick%len(stopped)]
		old.replaced = true
		instance := old.instance
		if instance == "" && e.static {
			instance = "static-" + old.name
		}
		wr.start(old.name, instance).event = true
		wr.tally.Restarts++
		if instance != "" {
			wr.tally.StaticRestarts++
		}
		note(fmt.Sprintf("RESTART %s%s", old.name, staticMark(instance)))
	}
}

func staticMark(instance string) string {
	if instance == "" {
		return ""
	}
	return "(static)"
}

// runEvents starts the initial workers and applies the events at their
// times.
func (wr *workersRun) runEvents(initial []bool, events []workerEvent) {
	wr.t0 = time.Now()
	wr.last = wr.t0
	var names []string
	for _, static := range initial {
		instance := ""
		if static {
			instance = fmt.Sprint("static-w", wr.next)
		}
		w := wr.start("", instance)
		names = append(names, w.name+staticMark(instance))
	}
	wr.log = append(wr.log, "workers "+strings.Join(names, ","))
	for _, e := range events {
		if d := time.Until(wr.t0.Add(e.at)); d > 0 {
			time.Sleep(d)
		}
		wr.apply(e)
	}
}

// waitAll waits for every worker to exit (within limit in all) and
// checks how each ended: a worker never signalled exits 0, one stopped by
// SIGTERM exits 0 (it had finished) or termCode (or dies of the signal,
// caught before its handler was installed), one killed dies of the
// signal or had finished; none crashes (a failure, but the trial goes on
// to judge what the run left). It returns those that exited 0.
func (wr *workersRun) waitAll(limit time.Duration, termCode int) []*trialWorker {
	t := wr.t
	t.Helper()
	// kfake never expires a member whose JoinGroup response it could not
	// deliver (the process was killed while it waited to join) once the
	// leader has synced: it arms the member's session timer only on a
	// delivered reply, and the pending-sync timer is cleared by the
	// leader's SyncGroup. The ghost holds its partitions forever and the
	// others wait for them. A Kafka broker expires it after the session
	// timeout. Workaround: a run stalled for stallAfter gets one more
	// worker, whose join rebalances the group without the ghost.
	stall := time.Now().Add(stallAfter)
	for _, w := range wr.ws {
		if !w.p.waitFor(time.Until(stall)) {
			wr.start("", "").event = true
			wr.tally.Nudges++
			wr.log = append(wr.log, fmt.Sprintf("NUDGE@%.1fs", time.Since(wr.t0).Seconds()))
			break
		}
	}
	deadline := time.Now().Add(limit)
	var outs []*trialWorker
	for _, w := range wr.ws {
		if !w.p.waitFor(time.Until(deadline)) {
			for _, o := range wr.ws {
				o.p.cmd.Process.Kill()
			}
			t.Fatalf("worker %s still running after %v (events %s):\n%v\n%s", w.name, limit, strings.Join(wr.log, " "), w.p, wr.stderrs())
		}
		code := w.p.code()
		switch {
		case w.p.crashed():
			t.Errorf("worker %s crashed:\n%v", w.name, w.p)
		case code == 0:
			outs = append(outs, w)
		case w.sig == syscall.SIGKILL && code == -1:
		case w.sig == syscall.SIGTERM && (code == -1 || code == termCode):
		default:
			// Not fatal: the trial goes on to count what the run left.
			t.Errorf("worker %s (signal %v) exited %d (events %s):\n%v", w.name, w.sig, code, strings.Join(wr.log, " "), w.p)
		}
	}
	return outs
}

// explainFailure logs the trial's events and every worker's standard
// error when the trial fails.
func (wr *workersRun) explainFailure() {
	wr.t.Cleanup(func() {
		if wr.t.Failed() {
			wr.t.Logf("events: %s\n%s", strings.Join(wr.log, " "), wr.stderrs())
		}
	})
}

// stderrs is every worker's standard error, for a failure's message.
func (wr *workersRun) stderrs() string {
	var b strings.Builder
	for _, w := range wr.ws {
		fmt.Fprintf(&b, "--- %s (signal %v):\n%s\n", w.name, w.sig, w.p.stderr.String())
	}
	return b.String()
}

// stallAfter is how long after the events the trial waits before it
// starts a worker to rebalance the group past a kfake ghost member (see
// waitAll): a healthy run ends well within it (a dead member's partitions
// move after the 6 s session timeout; a rebalance waits at most the 20 s
// rebalance timeout).
const stallAfter = 60 * time.Second

// waitStopped waits for the signalled workers to exit, so that what they
// leave (a checkpoint, a leave request) is done before the trial decides
// whether any worker is left.
func (wr *workersRun) waitStopped(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for _, w := range wr.ws {
		if w.sig != 0 && !w.p.waitFor(time.Until(deadline)) {
			wr.t.Fatalf("worker %s did not exit within %v of %v:\n%v", w.name, limit, w.sig, w.p)
		}
	}
}

// outputID is the id that a worker's output names in field.
func outputID(t *testing.T, w *trialWorker, field string) string {
	t.Helper()
	var line map[string]any
	if err := json.Unmarshal(w.p.stdout.Bytes(), &line); err != nil {
		t.Fatalf("worker %s output %q: %v", w.name, w.p.stdout.String(), err)
	}
	id, _ := line[field].(string)
	if id == "" {
		t.Fatalf("worker %s output %q: no %s", w.name, w.p.stdout.String(), field)
	}
	return id
}

// sameID returns the one id that the workers' outputs name in field; it
// fails when they name several.
func sameID(t *testing.T, ws []*trialWorker, field string) string {
	t.Helper()
	id := ""
	for _, w := range ws {
		got := outputID(t, w, field)
		if id != "" && got != id {
			t.Fatalf("the workers finished different %ss: %q and %q", field, id, got)
		}
		id = got
	}
	return id
}

// TestWorkersTrials runs seeded trials of backups and restores shared by
// workers that are killed, stopped, started and restarted at random
// moments, and checks that each result equals a one-process run's.
func TestWorkersTrials(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ktape, runs processes")
	}
	cfg := workersConfig(t)
	t.Logf("workers trials: %d per kind, seeds %d to %d", cfg.trials, cfg.seed, cfg.seed+uint64(cfg.trials)-1)
	bin := buildKtape(t)
	t.Run("backup", func(t *testing.T) { workersBackupTrials(t, cfg, bin) })
	t.Run("restore", func(t *testing.T) { workersRestoreTrials(t, cfg, bin) })
}

// workersBackupTrials: a snapshot of workersCluster shared by workers.
func workersBackupTrials(t *testing.T, cfg workersSettings, bin string) {
	start := time.Now()
	tally := &workersTally{Kind: "backup", Seed: cfg.seed}
	c := workersCluster(t)
	t0 := time.Now()
	stOne, one, _ := singleBackup(t, bin, c)
	base := time.Since(t0)
	tally.OneProcess = base.Seconds()
	// The offsets of every partition, as the one-process backup holds
	// them (franz-go decoding).
	wantOffsets := map[string]map[int32][]int64{}
	for _, mt := range one.Topics {
		wantOffsets[mt.Name] = map[int32][]int64{}
		for i := range mt.Partitions {
			rs, err := crosscheck.RepositoryRecords(context.Background(), stOne, mt.Name, &mt.Partitions[i])
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				wantOffsets[mt.Name][mt.Partitions[i].Partition] = append(wantOffsets[mt.Name][mt.Partitions[i].Partition], r.Offset)
			}
		}
	}
	window := max(3*time.Second, base+time.Second)
	cfg.each(t, tally, func(t *testing.T, seed uint64, r *rand.Rand) {
		dir := t.TempDir()
		group := fmt.Sprint("trial-", seed)
		wr := &workersRun{t: t, bin: bin, tally: tally,
			args: func(name, instance string) []string {
				a := []string{"backup", "--brokers", c.Addrs()[0], "--repo", dir, "--json", "--skip-groups", "--workers-group", group,
					"--worker-name", name, "--checkpoint-interval", "200ms", "--worker-session-timeout", "6s", "--worker-rebalance-timeout", "20s",
					"--progress-interval", "0"}
				if instance != "" {
					a = append(a, "--worker-instance-id", instance)
				}
				return a
			},
			complete: func() bool { return backupDone(t, dir) },
		}
		wr.explainFailure()
		initial, events := planWorkers(r, window)
		tally.Initial += len(initial)
		wr.runEvents(initial, events)
		wr.waitStopped(time.Minute)
		ending := ""
		if len(wr.running()) == 0 && !backupDone(t, dir) {
			// No worker left: finalize, if every partition is done;
			// otherwise a worker started now finishes the run.
			p := startProc(t, bin, "backup", "finalize", "--repo", dir, "--workers-group", group, "--json")
			if !p.waitFor(time.Minute) {
				p.signal(syscall.SIGKILL)
				t.Fatalf("finalize did not end within a minute:\n%v", p)
			}
			switch {
			case p.err == nil:
				tally.Finalized++
				ending = "FINALIZE"
			case p.code() == 1 && strings.Contains(p.stderr.String(), "not complete"):
				wr.start("", "")
				tally.FinalWorkers++
				ending = "FINAL-WORKER"
			default:
				t.Fatalf("finalize: %v", p)
			}
		}
		outs := wr.waitAll(2*time.Minute, 130)
		took := time.Since(wr.t0)
		st, rp := openRepo(t, dir)
		ctx := context.Background()
		ids, err := rp.Backups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 || len(ids) > 2 {
			t.Fatalf("the repository holds backups %v, want the workers' one", ids)
		}
		// Every worker finished the shared backup, ids[0], except that a
		// worker started part-way may have joined just as it finished,
		// been elected the group's leader (the members that knew the run
		// had left), found no unfinished run and begun the group's next
		// backup, by design: an incremental continuing ids[0].
		for _, w := range outs {
			switch id := outputID(t, w, "backup"); {
			case id == ids[0]:
			case len(ids) == 2 && id == ids[1] && w.event:
			default:
				t.Fatalf("worker %s finished backup %s; the repository holds %v", w.name, id, ids)
			}
		}
		m, err := rp.Manifest(ctx, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 2 {
			next, err := rp.Manifest(ctx, ids[1])
			if err != nil {
				t.Fatal(err)
			}
			if next.Parent != m.ID {
				t.Fatalf("backup %s, after the shared %s, continues %q", next.ID, m.ID, next.Parent)
			}
			// The data did not change: the next backup holds the same.
			sameBatches(t, stOne, one, st, next)
			if code, out, errOut := runKtape(t, "verify", "--repo", dir, "--deep", next.ID); code != 0 {
				t.Errorf("verify --deep %s: exit %d\n%s%s", next.ID, code, out, errOut)
			}
			tally.NextBackups++
			ending += " NEXT-BACKUP " + next.ID
		}
		lost, dup, misplaced := countBackupOffsets(t, st, m, wantOffsets, tally)
		t.Logf("backup seed %d: %s %s; %.1fs (%.1fs after the last event), %d records compared: %d lost, %d duplicated, %d misplaced",
			seed, strings.Join(wr.log, " "), ending, took.Seconds(), time.Since(wr.last).Seconds(), 12*100, lost, dup, misplaced)
		tally.trialDone(took, time.Since(wr.last))
		sameBatches(t, stOne, one, st, m)
		repotest.CheckAgainstBroker(t, c, st, m)
		if code, out, errOut := runKtape(t, "verify", "--repo", dir, "--deep", m.ID); code != 0 {
			t.Errorf("verify --deep %s: exit %d\n%s%s", m.ID, code, out, errOut)
		}
		var left []string
		filepath.WalkDir(filepath.Join(dir, "checkpoints"), func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				left = append(left, path)
			}
			return nil
		})
		if len(left) > 0 {
			t.Errorf("checkpoints left after the backup: %v", left)
		}
	})
	tally.report(t, start)
}

// countBackupOffsets decodes each segment of every partition of m on its
// own (so that an offset stored twice is counted, not refused) and
// compares the offsets with want's: each once, none else.
func countBackupOffsets(t *testing.T, st *storage.Store, m *repo.Manifest, want map[string]map[int32][]int64, tally *workersTally) (lost, dup, misplaced int64) {
	t.Helper()
	ctx := context.Background()
	for topic, parts := range want {
		mt := m.Topic(topic)
		for p, offs := range parts {
			tally.Records += int64(len(offs))
			var mp *repo.Partition
			if mt != nil {
				mp = mt.Partition(p)
			}
			if mp == nil {
				t.Errorf("backup %s lacks %s/%d", m.ID, topic, p)
				lost += int64(len(offs))
				continue
			}
			seen := map[int64]int{}
			for _, ref := range mp.Segments {
				one := *mp
				one.Segments = []repo.SegmentRef{ref}
				rs, err := crosscheck.RepositoryRecords(ctx, st, topic, &one)
				if err != nil {
					t.Fatalf("backup %s: %v", m.ID, err)
				}
				for _, r := range rs {
					seen[r.Offset]++
				}
			}
			for _, o := range offs {
				switch n := seen[o]; {
				case n == 0:
					lost++
				case n > 1:
					dup += int64(n - 1)
				}
				delete(seen, o)
			}
			misplaced += int64(len(seen))
		}
	}
	tally.Lost += lost
	tally.Duplicated += dup
	tally.Misplaced += misplaced
	if lost+dup+misplaced > 0 {
		t.Errorf("backup %s: %d offsets lost, %d stored more than once, %d not in the one-process backup", m.ID, lost, dup, misplaced)
	}
	return lost, dup, misplaced
}

// slowProduce delays every produce request the cluster answers by d (only
// the connection it delays waits), so that a restore lasts long enough
// for workers to come and go part-way.
func slowProduce(c *kfaketest.Cluster, d time.Duration) {
	k := c.Kfake()
	k.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		k.SleepControl(func() { time.Sleep(d) })
		return nil, nil, false
	})
}

// workersGroups are the consumer group offsets committed on the restore
// trials' source: the restores translate them to the target (--groups).
var workersGroups = map[string]map[string]map[int32]int64{
	"billing":   {"orders": {0: 0, 1: 37, 2: 100, 5: 64}},
	"analytics": {"orders": {3: 5}, "audit": {0: 99, 4: 50}},
}

// placedRecord is where a restored record is, and what it holds.
type placedRecord struct {
	partition int32
	offset    int64
	what      string
}

// targetRecords reads every record of the restored topics from c with
// franz-go, by topic and key.
func targetRecords(t *testing.T, c *kfaketest.Cluster) map[string]map[string][]placedRecord {
	out := map[string]map[string][]placedRecord{}
	for _, topic := range []string{"orders", "audit"} {
		out[topic] = map[string][]placedRecord{}
		for _, r := range c.ConsumeAll(t, topic) {
			out[topic][string(r.Key)] = append(out[topic][string(r.Key)], placedRecord{r.Partition, r.Offset, describeRecord(r)})
		}
	}
	return out
}

// workersRestoreTrials: a backup of workersData, with consumer groups,
// restored by workers into a cluster whose produce requests are slowed.
func workersRestoreTrials(t *testing.T, cfg workersSettings, bin string) {
	start := time.Now()
	tally := &workersTally{Kind: "restore", Seed: cfg.seed}
	src := workersData(t)
	commitOffsets(t, src.Client(t, namedTopics), workersGroups)
	backupDir := t.TempDir()
	cmd := exec.Command(bin, "backup", "--brokers", src.Addrs()[0], "--repo", backupDir, "--json")
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	args := func(c *kfaketest.Cluster, dir string) []string {
		return []string{"restore", "--brokers", c.Addrs()[0], "--repo", dir, "--json", "--groups", "--progress-interval", "0"}
	}
	// The one-process restore, into a target as slow as the workers':
	// the reference, and how long a restore takes.
	one := kfaketest.Start(t)
	slowProduce(one, 30*time.Millisecond)
	t0 := time.Now()
	cmd = exec.Command(bin, args(one, copyDir(t, backupDir))...)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("one-process restore: %v\n%s", err, out)
	}
	base := time.Since(t0)
	tally.OneProcess = base.Seconds()
	want := targetRecords(t, one)
	wantGroups := fetchOffsets(t, one.Client(t, namedTopics), "billing", "analytics")
	n := 0
	for _, recs := range want {
		n += len(recs)
	}
	if n != 2*6*20*5 || len(wantGroups) != 2 {
		t.Fatalf("the one-process restore wrote %d records and groups %v", n, wantGroups)
	}
	window := max(3*time.Second, base+time.Second)
	cfg.each(t, tally, func(t *testing.T, seed uint64, r *rand.Rand) {
		dir := copyDir(t, backupDir)
		c := kfaketest.Start(t)
		slowProduce(c, 30*time.Millisecond)
		wr := &workersRun{t: t, bin: bin, tally: tally,
			args: func(_, instance string) []string {
				a := append(args(c, dir), "--workers-group", "restorers", "--worker-session-timeout", "6s", "--worker-rebalance-timeout", "20s")
				if instance != "" {
					a = append(a, "--worker-instance-id", instance)
				}
				return a
			},
		}
		wr.explainFailure()
		initial, events := planWorkers(r, window)
		tally.Initial += len(initial)
		wr.runEvents(initial, events)
		wr.waitStopped(time.Minute)
		ending := ""
		if len(wr.running()) == 0 {
			// No worker left: one started now finishes the restore (or
			// finds it finished).
			wr.start("", "")
			tally.FinalWorkers++
			ending = "FINAL-WORKER"
		}
		// A restore worker stopped by SIGTERM fails (exit 1) with the
		// interruption; its partitions are complete up to what the
		// target holds.
		outs := wr.waitAll(2*time.Minute, 1)
		took := time.Since(wr.t0)
		id := sameID(t, outs, "restore")
		ctx := context.Background()
		_, rp := openRepo(t, dir)
		if id == "" {
			t.Errorf("no worker finished the restore")
		} else if d, err := rp.RestoreDone(ctx, id); err != nil || d == nil {
			t.Errorf("restore %s not recorded as done: %v", id, err)
		}
		if keys, err := filepath.Glob(filepath.Join(dir, "restores", "*")); err != nil || len(keys) != 1 {
			t.Errorf("restores logged: %v (%v), want the one", keys, err)
		}
		got := targetRecords(t, c)
		var lost, dup, misplaced int64
		// The first few differences in detail, then only counted.
		shown := 0
		errorf := func(format string, args ...any) {
			if shown++; shown <= 10 {
				t.Errorf(format, args...)
			}
		}
		for topic, recs := range want {
			for key, w := range recs {
				tally.Records++
				switch g := got[topic][key]; {
				case len(g) == 0:
					lost++
					errorf("%s %s: missing from the target", topic, key)
				case len(g) > 1:
					dup += int64(len(g) - 1)
					errorf("%s %s: %d times in the target: %v", topic, key, len(g), g)
				case g[0] != w[0]:
					misplaced++
					errorf("%s %s: %+v in the target, %+v after a one-process restore", topic, key, g[0], w[0])
				}
			}
			for key, g := range got[topic] {
				if _, ok := recs[key]; !ok {
					misplaced += int64(len(g))
					errorf("%s %s: in the target, not after a one-process restore: %v", topic, key, g)
				}
			}
		}
		tally.Lost += lost
		tally.Duplicated += dup
		tally.Misplaced += misplaced
		if shown > 10 {
			t.Errorf("and %d more differences", shown-10)
		}
		t.Logf("restore seed %d: %s %s; %.1fs (%.1fs after the last event), %d records compared: %d lost, %d duplicated, %d misplaced",
			seed, strings.Join(wr.log, " "), ending, took.Seconds(), time.Since(wr.last).Seconds(), n, lost, dup, misplaced)
		tally.trialDone(took, time.Since(wr.last))
		if gotGroups := fetchOffsets(t, c.Client(t, namedTopics), "billing", "analytics"); fmt.Sprint(gotGroups) != fmt.Sprint(wantGroups) {
			t.Errorf("group offsets %v, after a one-process restore %v", gotGroups, wantGroups)
		}
	})
	tally.report(t, start)
}
