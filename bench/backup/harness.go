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
	"strconv"
	"strings"
	"time"

	"github.com/ktape/ktape/bench/internal/harness"
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

	Seconds       float64 `json:"seconds"`
	MBPerSec      float64 `json:"mb_per_sec"`
	ValueMBPerSec float64 `json:"value_mb_per_sec"`
	CPUSeconds    float64 `json:"cpu_s"`
	CPUUser       float64 `json:"cpu_user_s"`
	CPUSys        float64 `json:"cpu_sys_s"`
	CPUPerGiB     float64 `json:"cpu_s_per_gib"`
	MaxRSSMB      float64 `json:"max_rss_mb"`

	BytesSeen   int64 `json:"bytes_seen"`
	BatchesSeen int64 `json:"batches_seen"`
	RecordsSeen int64 `json:"records_seen"`
	OutputBytes int64 `json:"output_bytes"`

	ServerBytes   int64 `json:"server_bytes"`
	ServerFetches int64 `json:"server_fetches"`

	Error string `json:"error,omitempty"`
}

func (r result) Conf() harness.Conf {
	return harness.Conf{Target: r.Target, Size: r.SizeBytes, Partitions: r.Partitions, Codec: r.Codec, BatchBytes: r.BatchBytes}
}
func (r result) Client() string  { return r.Impl }
func (r result) Failure() string { return r.Error }

// notes say what is not comparable about an impl's numbers.
var notes = map[string]string{
	"ktape":      "ktape backup --compression none",
	"ktape-age":  "ktape backup --compression none, into a new repository encrypted to one age key (--encrypt-to, --identity-file)",
	"ktape-auto": "ktape backup --compression auto (zstd frames unless the batches are compressed)",
	"kcat":       "kcat -C -e -f %k%s > file (librdkafka defaults)",
	"kgo":        "franz-go consumer, key+value to a file in 64 KiB writes",
	"raw":        "ktape client.Fetcher, bytes discarded: the ceiling",
}

// runner runs the matrix.
type runner struct {
	opts    *options
	self    string   // this executable, re-run as broker and child
	selfEnv []string // added to those processes' environment
	stdout  io.Writer
	stderr  io.Writer

	dir      string
	launcher string
	ktapeBin string
	kcatBin  string

	// ktape-age's key, made once per invocation: the private key's file
	// and its public key.
	ageKey       string
	ageRecipient string
}

