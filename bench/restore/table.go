package main

import (
	"fmt"
	"io"

	"github.com/ktape/ktape/bench/internal/harness"
)

// writeTable reads result lines (several rounds, any order) and writes
// markdown: per configuration, each impl's median figures and its MB/s
// relative to ktape's; with summary, one row per configuration with the
// ratios the targets name.
func writeTable(r io.Reader, w io.Writer, summary bool) error {
	keys, runs, err := harness.ReadResults[result](r)
	if err != nil {
		return err
	}
	med := harness.MedianOf[result]
	mbps := func(r result) float64 { return r.MBPerSec }
	cpu := func(r result) float64 { return r.CPUPerGiB }
	rss := func(r result) float64 { return r.MaxRSSMB }
	cell := func(v float64, format string) string {
		if v == 0 {
			return "–"
		}
		return fmt.Sprintf(format, v)
	}
	ratio := func(a, b float64) string {
		if a == 0 || b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	if summary {
		fmt.Fprintln(w, "| target, size, partitions, codec | ktape MB/s | kcat | kgo | naive | ktape ÷ kcat | ktape ÷ kgo | ktape ÷ naive | CPU-s/GiB ktape · kcat · kgo · naive | max RSS MB ktape · kcat · kgo |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
		for _, k := range keys {
			m := func(impl string, f func(result) float64) float64 { return med(runs[k][impl], f) }
			fmt.Fprintf(w, "| %s, %s, %d, %s | %s | %s | %s | %s | %s | %s | %s | %s · %s · %s · %s | %s · %s · %s |\n",
				k.Target, harness.SizeString(k.Size), k.Partitions, k.Codec,
				cell(m("ktape", mbps), "%.0f"), cell(m("kcat", mbps), "%.0f"), cell(m("kgo", mbps), "%.0f"), cell(m("naive", mbps), "%.0f"),
				ratio(m("ktape", mbps), m("kcat", mbps)), ratio(m("ktape", mbps), m("kgo", mbps)), ratio(m("ktape", mbps), m("naive", mbps)),
				cell(m("ktape", cpu), "%.2f"), cell(m("kcat", cpu), "%.2f"), cell(m("kgo", cpu), "%.2f"), cell(m("naive", cpu), "%.2f"),
				cell(m("ktape", rss), "%.0f"), cell(m("kcat", rss), "%.0f"), cell(m("kgo", rss), "%.0f"))
		}
		return nil
	}
	for _, k := range keys {
		fmt.Fprintf(w, "\n**%s**\n\n", k)
		fmt.Fprintln(w, "| impl | runs | MB/s | range | vs ktape | value MB/s | CPU-s/GiB | user · sys s/GiB | max RSS MB | seconds | batches received | MB received |")
		fmt.Fprintln(w, "|---|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|")
		base := med(runs[k]["ktape"], mbps)
		for _, impl := range knownImpls {
			rs := runs[k][impl]
			if len(rs) == 0 {
				continue
			}
			gib := float64(rs[0].TopicBytes) / (1 << 30)
			lo, hi := rs[0].MBPerSec, rs[0].MBPerSec
			for _, r := range rs {
				lo, hi = min(lo, r.MBPerSec), max(hi, r.MBPerSec)
			}
			fmt.Fprintf(w, "| %s | %d | %.0f | %.0f–%.0f | %s | %.0f | %.2f | %.2f · %.2f | %.0f | %.2f | %s | %s |\n", impl, len(rs),
				med(rs, mbps), lo, hi, ratio(med(rs, mbps), base), med(rs, func(r result) float64 { return r.ValueMBPerSec }), med(rs, cpu),
				med(rs, func(r result) float64 { return r.CPUUser / gib }), med(rs, func(r result) float64 { return r.CPUSys / gib }),
				med(rs, rss), med(rs, func(r result) float64 { return r.Seconds }),
				cell(med(rs, func(r result) float64 { return float64(r.TargetBatches) }), "%.0f"),
				cell(med(rs, func(r result) float64 { return float64(r.TargetBytes) / 1e6 }), "%.0f"))
		}
	}
	return nil
}
