package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ktape/ktape/bench/source"
)

// serveKfake is the "serve-kfake" mode: franz-go's kfake, one broker,
// holding the topic bench/source would generate from the same flags,
// produced into it batch by batch, untouched, before "ready". Its output
// is bench/source's: the topic line, "listening on", "ready"; it exits 0
// on SIGINT or SIGTERM (kfake keeps no counters, so no stats line).
func serveKfake(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve-kfake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	topicConfig := source.TopicFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	tc, err := topicConfig()
	if err != nil {
		fmt.Fprintln(stderr, "serve-kfake:", err)
		return 2
	}
	start := time.Now()
	t, err := source.Generate(tc)
	if err != nil {
		fmt.Fprintln(stderr, "serve-kfake:", err)
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(t.NumPartitions()), t.Name()),
		kfake.BrokerConfigs(map[string]string{
			// Batches up to the largest -batch-bytes, and no retention:
			// the generated timestamps are fixed and may be old.
			"message.max.bytes": strconv.Itoa(64 << 20),
			"log.retention.ms":  "-1",
		}))
	if err != nil {
		fmt.Fprintln(stderr, "serve-kfake: start kfake:", err)
		return 1
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	if err := loadKfake(addr, t); err != nil {
		fmt.Fprintln(stderr, "serve-kfake:", err)
		return 1
	}
	info := t.Info()
	info.GenerateSeconds = time.Since(start).Round(time.Millisecond).Seconds()
	line, err := json.Marshal(info)
	if err != nil {
		fmt.Fprintln(stderr, "serve-kfake: encode topic info:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\nlistening on %s\nready\n", line, addr)
	<-sigs
	return 0
}

// loadKfake produces every batch of t to kfake at addr, in order: request
// i carries batch i of every partition (a broker takes one batch per
// partition per request), with base offset 0 as a producer sends it, and
// its answer must put the batch at the offset the source would serve it
// at.
func loadKfake(addr string, t *source.Topic) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("ktape-bench-kfake-loader"))
	if err != nil {
		return fmt.Errorf("loader client: %w", err)
	}
	defer cl.Close()
	// Produce v13 names topics by id (KIP-516): look kfake's up.
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(t.Name())
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		return fmt.Errorf("metadata: topic %s not created", t.Name())
	}
	topicID := mresp.Topics[0].TopicID
	bufs := make([][]byte, t.NumPartitions())
	most := 0
	for p := range t.NumPartitions() {
		most = max(most, t.NumBatches(p))
	}
	for i := range most {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = 1, 60_000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic, rt.TopicID = t.Name(), topicID
		for p := range t.NumPartitions() {
			if i >= t.NumBatches(p) {
				continue
			}
			_, rest := t.Batch(p, i)
			bufs[p] = append(append(bufs[p][:0], 0, 0, 0, 0, 0, 0, 0, 0), rest...)
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = int32(p), bufs[p]
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("produce batch %d: %w", i, err)
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				want, _ := t.Batch(int(rp.Partition), i)
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					return fmt.Errorf("produce batch %d to partition %d: %w", i, rp.Partition, err)
				}
				if rp.BaseOffset != want {
					return fmt.Errorf("kfake put batch %d of partition %d at offset %d, not %d", i, rp.Partition, rp.BaseOffset, want)
				}
			}
		}
	}
	return nil
}
