package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/ktape/ktape/bench/internal/harness"
	"github.com/ktape/ktape/bench/sink"
	"github.com/ktape/ktape/bench/source"
)

// result is one output line.
type result struct {
	Impl       string `json:"impl"`
	Note       string `json:"note,omitempty"`
	Target     string `json:"target"`
	Partitions int    `json:"partitions"`
	Codec      string `json:"codec"`
	SizeBytes  int64  `json:"size_bytes"`
	BatchBytes int64  `json:"batch_bytes"`
	Rep        int    `json:"rep"`

	TopicBytes      int64 `json:"topic_bytes"`
	TopicBatches    int64 `json:"topic_batches"`
	TopicRecords    int64 `json:"topic_records"`
	TopicValueBytes int64 `json:"topic_value_bytes"`
	InputBytes      int64 `json:"input_bytes"`

	Seconds       float64 `json:"seconds"`
	MBPerSec      float64 `json:"mb_per_sec"`
	ValueMBPerSec float64 `json:"value_mb_per_sec"`
	CPUSeconds    float64 `json:"cpu_s"`
	CPUUser       float64 `json:"cpu_user_s"`
	CPUSys        float64 `json:"cpu_sys_s"`
	CPUPerGiB     float64 `json:"cpu_s_per_gib"`
	MaxRSSMB      float64 `json:"max_rss_mb"`

	RecordsSent    int64 `json:"records_sent"`
	TargetRecords  int64 `json:"target_records"`
	TargetBatches  int64 `json:"target_batches"`
	TargetBytes    int64 `json:"target_bytes"`
	TargetRequests int64 `json:"target_requests"`

	Error string `json:"error,omitempty"`
}

func (r result) Conf() harness.Conf {
	return harness.Conf{Target: r.Target, Size: r.SizeBytes, Partitions: r.Partitions, Codec: r.Codec, BatchBytes: r.BatchBytes}
}
func (r result) Client() string  { return r.Impl }
func (r result) Failure() string { return r.Error }

// notes say what each impl does, in every line.
var notes = map[string]string{
	"ktape":     "ktape restore from a local repository",
	"ktape-age": "ktape restore from a local repository encrypted to one age key (--identity-file)",
	"kcat":      "kcat -P from a file (-K/-D delimiters, idempotent, linger.ms=5, batch.size=1000000)",
	"kgo":       "franz-go producer from a file (defaults, codec set)",
	"naive":     "a naive replayer on ktape's protocol layer: each plain segment read whole through the page cache, then its batches sent untouched (base offset zeroed), one Produce request each, 16 in flight, no checks, no overlap of reading and sending",
}

// runner runs the matrix.
type runner struct {
	opts    *options
	self    string   // this executable, re-run as broker and child
	selfEnv []string // added to those processes' environment
	stdout  io.Writer
	stderr  io.Writer

	dir      string
	inputs   string
	launcher string
	ktapeBin string
	kcatBin  string
}

