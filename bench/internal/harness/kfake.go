package harness

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

// KfakeStats is the line ServeKfake prints when it stops: how many records
// the topic's partitions hold (the sum of their high watermarks; kfake
// keeps no other counters).
type KfakeStats struct {
	Partitions int   `json:"partitions"`
	Records    int64 `json:"records"`
}

// ServeKfake is a broker command for harnesses: franz-go's kfake, one
// broker, with the topic bench/source's flags describe (source.TopicFlags).
// By default the topic is created and bench/source's batches are produced
// into it, batch by batch, untouched, before "ready"; -load=false leaves it
// empty, and -create=false does not create it (a client under test will).
//
// Its output is bench/source's: with -load the topic's totals
// (source.TopicInfo) as one JSON line, then "listening on HOST:PORT" and
// "ready". On SIGINT or SIGTERM it prints a KfakeStats line (empty if the
// topic does not exist) and exits 0.
func ServeKfake(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve-kfake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	topicConfig := source.TopicFlags(fs)
	load := fs.Bool("load", true, "produce the generated topic into kfake before ready")
	create := fs.Bool("create", true, "create the topic (empty unless -load)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	tc, err := topicConfig()
	if err == nil && *load && !*create {
		err = fmt.Errorf("-load needs -create")
	}
	if err != nil {
		fmt.Fprintln(stderr, "serve-kfake:", err)
		return 2
	}
	start := time.Now()
	var t *source.Topic
	if *load {
		if t, err = source.Generate(tc); err != nil {
			fmt.Fprintln(stderr, "serve-kfake:", err)
			return 2
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.BrokerConfigs(map[string]string{
		// Batches up to the largest -batch-bytes, and no retention:
		// the generated timestamps are fixed and may be old.
		"message.max.bytes": strconv.Itoa(64 << 20),
		"log.retention.ms":  "-1",
	})}
	if *create {
		opts = append(opts, kfake.SeedTopics(int32(tc.Partitions), tc.Name))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(stderr, "serve-kfake: start kfake:", err)
		return 1
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	if t != nil {
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
		fmt.Fprintf(stdout, "%s\n", line)
	}
	fmt.Fprintf(stdout, "listening on %s\nready\n", addr)
	<-sigs
	st, err := kfakeStats(addr, tc.Name)
	if err != nil {
		fmt.Fprintln(stderr, "serve-kfake:", err)
		return 1
	}
	line, err := json.Marshal(st)
	if err != nil {
		fmt.Fprintln(stderr, "serve-kfake: encode stats:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", line)
	return 0
}

// kfakeStats sums the high watermarks of topic's partitions.
func kfakeStats(addr, topic string) (KfakeStats, error) {
	var st KfakeStats
	ctx, cancel := context.WithTimeout(context.Background(), StopTimeout/2)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("ktape-bench-kfake-stats"))
	if err != nil {
		return st, fmt.Errorf("stats client: %w", err)
	}
	defer cl.Close()
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		return st, fmt.Errorf("metadata: %w", err)
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		return st, nil // no such topic: nothing was restored into it
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p.Partition, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return st, fmt.Errorf("list offsets: %w", err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return st, fmt.Errorf("list offsets of %s/%d: %w", t.Topic, p.Partition, err)
			}
			st.Partitions++
			st.Records += p.Offset
		}
	}
	return st, nil
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