func (h *runner) run() error {
	h.stderr = &harness.SyncWriter{W: h.stderr}
	tmp, err := os.MkdirTemp(h.opts.dir, "ktape-bench-backup-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	h.dir = tmp
	if h.launcher, err = harness.Launcher(tmp); err != nil {
		return err
	}

	impls, err := h.resolveImpls()
	if err != nil {
		return err
	}
	type conf struct {
		target string
		size   int64
		p      int
		codec  string
	}
	var confs []conf
	for _, t := range h.opts.targets {
		for _, s := range h.opts.sizes {
			for _, p := range h.opts.partitions {
				for _, c := range h.opts.codecs {
					confs = append(confs, conf{t, s, p, c})
				}
			}
		}
	}
	failed, total, i := 0, h.opts.reps*len(confs)*len(impls), 0
	enc := json.NewEncoder(h.stdout)
	// Rounds outermost, impls in a different order in each: every impl
	// meets the machine in each of its states (see "The machine" in
	// main.go), and a slow spell spreads over all of them.
	for rep := h.opts.firstRep; rep < h.opts.firstRep+h.opts.reps; rep++ {
		for ci, c := range confs {
			for _, impl := range harness.Shuffled(impls, rep, ci) {
				i++
				fmt.Fprintf(h.stderr, "backup: run %d/%d: %s, %s, %s, %d partitions, %s\n",
					i, total, impl, c.target, harness.SizeString(c.size), c.p, c.codec)
				res := h.runOne(impl, c.target, c.size, c.p, c.codec, rep)
				if res.Error != "" {
					failed++
					fmt.Fprintf(h.stderr, "backup: %s failed: %s\n", impl, res.Error)
				} else {
					fmt.Fprintf(h.stderr, "backup: %s: %.0f MB/s, %.2f CPU-s/GiB, %.0f MB max RSS\n", impl, res.MBPerSec, res.CPUPerGiB, res.MaxRSSMB)
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

// resolveImpls finds the executables: ktape (built unless given) and kcat.
// kcat missing is an error only if it was asked for by name.
func (h *runner) resolveImpls() ([]string, error) {
	var (
		out []string
		err error
	)
	for _, impl := range h.opts.impls {
		switch impl {
		case "ktape", "ktape-auto", "ktape-age":
			if h.ktapeBin == "" {
				if h.ktapeBin, err = harness.Ktape(h.opts.ktapeBin, h.dir, h.stderr); err != nil {
					return nil, err
				}
			}
			if impl == "ktape-age" {
				h.ageKey = filepath.Join(h.dir, "age.key")
				if h.ageRecipient, err = harness.Keygen(h.ktapeBin, h.ageKey); err != nil {
					return nil, err
				}
			}
		case "kcat":
			if h.kcatBin, err = harness.Kcat(h.opts.kcatBin); err != nil {
				return nil, err
			}
		}
		out = append(out, impl)
	}
	return out, nil
}

// runOne makes one measurement: a fresh broker, a fresh client process.
func (h *runner) runOne(impl, target string, size int64, p int, codec string, rep int) result {
	note := notes[impl]
	if h.opts.note != "" {
		note += "; " + h.opts.note
	}
	res := result{Impl: impl, Note: note, Target: target, Partitions: p, Codec: codec,
		SizeBytes: size, BatchBytes: h.opts.batchBytes, Rep: rep}
	runDir, err := os.MkdirTemp(h.dir, "run-")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer os.RemoveAll(runDir)

	srv, ti, err := h.startServer(target, size, p, codec)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer srv.Kill()
	res.TopicBytes, res.TopicBatches, res.TopicRecords, res.TopicValueBytes = ti.Bytes, ti.Batches, ti.Records, ti.ValueBytes

	time.Sleep(h.opts.settle)
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.timeout)
	defer cancel()
	var (
		cmd        *exec.Cmd
		stdout     bytes.Buffer
		stderr     bytes.Buffer
		outFile    = filepath.Join(runDir, "out")
		repoDir    = filepath.Join(runDir, "repo")
		fileOutput *os.File
	)
	switch impl {
	case "ktape", "ktape-auto", "ktape-age":
		comp := "none"
		if impl == "ktape-auto" {
			comp = "auto"
		}
		args := []string{"backup", "--brokers", srv.Addr, "--repo", repoDir, "--json",
			"--compression", comp, "--memory", strconv.FormatInt(h.opts.memory, 10)}
		if impl == "ktape-age" {
			args = append(args, "--encrypt-to", h.ageRecipient, "--identity-file", h.ageKey)
		}
		cmd = exec.CommandContext(ctx, h.ktapeBin, args...)
	case "kcat":
		cmd = exec.CommandContext(ctx, h.kcatBin, "-C", "-b", srv.Addr, "-t", ti.Topic, "-e", "-o", "beginning", "-q", "-f", "%k%s")
		if fileOutput, err = os.Create(outFile); err != nil {
			res.Error = err.Error()
			return res
		}
		defer fileOutput.Close()
	case "kgo", "raw":
		cmd = exec.CommandContext(ctx, h.self, "-child", "-impl", impl, "-brokers", srv.Addr, "-topic", ti.Topic,
			"-partitions", strconv.Itoa(p), "-out", outFile, "-memory", strconv.FormatInt(h.opts.memory, 10))
		cmd.Env = append(os.Environ(), h.selfEnv...)
	default:
		res.Error = "unknown impl " + impl
		return res
	}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if fileOutput != nil {
		cmd.Stdout = fileOutput
	}
	use, runErr := harness.Measure(h.launcher, cmd)
	res.CPUUser, res.CPUSys, res.MaxRSSMB = harness.Round(use.User, 3), harness.Round(use.Sys, 3), harness.Round(use.MaxRSSMB, 1)
	stats, statsErr := h.stopServer(srv)
	res.ServerBytes, res.ServerFetches = stats.Bytes, stats.Fetches
	if runErr != nil {
		res.Error = fmt.Sprintf("%s: %v: %s", impl, runErr, harness.LastLines(stderr.String(), 5))
		return res
	}
	wall := use.Wall
	res.Seconds = harness.Round(wall.Seconds(), 3)
	res.CPUSeconds = harness.Round(res.CPUUser+res.CPUSys, 3)
	res.MBPerSec = harness.Round(float64(ti.Bytes)/1e6/wall.Seconds(), 1)
	res.ValueMBPerSec = harness.Round(float64(ti.ValueBytes)/1e6/wall.Seconds(), 1)
	res.CPUPerGiB = harness.Round(res.CPUSeconds/(float64(ti.Bytes)/(1<<30)), 3)

	switch impl {
	case "ktape", "ktape-auto", "ktape-age":
		var (
			tot harness.BackupTotals
			key string
		)
		if impl == "ktape-age" {
			key = h.ageKey
		}
		tot, err = harness.CheckBackup(ctx, stdout.Bytes(), repoDir, key)
		res.BytesSeen, res.BatchesSeen, res.RecordsSeen = tot.Bytes, tot.Batches, tot.Records
		res.OutputBytes = harness.DirSize(repoDir)
	case "kcat":
		res.OutputBytes = harness.FileSize(outFile)
		recordBytes := int64(source.DefaultKeyBytes + source.DefaultValueBytes)
		res.RecordsSeen = res.OutputBytes / recordBytes
		if res.OutputBytes%recordBytes != 0 {
			err = fmt.Errorf("kcat wrote %d bytes, not a whole number of %d-byte records", res.OutputBytes, recordBytes)
		}
	case "kgo", "raw":
		var cr childResult
		if err = json.Unmarshal([]byte(harness.LastLine(stdout.String())), &cr); err != nil {
			err = fmt.Errorf("child printed %q: %w", harness.LastLine(stdout.String()), err)
			break
		}
		res.BytesSeen, res.BatchesSeen, res.RecordsSeen, res.OutputBytes = cr.Bytes, cr.Batches, cr.Records, cr.OutputBytes
		if impl == "kgo" && res.OutputBytes != res.RecordsSeen*int64(source.DefaultKeyBytes+source.DefaultValueBytes) {
			err = fmt.Errorf("kgo wrote %d bytes for %d records", res.OutputBytes, res.RecordsSeen)
		}
	}
	switch {
	case err != nil:
		res.Error = err.Error()
	case statsErr != nil:
		res.Error = statsErr.Error()
	case res.RecordsSeen != ti.Records:
		res.Error = fmt.Sprintf("saw %d records, the topic holds %d", res.RecordsSeen, ti.Records)
	case res.BytesSeen != 0 && res.BytesSeen != ti.Bytes:
		res.Error = fmt.Sprintf("saw %d batch bytes, the topic holds %d", res.BytesSeen, ti.Bytes)
	case res.BatchesSeen != 0 && res.BatchesSeen != ti.Batches:
		res.Error = fmt.Sprintf("saw %d batches, the topic holds %d", res.BatchesSeen, ti.Batches)
	case (impl == "raw" || strings.HasPrefix(impl, "ktape")) && res.BytesSeen == 0:
		res.Error = "no batch bytes reported"
	}
	return res
}

// startServer starts a broker process serving the generated topic: this
// program re-run as serve-source or serve-kfake.
func (h *runner) startServer(target string, size int64, p int, codec string) (*harness.Server, source.TopicInfo, error) {
	var ti source.TopicInfo
	mode := "serve-" + target
	args := []string{mode, "-partitions", strconv.Itoa(p), "-size", strconv.FormatInt(size, 10), "-codec", codec,
		"-batch-bytes", strconv.FormatInt(h.opts.batchBytes, 10), "-pool-bytes", strconv.FormatInt(h.opts.poolBytes, 10)}
	srv, err := harness.StartServer(mode, h.self, args, h.selfEnv, h.stderr)
	if err != nil {
		return nil, ti, err
	}
	if err := json.Unmarshal(srv.Info, &ti); err != nil || ti.Records == 0 {
		srv.Kill()
		return nil, ti, fmt.Errorf("%s said ready without its topic (%q: %v)", mode, srv.Info, err)
	}
	return srv, ti, nil
}

// stopServer stops the broker and returns its counters (zero for kfake,
// which keeps none).
func (h *runner) stopServer(srv *harness.Server) (source.Stats, error) {
	var st source.Stats
	last, err := srv.Stop()
	if err != nil {
		return st, err
	}
	if srv.Name == "serve-source" && last != nil {
		if err := json.Unmarshal(last, &st); err != nil {
			return st, fmt.Errorf("broker stats %q: %w", last, err)
		}
		if st.Errors > 0 {
			return st, fmt.Errorf("the broker closed %d connections on bad requests (its log is above)", st.Errors)
		}
	}
	return st, nil
}