func (r *runner) run() error {
	r.stderr = &harness.SyncWriter{W: r.stderr}
	tmp, err := os.MkdirTemp(r.opts.dir, "ktape-bench-restore-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	r.dir = tmp
	r.inputs = r.opts.inputs
	if r.inputs == "" {
		r.inputs = filepath.Join(tmp, "inputs")
	}
	if r.launcher, err = harness.Launcher(r.dir); err != nil {
		return err
	}
	// ktape is needed to prepare the repository, whoever restores.
	if r.ktapeBin, err = harness.Ktape(r.opts.ktapeBin, r.dir, r.stderr); err != nil {
		return err
	}
	if slices.Contains(r.opts.impls, "kcat") {
		if r.kcatBin, err = harness.Kcat(r.opts.kcatBin); err != nil {
			return err
		}
	}
	needRepo := slices.Contains(r.opts.impls, "ktape") || slices.Contains(r.opts.impls, "naive")
	needAgeRepo := slices.Contains(r.opts.impls, "ktape-age")
	needRecords := slices.Contains(r.opts.impls, "kcat") || slices.Contains(r.opts.impls, "kgo")

	type conf struct {
		target string
		in     *input
		key    inputKey
	}
	inputs := map[inputKey]*input{}
	var confs []conf
	for _, t := range r.opts.targets {
		for _, s := range r.opts.sizes {
			for _, p := range r.opts.partitions {
				for _, c := range r.opts.codecs {
					k := inputKey{s, p, c}
					if inputs[k] == nil {
						in, err := r.prepare(k, needRepo, needAgeRepo, needRecords)
						if err != nil {
							return err
						}
						inputs[k] = in
					}
					confs = append(confs, conf{t, inputs[k], k})
				}
			}
		}
	}
	failed, total, i := 0, r.opts.reps*len(confs)*len(r.opts.impls), 0
	enc := json.NewEncoder(r.stdout)
	// Rounds outermost, impls in a different order in each (see
	// bench/backup's "The machine").
	for rep := 1; rep <= r.opts.reps; rep++ {
		for ci, c := range confs {
			for _, impl := range harness.Shuffled(r.opts.impls, rep, ci) {
				i++
				fmt.Fprintf(r.stderr, "restore: run %d/%d: %s, %s, %s, %d partitions, %s\n",
					i, total, impl, c.target, harness.SizeString(c.key.size), c.key.partitions, c.key.codec)
				res := r.runOne(impl, c.target, c.key, c.in, rep)
				if res.Error != "" {
					failed++
					fmt.Fprintf(r.stderr, "restore: %s failed: %s\n", impl, res.Error)
				} else {
					fmt.Fprintf(r.stderr, "restore: %s: %.0f MB/s, %.2f CPU-s/GiB, %.0f MB max RSS\n", impl, res.MBPerSec, res.CPUPerGiB, res.MaxRSSMB)
				}
				if err := enc.Encode(res); err != nil {
					return fmt.Errorf("write result: %w", err)
				}
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d runs failed", failed, total)
	}
	return nil
}

// runOne makes one measurement: a fresh broker, a fresh client process.
func (r *runner) runOne(impl, target string, k inputKey, in *input, rep int) result {
	note := notes[impl]
	if r.opts.note != "" {
		note += "; " + r.opts.note
	}
	ti := in.topic
	res := result{Impl: impl, Note: note, Target: target, Partitions: k.partitions, Codec: k.codec,
		SizeBytes: k.size, BatchBytes: r.opts.batchBytes, Rep: rep,
		TopicBytes: ti.Bytes, TopicBatches: ti.Batches, TopicRecords: ti.Records, TopicValueBytes: ti.ValueBytes}

	// ktape restore creates the topic; the peers produce into one that
	// exists.
	srv, err := r.startTarget(target, ti, !isKtape(impl))
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer srv.Kill()

	time.Sleep(r.opts.settle)
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.timeout)
	defer cancel()
	var (
		cmd            *exec.Cmd
		stdout, stderr bytes.Buffer
	)
	switch impl {
	case "ktape", "ktape-age":
		repoDir := in.repoDir()
		if impl == "ktape-age" {
			repoDir = in.ageRepoDir()
		}
		// Every run is a new restore: the log an earlier run left in the
		// repository (restores/) would make this one find it done.
		if err := os.RemoveAll(filepath.Join(repoDir, "restores")); err != nil {
			res.Error = err.Error()
			return res
		}
		res.InputBytes = harness.DirSize(repoDir)
		args := []string{"restore", "--brokers", srv.Addr, "--repo", repoDir,
			"--backup", "latest", "--json", "--memory", strconv.FormatInt(r.opts.memory, 10)}
		if impl == "ktape-age" {
			args = append(args, "--identity-file", in.ageKey())
		}
		cmd = exec.CommandContext(ctx, r.ktapeBin, args...)
	case "kcat":
		res.InputBytes = harness.FileSize(in.recordsPath())
		args := []string{"-P", "-b", srv.Addr, "-t", ti.Topic, "-K", kcatDelim(keyDelim), "-D", kcatDelim(recordDelim), "-q",
			"-X", "enable.idempotence=true", "-X", "linger.ms=5", "-X", "batch.size=1000000"}
		if k.codec != "none" {
			args = append(args, "-z", k.codec)
		}
		cmd = exec.CommandContext(ctx, r.kcatBin, args...)
		f, err := os.Open(in.recordsPath())
		if err != nil {
			res.Error = err.Error()
			return res
		}
		defer f.Close()
		cmd.Stdin = f
	case "kgo":
		res.InputBytes = harness.FileSize(in.recordsPath())
		cmd = exec.CommandContext(ctx, r.self, "-child", "-impl", "kgo", "-brokers", srv.Addr, "-topic", ti.Topic,
			"-in", in.recordsPath(), "-codec", k.codec, "-timeout", r.opts.timeout.String())
		cmd.Env = append(os.Environ(), r.selfEnv...)
	case "naive":
		res.InputBytes = harness.DirSize(in.repoDir())
		cmd = exec.CommandContext(ctx, r.self, "-child", "-impl", "naive", "-brokers", srv.Addr, "-topic", ti.Topic,
			"-in", in.repoDir(), "-codec", k.codec, "-timeout", r.opts.timeout.String())
		cmd.Env = append(os.Environ(), r.selfEnv...)
	default:
		res.Error = "unknown impl " + impl
		return res
	}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	use, runErr := harness.Measure(r.launcher, cmd)
	res.CPUUser, res.CPUSys, res.MaxRSSMB = harness.Round(use.User, 3), harness.Round(use.Sys, 3), harness.Round(use.MaxRSSMB, 1)
	got, stopErr := r.stopTarget(srv, target)
	res.TargetRecords, res.TargetBatches, res.TargetBytes, res.TargetRequests = got.Records, got.Batches, got.Bytes, got.Requests
	if runErr != nil {
		res.Error = fmt.Sprintf("%s: %v: %s", impl, runErr, harness.LastLines(stderr.String(), 5))
		return res
	}
	wall := use.Wall.Seconds()
	res.Seconds = harness.Round(wall, 3)
	res.CPUSeconds = harness.Round(use.CPU(), 3)
	res.MBPerSec = harness.Round(float64(ti.Bytes)/1e6/wall, 1)
	res.ValueMBPerSec = harness.Round(float64(ti.ValueBytes)/1e6/wall, 1)
	res.CPUPerGiB = harness.Round(use.CPU()/(float64(ti.Bytes)/(1<<30)), 3)

	switch impl {
	case "ktape", "ktape-age":
		err = checkKtape(&res, stdout.Bytes(), ti)
	case "kgo", "naive":
		var cr childResult
		if err = json.Unmarshal([]byte(harness.LastLine(stdout.String())), &cr); err != nil {
			err = fmt.Errorf("child printed %q: %w", harness.LastLine(stdout.String()), err)
		}
		res.RecordsSent = cr.Records
	}
	switch {
	case err != nil:
		res.Error = err.Error()
	case stopErr != nil:
		res.Error = stopErr.Error()
	case got.Corrupt > 0:
		res.Error = fmt.Sprintf("the sink found %d corrupt batches", got.Corrupt)
	case target == "sink" && got.Codecs[k.codec] != got.Batches:
		res.Error = fmt.Sprintf("the sink received batches in codecs %v, not all %s", got.Codecs, k.codec)
	case res.TargetRecords != ti.Records:
		res.Error = fmt.Sprintf("the %s holds %d records; the topic %d", target, res.TargetRecords, ti.Records)
	case res.RecordsSent != 0 && res.RecordsSent != ti.Records:
		res.Error = fmt.Sprintf("%s reported %d records delivered; the topic holds %d", impl, res.RecordsSent, ti.Records)
	case (isKtape(impl) || impl == "naive") && target == "sink" && (got.Batches != ti.Batches || got.Bytes != ti.Bytes):
		res.Error = fmt.Sprintf("the sink received %d batches, %d bytes; the backup holds %d, %d", got.Batches, got.Bytes, ti.Batches, ti.Bytes)
	}
	return res
}

// isKtape says whether impl is ktape restore, which creates the topic and
// sends the backup's batches as they are.
func isKtape(impl string) bool { return impl == "ktape" || impl == "ktape-age" }

// checkKtape reads ktape restore's summary line: every batch, record and
// byte of the topic restored.
func checkKtape(res *result, out []byte, ti source.TopicInfo) error {
	var done struct {
		MessageType   string `json:"message_type"`
		Partitions    int    `json:"partitions"`
		TopicsCreated int    `json:"topics_created"`
		Batches       int64  `json:"batches"`
		Records       int64  `json:"records"`
		Bytes         int64  `json:"bytes"`
	}
	line := harness.LastLine(string(out))
	if err := json.Unmarshal([]byte(line), &done); err != nil || done.MessageType != "restore_done" {
		return fmt.Errorf("ktape printed %q, not a restore_done line (%v)", line, err)
	}
	res.RecordsSent = done.Records
	switch {
	case done.TopicsCreated != 1:
		return fmt.Errorf("ktape created %d topics, not 1", done.TopicsCreated)
	case done.Partitions != ti.Partitions || done.Batches != ti.Batches || done.Records != ti.Records || done.Bytes != ti.Bytes:
		return fmt.Errorf("ktape restored %d partitions, %d batches, %d records, %d bytes; the topic holds %d, %d, %d, %d",
			done.Partitions, done.Batches, done.Records, done.Bytes, ti.Partitions, ti.Batches, ti.Records, ti.Bytes)
	}
	return nil
}

// startTarget starts an empty broker for the topic: this program re-run as
// serve-sink or serve-kfake; with exists the topic is created first.
func (r *runner) startTarget(target string, ti source.TopicInfo, exists bool) (*harness.Server, error) {
	p := strconv.Itoa(ti.Partitions)
	var args []string
	switch target {
	case "sink":
		args = []string{"serve-sink", "-partitions", p, "-auto-create=false", "-verify=" + strconv.FormatBool(r.opts.verify)}
		if exists {
			args = append(args, "-topics", ti.Topic)
		}
	case "kfake":
		args = []string{"serve-kfake", "-topic", ti.Topic, "-partitions", p, "-load=false", "-create=" + strconv.FormatBool(exists)}
	default:
		return nil, fmt.Errorf("unknown target %s", target)
	}
	return harness.StartServer(args[0], r.self, args, r.selfEnv, r.stderr)
}

// stopTarget stops the broker and returns what it received.
func (r *runner) stopTarget(srv *harness.Server, target string) (sink.Totals, error) {
	var got sink.Totals
	last, err := srv.Stop()
	if err != nil {
		return got, err
	}
	if last == nil {
		return got, fmt.Errorf("%s printed no counters", srv.Name)
	}
	switch target {
	case "sink":
		err = json.Unmarshal(last, &got)
	case "kfake":
		var st harness.KfakeStats
		err = json.Unmarshal(last, &st)
		got.Records = st.Records
	}
	if err != nil {
		return got, fmt.Errorf("%s counters %q: %w", srv.Name, last, err)
	}
	return got, nil
}
