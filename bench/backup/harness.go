package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ktape/ktape/bench/source"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
)

const (
	ktapePkg = "github.com/ktape/ktape/cmd/ktape"
	// serverStartTimeout bounds how long a broker may take to say
	// "ready" (generating, and for kfake loading, the topic), and to exit
	// after SIGTERM.
	serverStartTimeout = 10 * time.Minute
	serverStopTimeout  = 30 * time.Second
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

// notes say what is not comparable about an impl's numbers.
var notes = map[string]string{
	"ktape":      "ktape backup --compression none",
	"ktape-auto": "ktape backup --compression auto (zstd frames unless the batches are compressed)",
	"kcat":       "kcat -C -e -f %k%s > file (librdkafka defaults)",
	"kgo":        "franz-go consumer, key+value to a file in 64 KiB writes",
	"raw":        "ktape client.Fetcher, bytes discarded: the ceiling",
}

// harness runs the matrix.
type harness struct {
	opts    *options
	self    string   // this executable, re-run as broker and child
	selfEnv []string // added to those processes' environment
	stdout  io.Writer
	stderr  io.Writer

	dir      string
	ktapeBin string
	kcatBin  string
}

func (h *harness) run() error {
	h.stderr = &syncWriter{w: h.stderr}
	tmp, err := os.MkdirTemp(h.opts.dir, "ktape-bench-backup-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	h.dir = tmp

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
			order := slices.Clone(impls)
			rng := rand.New(rand.NewPCG(uint64(rep), uint64(ci)))
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			for _, impl := range order {
				i++
				fmt.Fprintf(h.stderr, "backup: run %d/%d: %s, %s, %s, %d partitions, %s\n",
					i, total, impl, c.target, sizeString(c.size), c.p, c.codec)
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
func (h *harness) resolveImpls() ([]string, error) {
	var out []string
	for _, impl := range h.opts.impls {
		switch impl {
		case "ktape", "ktape-auto":
			if h.ktapeBin != "" {
				break
			}
			h.ktapeBin = h.opts.ktapeBin
			if h.ktapeBin == "" {
				h.ktapeBin = filepath.Join(h.dir, "ktape")
				fmt.Fprintf(h.stderr, "backup: building %s\n", ktapePkg)
				if msg, err := goBuild(h.ktapeBin, ktapePkg); err != nil {
					return nil, fmt.Errorf("build ktape (or pass -ktape-bin): %v\n%s", err, msg)
				}
			}
		case "kcat":
			bin, err := exec.LookPath(h.opts.kcatBin)
			if err != nil {
				return nil, fmt.Errorf("-impl kcat: %w (install Debian's kcat, or leave kcat out of -impl)", err)
			}
			h.kcatBin = bin
		}
		out = append(out, impl)
	}
	return out, nil
}

// runOne makes one measurement: a fresh broker, a fresh client process.
func (h *harness) runOne(impl, target string, size int64, p int, codec string, rep int) result {
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

	srv, err := h.startServer(target, size, p, codec)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer srv.kill()
	ti := srv.info
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
	case "ktape", "ktape-auto":
		comp := "none"
		if impl == "ktape-auto" {
			comp = "auto"
		}
		cmd = exec.CommandContext(ctx, h.ktapeBin, "backup", "--brokers", srv.addr, "--repo", repoDir, "--json",
			"--compression", comp, "--memory", strconv.FormatInt(h.opts.memory, 10))
	case "kcat":
		cmd = exec.CommandContext(ctx, h.kcatBin, "-C", "-b", srv.addr, "-t", ti.Topic, "-e", "-o", "beginning", "-q", "-f", "%k%s")
		if fileOutput, err = os.Create(outFile); err != nil {
			res.Error = err.Error()
			return res
		}
		defer fileOutput.Close()
	case "kgo", "raw":
		cmd = exec.CommandContext(ctx, h.self, "-child", "-impl", impl, "-brokers", srv.addr, "-topic", ti.Topic,
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
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.CPUUser = round(time.Duration(ru.Utime.Nano()).Seconds(), 3)
			res.CPUSys = round(time.Duration(ru.Stime.Nano()).Seconds(), 3)
			res.MaxRSSMB = round(float64(ru.Maxrss)/1024, 1)
		}
	}
	stats, statsErr := srv.stop()
	res.ServerBytes, res.ServerFetches = stats.Bytes, stats.Fetches
	if runErr != nil {
		res.Error = fmt.Sprintf("%s: %v: %s", impl, runErr, lastLines(stderr.String(), 5))
		return res
	}
	res.Seconds = round(wall.Seconds(), 3)
	res.CPUSeconds = round(res.CPUUser+res.CPUSys, 3)
	res.MBPerSec = round(float64(ti.Bytes)/1e6/wall.Seconds(), 1)
	res.ValueMBPerSec = round(float64(ti.ValueBytes)/1e6/wall.Seconds(), 1)
	res.CPUPerGiB = round(res.CPUSeconds/(float64(ti.Bytes)/(1<<30)), 3)

	switch impl {
	case "ktape", "ktape-auto":
		err = h.checkKtape(ctx, &res, stdout.Bytes(), repoDir)
		res.OutputBytes = dirSize(repoDir)
	case "kcat":
		res.OutputBytes = fileSize(outFile)
		recordBytes := int64(source.DefaultKeyBytes + source.DefaultValueBytes)
		res.RecordsSeen = res.OutputBytes / recordBytes
		if res.OutputBytes%recordBytes != 0 {
			err = fmt.Errorf("kcat wrote %d bytes, not a whole number of %d-byte records", res.OutputBytes, recordBytes)
		}
	case "kgo", "raw":
		var cr childResult
		if err = json.Unmarshal([]byte(lastLine(stdout.String())), &cr); err != nil {
			err = fmt.Errorf("child printed %q: %w", lastLine(stdout.String()), err)
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

// checkKtape reads ktape's summary line and the backup's manifest: every
// partition from 0 to its high watermark, and segments holding every
// batch and byte of the topic.
func (h *harness) checkKtape(ctx context.Context, res *result, out []byte, repoDir string) error {
	var done struct {
		MessageType string `json:"message_type"`
		Backup      string `json:"backup"`
		Batches     int64  `json:"batches"`
		Bytes       int64  `json:"bytes"`
	}
	line := lastLine(string(out))
	if err := json.Unmarshal([]byte(line), &done); err != nil || done.MessageType != "backup_done" {
		return fmt.Errorf("ktape printed %q, not a backup_done line (%v)", line, err)
	}
	res.BytesSeen, res.BatchesSeen = done.Bytes, done.Batches
	st, err := storage.OpenExisting(ctx, repoDir)
	if err != nil {
		return fmt.Errorf("open the repository: %w", err)
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, false)
	if err != nil {
		return fmt.Errorf("open the repository: %w", err)
	}
	m, err := r.Manifest(ctx, done.Backup)
	if err != nil {
		return fmt.Errorf("backup %s: %w", done.Backup, err)
	}
	var batches, data int64
	for _, t := range m.Topics {
		for _, p := range t.Partitions {
			if p.From != 0 || p.To != p.HighWatermark || len(p.Gaps) > 0 {
				return fmt.Errorf("partition %d backed up [%d, %d) with %d gaps; high watermark %d", p.Partition, p.From, p.To, len(p.Gaps), p.HighWatermark)
			}
			res.RecordsSeen += p.To - p.From
			for _, s := range p.Segments {
				batches += int64(s.Batches)
				data += int64(s.DataBytes)
			}
		}
	}
	if batches != res.BatchesSeen || data != res.BytesSeen {
		return fmt.Errorf("the manifest's segments hold %d batches, %d bytes; ktape reported %d, %d", batches, data, res.BatchesSeen, res.BytesSeen)
	}
	return nil
}

// serverProc is a running broker process.
type serverProc struct {
	cmd   *exec.Cmd
	addr  string
	info  source.TopicInfo
	lines chan string // its stdout, closed at EOF
	done  bool
}

func (h *harness) startServer(target string, size int64, p int, codec string) (*serverProc, error) {
	mode := "serve-" + target
	args := []string{mode, "-partitions", strconv.Itoa(p), "-size", strconv.FormatInt(size, 10), "-codec", codec,
		"-batch-bytes", strconv.FormatInt(h.opts.batchBytes, 10), "-pool-bytes", strconv.FormatInt(h.opts.poolBytes, 10)}
	cmd := exec.Command(h.self, args...)
	cmd.Env = append(os.Environ(), h.selfEnv...)
	cmd.Stderr = h.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mode, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", mode, err)
	}
	s := &serverProc{cmd: cmd, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	timeout := time.After(serverStartTimeout)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				s.kill()
				return nil, fmt.Errorf("%s exited before it was ready", mode)
			}
			switch {
			case strings.HasPrefix(line, "{"):
				if err := json.Unmarshal([]byte(line), &s.info); err != nil {
					s.kill()
					return nil, fmt.Errorf("%s topic line %q: %w", mode, line, err)
				}
			case strings.HasPrefix(line, "listening on "):
				s.addr = strings.TrimPrefix(line, "listening on ")
			case line == "ready":
				if s.addr == "" || s.info.Records == 0 {
					s.kill()
					return nil, fmt.Errorf("%s said ready without its address and topic", mode)
				}
				return s, nil
			}
		case <-timeout:
			s.kill()
			return nil, fmt.Errorf("%s not ready after %v", mode, serverStartTimeout)
		}
	}
}

// stop asks the broker to exit and returns its counters (zero for kfake,
// which keeps none).
func (s *serverProc) stop() (source.Stats, error) {
	var st source.Stats
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return st, fmt.Errorf("signal the broker: %w", err)
	}
	var last string
	timeout := time.After(serverStopTimeout)
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
			return st, fmt.Errorf("the broker did not exit within %v of SIGTERM", serverStopTimeout)
		}
	}
	err := s.cmd.Wait()
	s.done = true
	if err != nil {
		return st, fmt.Errorf("broker: %w", err)
	}
	if last != "" {
		if err := json.Unmarshal([]byte(last), &st); err != nil {
			return st, fmt.Errorf("broker stats %q: %w", last, err)
		}
		if st.Errors > 0 {
			return st, fmt.Errorf("the broker closed %d connections on bad requests (its log is above)", st.Errors)
		}
	}
	return st, nil
}

// kill ends the broker if stop has not.
func (s *serverProc) kill() {
	if s.done {
		return
	}
	s.done = true
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// syncWriter serialises writes from the harness and the goroutines os/exec
// starts to copy its children's output.
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
func goBuild(out, pkg string) (string, error) {
	g := "go"
	if e := os.Getenv("GO"); e != "" {
		g = e
	}
	msg, err := exec.Command(g, "build", "-o", out, pkg).CombinedOutput()
	return string(msg), err
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
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

func round(x float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(x*p) / p
}

// sizeString prints a byte count in the largest binary unit that divides
// it, for progress lines and tables.
func sizeString(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%d B", n)
}
