package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ktape/ktape/bench/internal/harness"
)

// rowKey is one line of the table: a scenario and worker count on one
// topic.
type rowKey struct {
	Scenario   string
	Workers    int
	Partitions int
	Codec      string
	Size       int64
	SessionS   float64
}

// stat is a median with its spread.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func statOf(v []float64) stat {
	if len(v) == 0 {
		return stat{}
	}
	return stat{Median: harness.Round(harness.Median(v), 3), Min: slices.Min(v), Max: slices.Max(v)}
}

func (s stat) cell(format string) string {
	if s.Median == 0 && s.Min == 0 && s.Max == 0 {
		return "–"
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", s.Median, s.Min, s.Max)
}

// summaryRow is one row of the JSON summary.
type summaryRow struct {
	Scenario        string  `json:"scenario"`
	Workers         int     `json:"workers"`
	Partitions      int     `json:"partitions"`
	Codec           string  `json:"codec"`
	SizeBytes       int64   `json:"size_bytes"`
	SessionTimeoutS float64 `json:"session_timeout_s"`
	Runs            int     `json:"runs"`
	Seconds         stat    `json:"seconds"`
	MBPerSec        stat    `json:"mb_per_sec"`
	CPUPerGiB       stat    `json:"cpu_s_per_gib"`
	// WorkerCPU is each surviving worker's CPU seconds, over every run;
	// WorkerMB its batch MB backed up; WorkerMBPerCPU its MB per CPU
	// second (the per-core ceiling of one worker).
	// Complete is when the backup was complete: the first exit of a
	// worker not killed (no worker exits before the manifest is written,
	// and its writer exits at once; the others notice at their next poll,
	// every 2 s). CompleteMBPerSec is the topic's MB per second of it.
	Complete         stat `json:"complete_s"`
	CompleteMBPerSec stat `json:"complete_mb_per_sec"`
	WorkerCPU        stat `json:"worker_cpu_s"`
	WorkerMB         stat `json:"worker_mb"`
	WorkerMBPerCPU   stat `json:"worker_mb_per_cpu_s"`
	FirstAssign      stat `json:"first_assign_s"`
	Stable           stat `json:"stable_s"`
	Generations      stat `json:"generations"`
	EventAt          stat `json:"event_at_s"`
	Rebalance        stat `json:"rebalance_s"`
	// StableNever and RebalanceNever count the runs left out of Stable
	// and Rebalance because it never happened (-1 in the run's line).
	StableNever    int `json:"stable_never,omitempty"`
	RebalanceNever int `json:"rebalance_never,omitempty"`
	// ServerCPUPerGiB is the broker's CPU seconds per GiB served (0 in
	// lines from before it was recorded).
	ServerCPUPerGiB stat `json:"server_cpu_s_per_gib"`
	// Redo is the batch bytes served beyond the topic's, as a share of
	// the topic: work done twice.
	Redo stat `json:"redo_fraction"`
}

// writeTable reads result lines and writes a markdown table of medians
// (min–max) per scenario and worker count, or with summary a JSON object.
func writeTable(r io.Reader, w io.Writer, summary bool) error {
	var keys []rowKey
	runs := map[rowKey][]result{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var res result
		if err := json.Unmarshal([]byte(text), &res); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if res.Error != "" {
			return fmt.Errorf("line %d: %s run of %d workers failed: %s", line, res.Scenario, res.Workers, res.Error)
		}
		k := rowKey{res.Scenario, res.Workers, res.Partitions, res.Codec, res.SizeBytes, res.SessionS}
		if _, ok := runs[k]; !ok {
			keys = append(keys, k)
		}
		runs[k] = append(runs[k], res)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	slices.SortStableFunc(keys, func(a, b rowKey) int {
		order := func(s string) int { return slices.Index(knownScenarios, s) }
		if d := order(a.Scenario) - order(b.Scenario); d != 0 {
			return d
		}
		return a.Workers - b.Workers
	})
	var rows []summaryRow
	for _, k := range keys {
		rs := runs[k]
		col := func(f func(result) float64) stat {
			var v []float64
			for _, r := range rs {
				v = append(v, f(r))
			}
			return statOf(v)
		}
		// known leaves out the runs where f is -1, "never", and counts them.
		known := func(f func(result) float64) (stat, int) {
			var v []float64
			for _, r := range rs {
				if x := f(r); x >= 0 {
					v = append(v, x)
				}
			}
			return statOf(v), len(rs) - len(v)
		}
		var cpu, mb, mbPerCPU []float64
		for _, r := range rs {
			for _, wr := range r.PerWorker {
				if wr.Killed {
					continue
				}
				c := wr.CPUUser + wr.CPUSys
				cpu = append(cpu, c)
				mb = append(mb, float64(wr.Bytes)/1e6)
				if c > 0 {
					mbPerCPU = append(mbPerCPU, harness.Round(float64(wr.Bytes)/1e6/c, 1))
				}
			}
		}
		row := summaryRow{Scenario: k.Scenario, Workers: k.Workers, Partitions: k.Partitions, Codec: k.Codec, SizeBytes: k.Size,
			SessionTimeoutS: k.SessionS, Runs: len(rs),
			Seconds:  col(func(r result) float64 { return r.Seconds }),
			MBPerSec: col(func(r result) float64 { return r.MBPerSec }),
			Complete: col(completeS),
			CompleteMBPerSec: col(func(r result) float64 {
				return harness.Round(float64(r.TopicBytes)/1e6/completeS(r), 1)
			}),
			CPUPerGiB:   col(func(r result) float64 { return r.CPUPerGiB }),
			FirstAssign: col(func(r result) float64 { return r.FirstAssign }),
			Generations: col(func(r result) float64 { return float64(r.Generations) }),
			WorkerCPU:   statOf(cpu), WorkerMB: statOf(mb), WorkerMBPerCPU: statOf(mbPerCPU),
			ServerCPUPerGiB: col(func(r result) float64 {
				return harness.Round(r.ServerCPU/(float64(r.ServerBytes)/(1<<30)), 3)
			}),
			Redo: col(func(r result) float64 {
				return harness.Round(float64(r.ServerBytes-r.TopicBytes)/float64(r.TopicBytes), 4)
			}),
		}
		row.Stable, row.StableNever = known(func(r result) float64 { return r.Stable })
		if k.Scenario != "scale" {
			row.EventAt = col(func(r result) float64 { return r.EventAt })
			row.Rebalance, row.RebalanceNever = known(func(r result) float64 { return r.Rebalance })
		}
		rows = append(rows, row)
	}
	if summary {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Rows []summaryRow `json:"rows"`
		}{rows})
	}
	fmt.Fprintln(w, "Medians (min–max) over the runs; \"+N never\": N runs where it did not happen, left out.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | workers | topic | runs | wall s | MB/s | complete s | MB/s to complete | CPU-s/GiB (all workers) | CPU-s per worker | MB per worker | MB per CPU-s per worker | first assignment s | all assigned s | generations | event at s | rebalance s | redone | broker CPU-s/GiB |")
	fmt.Fprintln(w, "|---|---:|---|---:|---|---|---|---|---|---|---|---|---|---|---|---|---|---:|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %d | %s, %d partitions, %s, session %gs | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f%% | %s |\n",
			r.Scenario, r.Workers, harness.SizeString(r.SizeBytes), r.Partitions, r.Codec, r.SessionTimeoutS, r.Runs,
			r.Seconds.cell("%.2f"), r.MBPerSec.cell("%.0f"), r.Complete.cell("%.2f"), r.CompleteMBPerSec.cell("%.0f"), r.CPUPerGiB.cell("%.2f"), r.WorkerCPU.cell("%.2f"),
			r.WorkerMB.cell("%.0f"), r.WorkerMBPerCPU.cell("%.0f"), r.FirstAssign.cell("%.3f"), never(r.Stable.cell("%.3f"), r.StableNever),
			r.Generations.cell("%.0f"), r.EventAt.cell("%.2f"), never(r.Rebalance.cell("%.2f"), r.RebalanceNever), r.Redo.Median*100, r.ServerCPUPerGiB.cell("%.2f"))
	}
	return nil
}

// never adds to a cell how many runs it leaves out.
func never(cell string, n int) string {
	if n == 0 {
		return cell
	}
	return fmt.Sprintf("%s +%d never", cell, n)
}

// completeS is when r's backup was complete: the first exit of a worker
// that was not killed.
func completeS(r result) float64 {
	first := r.Seconds
	for _, w := range r.PerWorker {
		if !w.Killed {
			first = min(first, w.Exit)
		}
	}
	return first
}
