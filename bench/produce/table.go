package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// writeTable reads result lines (several rounds of the same matrix, in any
// order) and writes a markdown table per configuration: the median of
// each figure over the rounds, and each impl's records/s relative to
// ktape's.
func writeTable(r io.Reader, w io.Writer, summary bool) error {
	type key struct {
		vb, g, p int
		c, acks  string
	}
	runs := map[key]map[string][]result{}
	var keys []key
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
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
			return fmt.Errorf("line %d: %s failed: %s", line, res.Impl, res.Error)
		}
		k := key{res.ValueBytes, res.Goroutines, res.Partitions, res.Compression, res.Acks}
		if runs[k] == nil {
			runs[k] = map[string][]result{}
			keys = append(keys, k)
		}
		runs[k][res.Impl] = append(runs[k][res.Impl], res)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	median := func(rs []result, f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	if summary {
		fmt.Fprintln(w, "| values, goroutines, partitions, codec | ktape rec/s | kgo | sarama | kafka-go | confluent | ktape ÷ kgo | CPU ns/rec ktape · kgo | allocs/rec ktape · kgo | GC ktape · kgo | append p50/p99 ns ktape |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|---|---|---|")
		rps := func(k key, impl string) float64 {
			rs := runs[k][impl]
			if len(rs) == 0 {
				return 0
			}
			return median(rs, func(r result) float64 { return r.RecordsPerSec })
		}
		cell := func(v float64) string {
			if v == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2fM", v/1e6)
		}
		for _, k := range keys {
			kt, kg := runs[k]["ktape"], runs[k]["kgo"]
			if len(kt) == 0 || len(kg) == 0 {
				continue
			}
			m := func(rs []result, f func(result) float64) float64 { return median(rs, f) }
			fmt.Fprintf(w, "| %d B, %d, %d, %s | %s | %s | %s | %s | %s | %.1f× | %.0f · %.0f | %.3f · %.3f | %.0f · %.0f | %.0f / %.0f |\n",
				k.vb, k.g, k.p, k.c, cell(rps(k, "ktape")), cell(rps(k, "kgo")), cell(rps(k, "sarama")), cell(rps(k, "kafkago")), cell(rps(k, "confluent")),
				rps(k, "ktape")/rps(k, "kgo"),
				m(kt, func(r result) float64 { return r.CPUNsPerRecord }), m(kg, func(r result) float64 { return r.CPUNsPerRecord }),
				m(kt, func(r result) float64 { return r.AllocsPerRecord }), m(kg, func(r result) float64 { return r.AllocsPerRecord }),
				m(kt, func(r result) float64 { return float64(r.GCCycles) }), m(kg, func(r result) float64 { return float64(r.GCCycles) }),
				m(kt, func(r result) float64 { return float64(r.AppendP50Ns) }), m(kt, func(r result) float64 { return float64(r.AppendP99Ns) }))
		}
		return nil
	}
	for _, k := range keys {
		fmt.Fprintf(w, "\n**%d B values, %d goroutine(s), %d partition(s), %s, acks=%s**\n\n", k.vb, k.g, k.p, k.c, k.acks)
		fmt.Fprintln(w, "| impl | runs | records/s | MB/s | vs ktape | CPU ns/record | allocs/record | GC cycles | append p50 / p99 ns |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
		var base float64
		if rs := runs[k]["ktape"]; len(rs) > 0 {
			base = median(rs, func(r result) float64 { return r.RecordsPerSec })
		}
		for _, impl := range knownImpls {
			rs := runs[k][impl]
			if len(rs) == 0 {
				continue
			}
			rps := median(rs, func(r result) float64 { return r.RecordsPerSec })
			ratio := "-"
			if base > 0 {
				ratio = fmt.Sprintf("%.2f×", rps/base)
			}
			fmt.Fprintf(w, "| %s | %d | %.2fM | %.0f | %s | %.0f | %.3f | %.0f | %.0f / %.0f |\n", impl, len(rs), rps/1e6,
				median(rs, func(r result) float64 { return r.MBPerSec }), ratio,
				median(rs, func(r result) float64 { return r.CPUNsPerRecord }),
				median(rs, func(r result) float64 { return r.AllocsPerRecord }),
				median(rs, func(r result) float64 { return float64(r.GCCycles) }),
				median(rs, func(r result) float64 { return float64(r.AppendP50Ns) }),
				median(rs, func(r result) float64 { return float64(r.AppendP99Ns) }))
		}
	}
	return nil
}
