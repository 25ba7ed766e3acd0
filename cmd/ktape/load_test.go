package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ktape/ktape/bench/sink"
	"github.com/ktape/ktape/bench/source"
	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
)

// The load test's knobs. The default is the CI form: 1,000 partitions of
// a few small batches each, which goes through every per-partition path
// (plans, fetch sessions, segments, indexes, producers) a thousand times
// but moves few bytes. KTAPE_LONG=1 is the long form (make
// reliability-load): 10 GiB of batches. KTAPE_LOAD_BYTES sets the size of
// the large run (suffixes KiB, MiB, GiB), KTAPE_LOAD_PARTITIONS the
// partitions and KTAPE_LOAD_MEMORY the --memory budget.
const (
	loadPartitions = 1000
	loadCIBytes    = 96 << 20
	loadLongBytes  = 10 << 30
	loadMemory     = 64 << 20
	// loadCIMemory is the CI form's budget. Both of its runs must hold
	// more data than the budget, or the flatness check compares a run that
	// cannot fill the budget with one that can: memory rightly grows with
	// the data until the budget is full (a 64 MiB budget against 16 and
	// 49 MiB runs failed in CI on exactly that, 55 against 90 MiB live).
	loadCIMemory = 16 << 20
	// loadTopic is the source's topic, restored under its own name.
	loadTopic = "load"
	// loadSampleEvery: every this many partitions one (and the last) is
	// read back record by record through franz-go.
	loadSampleEvery = 97
)

type loadTestConfig struct {
	partitions int
	sizes      []int64 // batch bytes of each run: the small one first
	memory     int64
	batchBytes int
	poolBytes  int64
	long       bool
}

func loadConfigFromEnv(t *testing.T) loadTestConfig {
	t.Helper()
	c := loadTestConfig{partitions: loadPartitions, memory: loadCIMemory, batchBytes: 16 << 10, poolBytes: 8 << 20}
	big := int64(loadCIBytes)
	if os.Getenv("KTAPE_LONG") == "1" {
		c.long, big, c.memory, c.batchBytes, c.poolBytes = true, loadLongBytes, loadMemory, 64<<10, 32<<20
	}
	if s := os.Getenv("KTAPE_LOAD_BYTES"); s != "" {
		b, err := source.ParseSize("KTAPE_LOAD_BYTES", s)
		if err != nil {
			t.Fatal(err)
		}
		big = b
		if b >= 1<<30 {
			c.long, c.memory, c.batchBytes, c.poolBytes = true, loadMemory, 64<<10, 32<<20
		}
	}
	if s := os.Getenv("KTAPE_LOAD_PARTITIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("KTAPE_LOAD_PARTITIONS %q: want a positive number", s)
		}
		c.partitions = n
	}
	if s := os.Getenv("KTAPE_LOAD_MEMORY"); s != "" {
		b, err := source.ParseSize("KTAPE_LOAD_MEMORY", s)
		if err != nil {
			t.Fatal(err)
		}
		c.memory = b
	}
	// The small run is a tenth of the large one (a quarter in the CI
	// form, where a tenth would be one batch a partition): memory that
	// grows with the data shows as a larger peak in the second.
	div := int64(10)
	if !c.long {
		div = 4
	}
	c.sizes = []int64{big / div, big}
	return c
}

