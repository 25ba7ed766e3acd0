package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/record"
)

// childResult is what a kgo or raw child prints: what it saw and wrote.
type childResult struct {
	Bytes       int64 `json:"bytes"`   // batch bytes (raw only: kgo does not expose them)
	Batches     int64 `json:"batches"` // raw only
	Records     int64 `json:"records"`
	OutputBytes int64 `json:"output_bytes"`
}

// runChild reads the whole topic with one client and prints a childResult.
func runChild(o *options, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	brokers := strings.Split(o.brokers, ",")
	var (
		res childResult
		err error
	)
	switch o.impls[0] {
	case "kgo":
		res, err = consumeKgo(ctx, brokers, o.topic, o.partitions[0], o.out)
	case "raw":
		res, err = fetchRaw(ctx, brokers, o.topic, o.memory)
	}
	if err != nil {
		return err
	}
	line, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", line)
	return err
}

// consumeKgo is a franz-go consumer with its defaults, as an application
// that copies a topic to a file would be written: partitions assigned
// directly from the start, every record's key and value written through
// a buffered writer, until each partition reaches the high watermark its
// fetches report.
func consumeKgo(ctx context.Context, brokers []string, topic string, partitions int, out string) (childResult, error) {
	var res childResult
	f, err := os.Create(out)
	if err != nil {
		return res, fmt.Errorf("kgo: %w", err)
	}
	defer f.Close()
	// 64 KiB writes, a common buffer size: on the project's benchmark VM
	// writes of 1 MiB or more cost the kernel the most per byte
	// (BENCHMARKS.md, "Backup"), and kcat, the other file writer here,
	// writes 4 KiB at a time.
	w := bufio.NewWriterSize(f, 64<<10)
	parts := make(map[int32]kgo.Offset, partitions)
	for p := range partitions {
		parts[int32(p)] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("ktape-bench-kgo"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		return res, fmt.Errorf("kgo: new client: %w", err)
	}
	defer cl.Close()
	next := make([]int64, partitions)
	finished := make([]bool, partitions)
	left := partitions
	var werr error
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("kgo: %d records read: %w", res.Records, err)
		}
		for _, e := range fs.Errors() {
			return res, fmt.Errorf("kgo: %s/%d: %w", e.Topic, e.Partition, e.Err)
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			p := fp.Partition
			if int(p) >= partitions {
				return
			}
			for _, r := range fp.Records {
				if _, err := w.Write(r.Key); err != nil && werr == nil {
					werr = err
				}
				if _, err := w.Write(r.Value); err != nil && werr == nil {
					werr = err
				}
				next[p] = r.Offset + 1
				res.Records++
			}
			if !finished[p] && next[p] >= fp.HighWatermark && fp.HighWatermark > 0 {
				finished[p] = true
				left--
			}
		})
		if werr != nil {
			return res, fmt.Errorf("kgo: write %s: %w", out, werr)
		}
	}
	if err := w.Flush(); err != nil {
		return res, fmt.Errorf("kgo: write %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return res, fmt.Errorf("kgo: close %s: %w", out, err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		return res, fmt.Errorf("kgo: %w", err)
	}
	res.OutputBytes = fi.Size()
	return res, nil
}

// fetchRaw reads the topic with ktape's Fetcher set up as backup.Snapshot
// sets it up (budget memory/2, skip to the log start when out of range),
// from each partition's earliest to its latest offset, and walks each
// response's batch headers without keeping anything.
func fetchRaw(ctx context.Context, brokers []string, topic string, memory int64) (childResult, error) {
	var res childResult
	c, err := client.New(ctx, brokers, nil)
	if err != nil {
		return res, fmt.Errorf("raw: connect: %w", err)
	}
	defer c.Close()
	md, err := c.RefreshMetadata(ctx, []string{topic})
	if err != nil {
		return res, fmt.Errorf("raw: metadata: %w", err)
	}
	tm := md.Topics[topic]
	if tm == nil || tm.Err != nil {
		return res, fmt.Errorf("raw: topic %s not found", topic)
	}
	ends, starts := map[client.TopicPartition]int64{}, map[client.TopicPartition]int64{}
	for _, p := range tm.Partitions {
		tp := client.TopicPartition{Topic: topic, Partition: p.Partition}
		ends[tp], starts[tp] = client.Latest, client.Earliest
	}
	latest, err := c.ListOffsets(ctx, client.ReadUncommitted, ends)
	if err != nil {
		return res, fmt.Errorf("raw: list offsets: %w", err)
	}
	earliest, err := c.ListOffsets(ctx, client.ReadUncommitted, starts)
	if err != nil {
		return res, fmt.Errorf("raw: list offsets: %w", err)
	}
	f := client.NewFetcher(c, client.FetchConfig{Budget: memory / 2, OutOfRange: client.OutOfRangeSkipToStart})
	defer f.Close()
	end := map[client.TopicPartition]int64{}
	for tp := range ends {
		lo, hi := earliest[tp], latest[tp]
		if err := errors.Join(lo.Err, hi.Err); err != nil {
			return res, fmt.Errorf("raw: %s: %w", tp, err)
		}
		if hi.Offset > lo.Offset {
			end[tp] = hi.Offset
			f.Assign(tp, lo.Offset)
		}
	}
	deadline, _ := ctx.Deadline()
	for left := len(end); left > 0; {
		fe, err := f.Poll(ctx)
		if err != nil {
			return res, fmt.Errorf("raw: %d bytes read, %v before the deadline: %w", res.Bytes, time.Until(deadline).Round(time.Second), err)
		}
		for _, fp := range fe.Partitions {
			if fp.Err != nil {
				fe.Release()
				return res, fmt.Errorf("raw: %s: %w", fp.TopicPartition, fp.Err)
			}
			e, ok := end[fp.TopicPartition]
			if !ok {
				continue
			}
			it := record.NewIter(fp.Records)
			for it.Next() {
				b := it.Batch()
				if b.BaseOffset() >= e {
					break
				}
				res.Batches++
				res.Bytes += int64(len(b))
				res.Records += int64(b.NumRecords())
			}
			if fp.NextOffset >= e {
				delete(end, fp.TopicPartition)
				f.Unassign(fp.TopicPartition)
				left--
			}
		}
		fe.Release()
	}
	return res, nil
}
