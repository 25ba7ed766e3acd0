package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// result is one output line. The child fills in the measurement; the
// harness adds what the sink saw and any error.
type result struct {
	Impl        string `json:"impl"`
	Note        string `json:"note,omitempty"`
	ValueBytes  int    `json:"value_bytes"`
	Goroutines  int    `json:"goroutines"`
	Partitions  int    `json:"partitions"`
	Compression string `json:"compression"`
	Acks        string `json:"acks"`

	Records             int64   `json:"records"`
	WarmupRecords       int64   `json:"warmup_records"`
	Seconds             float64 `json:"seconds"`
	RecordsPerSec       float64 `json:"records_per_sec"`
	MBPerSec            float64 `json:"mb_per_sec"`
	CPUNsPerRecord      float64 `json:"cpu_ns_per_record"`
	CPUCores            float64 `json:"cpu_cores"`
	AllocsPerRecord     float64 `json:"allocs_per_record"`
	BytesAllocPerRecord float64 `json:"bytes_alloc_per_record"`
	GCCycles            uint32  `json:"gc_cycles"`
	AppendP50Ns         int64   `json:"append_p50_ns"`
	AppendP99Ns         int64   `json:"append_p99_ns"`
	AppendMaxNs         int64   `json:"append_max_ns"`
	MaxRSSMB            float64 `json:"max_rss_mb"`

	SinkRecords     int64   `json:"sink_records"`
	SinkBatches     int64   `json:"sink_batches"`
	SinkRequests    int64   `json:"sink_requests"`
	RecordsPerBatch float64 `json:"records_per_batch"`

	Error string `json:"error,omitempty"`
}

// sampleEvery is the append-latency sampling period, a power of two:
// timing every call would cost more than some clients' appends.
const sampleEvery = 64

// runChild makes one measurement and prints its result line.
func runChild(o *options, stdout io.Writer) error {
	name := o.impls[0]
	info, ok := lookupImpl(name)
	if !ok {
		return fmt.Errorf("impl %q is not built into this binary (have %s)", name, strings.Join(registeredImpls(), ", "))
	}
	cfg := clientConfig{
		Brokers:     strings.Split(o.brokers, ","),
		Topic:       o.topic,
		Partitions:  o.partitions[0],
		Goroutines:  o.goroutines[0],
		ValueBytes:  o.valueBytes[0],
		Compression: o.compression[0],
		Acks:        o.acks,
	}
	res := result{
		Impl: name, Note: info.note, ValueBytes: cfg.ValueBytes, Goroutines: cfg.Goroutines,
		Partitions: cfg.Partitions, Compression: cfg.Compression, Acks: cfg.Acks,
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	p, err := info.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.Close()

	value := make([]byte, cfg.ValueBytes)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range value {
		value[i] = byte(rng.Uint32())
	}

	// Warm up: connections, metadata and producer ids, outside the clock.
	for part := range cfg.Partitions {
		if err := p.Append(0, int32(part), value); err != nil {
			return fmt.Errorf("warm-up append: %w", err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		return fmt.Errorf("warm-up flush: %w", err)
	}
	res.WarmupRecords = int64(cfg.Partitions)

	// Per-goroutine shares and sample buffers, allocated before the clock.
	total := o.records
	if total == 0 && o.duration == 0 {
		total = defaultRecords(cfg.ValueBytes)
	}
	G := cfg.Goroutines
	workers := make([]worker, G)
	for g := range workers {
		w := &workers[g]
		w.g, w.partitions = g, cfg.Partitions
		if o.duration > 0 {
			w.n = -1
			w.samples = make([]int64, 0, 1<<16)
		} else {
			w.n = total / int64(G)
			if int64(g) < total%int64(G) {
				w.n++
			}
			w.samples = make([]int64, 0, w.n/sampleEvery+1)
		}
	}
	var stop atomic.Bool

	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0, err := cpuTime()
	if err != nil {
		return err
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile() // also stopped right after the flush
	}
	start := time.Now()
	if o.duration > 0 {
		t := time.AfterFunc(o.duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			workers[g].run(p, value, &stop)
		}()
	}
	wg.Wait()
	flushErr := p.Flush(ctx)
	elapsed := time.Since(start)
	pprof.StopCPUProfile()
	cpu1, err := cpuTime()
	if err != nil {
		return err
	}
	runtime.ReadMemStats(&m1)

	var samples []int64
	for g := range workers {
		w := &workers[g]
		res.Records += w.appended
		samples = append(samples, w.samples...)
		if w.err != nil {
			return fmt.Errorf("goroutine %d, after %d records: %w", g, w.appended, w.err)
		}
	}
	if flushErr != nil {
		return fmt.Errorf("flush: %w", flushErr)
	}
	if res.Records == 0 {
		return fmt.Errorf("no records appended")
	}
	n := float64(res.Records)
	res.Seconds = round(elapsed.Seconds(), 4)
	res.RecordsPerSec = math.Round(n / elapsed.Seconds())
	res.MBPerSec = round(n*float64(cfg.ValueBytes)/1e6/elapsed.Seconds(), 2)
	res.CPUNsPerRecord = round(float64(cpu1.cpu-cpu0.cpu)/n, 1)
	res.CPUCores = round(float64(cpu1.cpu-cpu0.cpu)/float64(elapsed), 2)
	res.AllocsPerRecord = round(float64(m1.Mallocs-m0.Mallocs)/n, 3)
	res.BytesAllocPerRecord = round(float64(m1.TotalAlloc-m0.TotalAlloc)/n, 1)
	res.GCCycles = m1.NumGC - m0.NumGC
	res.MaxRSSMB = round(float64(cpu1.maxRSSKiB)/1024, 1)
	if len(samples) > 0 {
		slices.Sort(samples)
		res.AppendP50Ns = samples[len(samples)/2]
		res.AppendP99Ns = samples[min(len(samples)-1, len(samples)*99/100)]
		res.AppendMaxNs = samples[len(samples)-1]
	}
	out, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// worker is one appending goroutine.
type worker struct {
	g, partitions int
	n             int64 // records to append; -1 until stopped
	appended      int64
	samples       []int64 // sampled append latencies, ns
	err           error
	_             [64]byte
}

func (w *worker) run(p producer, value []byte, stop *atomic.Bool) {
	part := int32(w.g % w.partitions)
	last := int32(w.partitions)
	for i := int64(0); w.n < 0 || i < w.n; i++ {
		var err error
		if i&(sampleEvery-1) == 0 {
			if w.n < 0 && stop.Load() {
				break
			}
			t := time.Now()
			err = p.Append(w.g, part, value)
			w.samples = append(w.samples, int64(time.Since(t)))
		} else {
			err = p.Append(w.g, part, value)
		}
		if err != nil {
			w.err = err
			return
		}
		w.appended++
		if part++; part == last {
			part = 0
		}
	}
}

type cpuSample struct {
	cpu       time.Duration // user + system, all threads
	maxRSSKiB int64
}

func cpuTime() (cpuSample, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuSample{}, fmt.Errorf("getrusage: %w", err)
	}
	return cpuSample{
		cpu:       time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		maxRSSKiB: int64(ru.Maxrss),
	}, nil
}

func round(x float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(x*p) / p
}