// TestLoad backs up a topic of 1,000 partitions served by bench/source
// with `ktape backup`, restores it with `ktape restore` into bench/sink,
// both in this process, and proves that:
//
//   - nothing was lost or duplicated: every partition's backup covers
//     offsets 0 to its high watermark with every batch; the sink received
//     per partition exactly the source's record and batch counts, every
//     batch CRC-valid, and a digest of the batches' contents in order
//     equal to the source's (so no batch lost, repeated, reordered or
//     altered, even where a loss and a duplicate would cancel in a count);
//     and a sample of partitions is read back from the repository record
//     by record through franz-go and compared with what the source
//     generated;
//   - memory is flat: RSS and the Go heap, sampled every 100 ms, peak
//     below the --memory budget plus a fixed allowance, and the peaks of
//     a run ten times (CI: four times) larger are no higher than those of
//     the small run but for a fixed margin;
//   - nothing leaks: after both runs, with the source and sink closed,
//     the goroutines and open file descriptors are back to what they were
//     before (a goroutine dump on failure).
//
// The CI form is small in bytes; KTAPE_LONG=1 (make reliability-load)
// moves 10 GiB and prints a summary.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: not in -short")
	}
	cfg := loadConfigFromEnv(t)
	t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) }) // ktape sets one in-process
	// Settle what earlier tests left (franz-go clients closing, kfake
	// clusters shutting down) before taking the baseline.
	waitQuiet(2 * time.Second)
	// ktape's commands listen for SIGINT and SIGTERM; the first
	// signal.Notify of a process starts os/signal's one receiving
	// goroutine, which lives as long as the process: start it now, so
	// that it is in the baseline and not counted as a leak.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR2)
	signal.Stop(sigs)
	baseG, baseFD := runtime.NumGoroutine(), countFDs(t)

	var results []loadResult
	for _, size := range cfg.sizes {
		// A failed check is reported and the next run goes on: every
		// check below is worth its answer (loadRun stops the test itself
		// when a run cannot finish).
		results = append(results, loadRun(t, cfg, size))
	}

	// Memory flat: the large run peaks no higher than the small one but
	// for a fixed margin. The margin absorbs sampling and the collector's
	// timing: the heap is collected when it reaches the soft limit or
	// doubles, whichever comes first, so two peaks of the same workload
	// differ by up to a few tens of MiB.
	small, large := results[0], results[1]
	if small.Bytes < cfg.memory {
		t.Errorf("the small run holds %d MiB, less than the --memory budget of %d MiB: flatness cannot be judged (raise KTAPE_LOAD_BYTES or lower KTAPE_LOAD_MEMORY)",
			small.Bytes>>20, cfg.memory>>20)
	}
	for _, m := range []struct {
		what         string
		small, large int64
		margin       int64
		skip         bool
	}{
		{"backup peak RSS", small.Backup.PeakRSS, large.Backup.PeakRSS, flatRSSMargin, raceEnabled},
		{"backup peak live heap", small.Backup.PeakLive, large.Backup.PeakLive, flatLiveMargin, false},
		{"restore peak RSS", small.Restore.PeakRSS, large.Restore.PeakRSS, flatRSSMargin, raceEnabled},
		{"restore peak live heap", small.Restore.PeakLive, large.Restore.PeakLive, flatLiveMargin, false},
	} {
		if !m.skip && m.large > m.small+m.margin {
			t.Errorf("memory not flat: %s %d MiB at %d MiB of data, %d MiB at %d MiB (margin %d MiB)",
				m.what, m.small>>20, small.Bytes>>20, m.large>>20, large.Bytes>>20, m.margin>>20)
		}
	}

	// No leaks: goroutines and descriptors back to the baseline once the
	// source and sink (closed by loadRun) are gone.
	endG, endFD := waitLeaks(baseG, baseFD, countFDsFunc(t), 10*time.Second)
	if endG > baseG {
		var buf bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Errorf("goroutine leak: %d before, %d after the runs:\n%s", baseG, endG, buf.String())
	}
	if endFD > baseFD {
		t.Errorf("file descriptor leak: %d open before, %d after the runs: %s", baseFD, endFD, listFDs())
	}

	lost, dup := int64(0), int64(0)
	for _, r := range results {
		lost += r.Lost
		dup += r.Dup
	}
	summary := struct {
		Partitions    int          `json:"partitions"`
		MemoryBudget  int64        `json:"memory_budget"`
		Runs          []loadResult `json:"runs"`
		GoroutinesIn  int          `json:"goroutines_before"`
		GoroutinesOut int          `json:"goroutines_after"`
		FDsIn         int          `json:"fds_before"`
		FDsOut        int          `json:"fds_after"`
		Lost          int64        `json:"records_lost"`
		Duplicated    int64        `json:"records_duplicated"`
	}{cfg.partitions, cfg.memory, results, baseG, endG, baseFD, endFD, lost, dup}
	line, _ := json.Marshal(summary)
	t.Logf("load summary: %s", line)
	var b strings.Builder
	fmt.Fprintf(&b, "\nLOAD: %d partitions, --memory %d MiB, goroutines %d -> %d, fds %d -> %d, lost %d, duplicated %d\n",
		cfg.partitions, cfg.memory>>20, baseG, endG, baseFD, endFD, lost, dup)
	fmt.Fprintf(&b, "%-8s %10s %12s %8s %9s %13s %14s %14s %15s\n", "phase", "MiB", "records", "seconds", "MB/s",
		"peak RSS MiB", "RSS before MiB", "peak heap MiB", "peak live MiB")
	for _, r := range results {
		for _, ph := range []struct {
			name string
			p    loadPhase
		}{{"backup", r.Backup}, {"restore", r.Restore}} {
			fmt.Fprintf(&b, "%-8s %10d %12d %8.1f %9.0f %13d %14d %14d %15d\n", ph.name, r.Bytes>>20, r.Records, ph.p.Seconds,
				float64(r.Bytes)/1e6/ph.p.Seconds, ph.p.PeakRSS>>20, ph.p.RSSBefore>>20, ph.p.PeakHeap>>20, ph.p.PeakLive>>20)
		}
	}
	t.Log(b.String())
}

// Memory bounds. What ktape holds is bounded by --memory (buffers,
// queues, segments in flight) plus what does not scale with the data:
// per-partition state (plans, fetch sessions, indexes being written or
// read, producer state) for 1,000 partitions, encoders, and the runtime.
const (
	// liveAllowance bounds the live heap above the budget (and above
	// what the process held live before the command): measured at 1,000
	// partitions, 9-13 MiB for backup and restore at --memory 64MiB.
	liveAllowance = 32 << 20
	// rssAllowance bounds the resident set above the budget (and above
	// the RSS before the command). ktape sets the collector's soft
	// memory limit to the budget plus 128 MiB (softMemoryLimit): garbage
	// is left to grow up to that before it is collected, so the resident
	// set may too. Measured at 1 GiB: 64-71 MiB above the budget.
	rssAllowance = 128 << 20
	// The large run's peaks may exceed the small run's by these: a
	// collection happens earlier or later, a sample catches a peak or
	// misses it.
	flatRSSMargin  = 48 << 20
	flatLiveMargin = 16 << 20
)

// loadResult is one run: a backup and a restore of one topic.
type loadResult struct {
	Bytes    int64     `json:"bytes"`
	Records  int64     `json:"records"`
	Batches  int64     `json:"batches"`
	Backup   loadPhase `json:"backup"`
	Restore  loadPhase `json:"restore"`
	Lost     int64     `json:"records_lost"`
	Dup      int64     `json:"records_duplicated"`
	Sampled  int       `json:"partitions_read_by_franz_go"`
	SampledR int       `json:"records_read_by_franz_go"`
}

// loadPhase is what the memory sampler saw during one command.
type loadPhase struct {
	Seconds    float64 `json:"seconds"`
	PeakRSS    int64   `json:"peak_rss"`
	PeakHeap   int64   `json:"peak_heap"`      // live and not yet collected
	PeakLive   int64   `json:"peak_live_heap"` // live as of each collection
	RSSBefore  int64   `json:"rss_before"`
	LiveBefore int64   `json:"live_heap_before"`
	Samples    int     `json:"samples"`
}

// loadRun generates a topic of size batch bytes, serves it, backs it up,
// checks the repository, restores it into a sink and checks what arrived.
func loadRun(t *testing.T, cfg loadTestConfig, size int64) loadResult {
	t.Helper()
	ctx := context.Background()
	topic, err := source.Generate(source.TopicConfig{Name: loadTopic, Partitions: cfg.partitions, Bytes: size,
		BatchBytes: cfg.batchBytes, Codec: record.LZ4, PoolBytes: cfg.poolBytes})
	if err != nil {
		t.Fatal(err)
	}
	records, batches, size := topic.Totals()
	res := loadResult{Bytes: size, Records: records, Batches: batches}
	t.Logf("run of %d MiB: %d partitions, %d batches, %d records", size>>20, cfg.partitions, batches, records)

	srv, err := source.NewServer(topic, source.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("source: %v", err)
		}
	}()

	dir, err := os.MkdirTemp("", "ktape-load-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	mem := strconv.FormatInt(cfg.memory, 10)

	var out string
	res.Backup, out = loadPhaseRun(t, cfg.memory, "backup", "--brokers", ln.Addr().String(), "--repo", dir, "--memory", mem,
		"--skip-groups", "--json", "--progress-interval", "0")
	var done struct {
		Backup  string `json:"backup"`
		Records int64  `json:"records"`
		Batches int64  `json:"batches"`
	}
	if err := json.Unmarshal([]byte(out), &done); err != nil {
		t.Fatalf("backup --json: %q: %v", out, err)
	}
	if done.Records != records || done.Batches != batches {
		t.Errorf("backup: %d records in %d batches, the source served %d in %d", done.Records, done.Batches, records, batches)
	}

	// The repository: every partition from 0 to its high watermark, every
	// batch in its segments; a sample read back through franz-go.
	st, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Manifest(ctx, done.Backup)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Topics) != 1 || m.Topics[0].Name != loadTopic || len(m.Topics[0].Partitions) != cfg.partitions {
		t.Fatalf("backup %s: want one topic %q of %d partitions, got %d topics", m.ID, loadTopic, cfg.partitions, len(m.Topics))
	}
	for i := range m.Topics[0].Partitions {
		p := &m.Topics[0].Partitions[i]
		hw := topic.HighWatermark(int(p.Partition))
		n := 0
		for _, s := range p.Segments {
			n += s.Batches
		}
		if p.From != 0 || p.To != hw || n != topic.NumBatches(int(p.Partition)) || len(p.Gaps) > 0 {
			t.Errorf("backup of %s/%d: offsets [%d, %d) in %d batches, %d gaps; the source holds [0, %d) in %d",
				loadTopic, p.Partition, p.From, p.To, n, len(p.Gaps), hw, topic.NumBatches(int(p.Partition)))
		}
		if int(p.Partition)%loadSampleEvery != 0 && int(p.Partition) != cfg.partitions-1 {
			continue
		}
		recs, err := crosscheck.RepositoryRecords(ctx, st, loadTopic, p)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(recs)) != hw {
			t.Errorf("franz-go reads %d records of %s/%d from the repository, the source holds %d", len(recs), loadTopic, p.Partition, hw)
		}
		key, value := make([]byte, source.DefaultKeyBytes), make([]byte, source.DefaultValueBytes)
		for j, rec := range recs {
			topic.Record(int(p.Partition), int64(j), key, value)
			if rec.Offset != int64(j) || !bytes.Equal(rec.Key, key) || !bytes.Equal(rec.Value, value) {
				t.Fatalf("franz-go reads record %d of %s/%d from the repository as offset %d, key %x: not what the source served (key %x)",
					j, loadTopic, p.Partition, rec.Offset, rec.Key, key)
			}
		}
		res.Sampled++
		res.SampledR += len(recs)
	}
	if t.Failed() {
		return res
	}

	// The restore, into a sink that CRC-checks and digests every batch.
	sk, err := sink.Start(sink.Options{Partitions: cfg.partitions, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sk.Close(); err != nil {
			t.Errorf("sink: %v", err)
		}
	}()
	res.Restore, out = loadPhaseRun(t, cfg.memory, "restore", "--brokers", sk.Addr(), "--repo", dir, "--memory", mem,
		"--json", "--progress-interval", "0")
	var rdone struct {
		Records int64 `json:"records"`
		Batches int64 `json:"batches"`
	}
	if err := json.Unmarshal([]byte(out), &rdone); err != nil {
		t.Fatalf("restore --json: %q: %v", out, err)
	}
	if rdone.Records != records || rdone.Batches != batches {
		t.Errorf("restore: %d records in %d batches, the source served %d in %d", rdone.Records, rdone.Batches, records, batches)
	}
	tot := sk.Totals()
	if tot.Corrupt != 0 || tot.Records != records || tot.Batches != batches {
		t.Errorf("the sink received %d records in %d batches, %d corrupt; the source served %d in %d", tot.Records, tot.Batches, tot.Corrupt, records, batches)
	}
	parts := sk.Partitions(loadTopic)
	if len(parts) != cfg.partitions {
		t.Fatalf("the sink holds %d partitions of %s, want %d", len(parts), loadTopic, cfg.partitions)
	}
	var buf []byte
	bad := 0
	for p, got := range parts {
		hw := topic.HighWatermark(p)
		res.Lost += max(0, hw-got.Records)
		res.Dup += max(0, got.Records-hw)
		var want uint32
		for i := range topic.NumBatches(p) {
			buf = topic.AppendBatch(buf[:0], p, i)
			want = sink.DigestBatch(want, record.Batch(buf))
		}
		if got.Records != hw || got.Batches != int64(topic.NumBatches(p)) || got.Digest != want {
			if bad++; bad <= 10 {
				t.Errorf("restored %s/%d: %d records in %d batches, digest %08x; the source holds %d in %d, digest %08x",
					loadTopic, p, got.Records, got.Batches, got.Digest, hw, topic.NumBatches(p), want)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d partitions in all differ", bad)
	}
	return res
}

// loadPhaseRun runs one ktape command in this process while sampling
// memory every 100 ms, and returns what it saw and the command's stdout.
func loadPhaseRun(t *testing.T, memory int64, args ...string) (loadPhase, string) {
	t.Helper()
	// Start each phase from what the process holds without garbage, so
	// that its peak is the phase's own.
	runtime.GC()
	debug.FreeOSMemory()
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	ph := loadPhase{RSSBefore: readRSS(), LiveBefore: int64(live[0].Value.Uint64())}
	// KTAPE_LOAD_HEAPPROFILE=DIR writes a heap profile of each phase as
	// its heap peaks, for finding what grows.
	prof := ""
	if dir := os.Getenv("KTAPE_LOAD_HEAPPROFILE"); dir != "" {
		prof = filepath.Join(dir, fmt.Sprintf("%s-%d.heap", args[0], time.Now().UnixNano()))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if h := int64(sample[0].Value.Uint64()); h > ph.PeakHeap {
				if prof != "" && h > ph.PeakHeap+8<<20 {
					writeHeapProfile(prof)
				}
				ph.PeakHeap = h
			}
			ph.PeakLive = max(ph.PeakLive, int64(sample[1].Value.Uint64()))
			ph.PeakRSS = max(ph.PeakRSS, readRSS())
			ph.Samples++
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	code, out, errOut := runKtape(t, args...)
	ph.Seconds = time.Since(start).Seconds()
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Fatalf("ktape %s: exit %d: %s", args[0], code, errOut)
	}
	if over := ph.PeakLive - ph.LiveBefore - memory; over > liveAllowance {
		t.Errorf("ktape %s: the live heap peaked at %d MiB, %d MiB before: %d MiB over the --memory budget of %d MiB, allowance %d MiB",
			args[0], ph.PeakLive>>20, ph.LiveBefore>>20, over>>20, memory>>20, liveAllowance>>20)
	}
	if over := ph.PeakRSS - ph.RSSBefore - memory; !raceEnabled && over > rssAllowance {
		t.Errorf("ktape %s: the resident set peaked at %d MiB, %d MiB before: %d MiB over the --memory budget of %d MiB, allowance %d MiB",
			args[0], ph.PeakRSS>>20, ph.RSSBefore>>20, over>>20, memory>>20, rssAllowance>>20)
	}
	t.Logf("%s: %.1f s, peak RSS %d MiB (%d MiB before), peak heap %d MiB (live %d MiB), %d samples",
		args[0], ph.Seconds, ph.PeakRSS>>20, ph.RSSBefore>>20, ph.PeakHeap>>20, ph.PeakLive>>20, ph.Samples)
	return ph, out
}

// readRSS is this process's resident set (VmRSS), in bytes; 0 where
// /proc is missing.
func readRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// countFDs is the number of open file descriptors of this process.
func countFDs(t *testing.T) int {
	t.Helper()
	n, err := fdCount()
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return n
}

func countFDsFunc(t *testing.T) func() int { return func() int { return countFDs(t) } }

func fdCount() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	return len(ents) - 1, nil // less the one ReadDir itself had open
}

// listFDs names what each open descriptor points at, for a leak report.
func listFDs() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		fmt.Fprintf(&b, "\n  %s -> %s", e.Name(), target)
	}
	return b.String()
}

// waitLeaks polls until the goroutines and descriptors are back to the
// baseline or the grace period ends, and returns the last counts: closed
// connections and ended runs take a moment to unwind.
func waitLeaks(baseG, baseFD int, fds func() int, grace time.Duration) (int, int) {
	deadline := time.Now().Add(grace)
	for {
		g, f := runtime.NumGoroutine(), fds()
		if (g <= baseG && f <= baseFD) || time.Now().After(deadline) {
			return g, f
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitQuiet waits until the goroutine count stops falling, for at most d.
func waitQuiet(d time.Duration) {
	deadline := time.Now().Add(d)
	last := runtime.NumGoroutine()
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n >= last {
			return
		}
		last = n
	}
}

// writeHeapProfile writes the heap profile (as of the last collection)
// to name, replacing it.
func writeHeapProfile(name string) {
	f, err := os.Create(name)
	if err != nil {
		return
	}
	defer f.Close()
	pprof.Lookup("heap").WriteTo(f, 0)
}
