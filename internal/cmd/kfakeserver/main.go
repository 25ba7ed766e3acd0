// Command kfakeserver runs franz-go's in-memory fake Kafka cluster (kfake) as
// a standalone process on fixed loopback ports.
//
// It exists for interop tests and fixture scripts whose Kafka clients cannot
// run inside a Go test process: kcat, and Debian's python3-kafka and
// python3-confluent-kafka. Go tests that only need a broker should start
// kfake in-process on random ports instead (fixed ports collide when
// packages run in parallel).
//
// Usage:
//
//	kfakeserver [-ports 19092,19093,19094] [-seed-topics name:partitions,...]
//	            [-auto-create] [-default-partitions N] [-data-dir DIR]
//	            [-advertise-produce-v0]
//
// It prints one line per broker, "broker <i> listening on 127.0.0.1:<port>",
// then "ready", and runs until SIGINT or SIGTERM, when it closes the cluster
// and exits 0. kfake always binds 127.0.0.1. It speaks message format v2 only:
// produce requests carrying magic 0 or 1 batches are rejected.
//
// -advertise-produce-v0 makes ApiVersions say Produce v0 and up, as Kafka
// brokers before 4.0 did, although kfake still answers only Produce v3 and
// up. librdkafka before the fix for its issue #4956 (for instance 2.0.2, in
// Debian 12's kcat and python3-confluent-kafka) silently sends gzip, snappy
// and lz4 batches uncompressed to a broker whose lowest Produce version is 3
// ("Broker does not support compression type gzip: not compressing batch");
// with this flag it compresses them, and still produces with v7.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kfakeserver:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("kfakeserver", flag.ContinueOnError)
	ports := fs.String("ports", "19092", "comma-separated loopback ports, one broker per port")
	seed := fs.String("seed-topics", "", "comma-separated topics to create at start, each name or name:partitions")
	autoCreate := fs.Bool("auto-create", false, "let Metadata requests create missing topics")
	defParts := fs.Int("default-partitions", 1, "partitions of auto-created topics and of seed topics given without a count")
	dataDir := fs.String("data-dir", "", "persist the cluster's state in this directory (default: memory only)")
	produceV0 := fs.Bool("advertise-produce-v0", false, "advertise Produce v0+ in ApiVersions (kfake still serves v3+), so that librdkafka versions with its issue #4956 (e.g. 2.0.2) compress gzip/snappy/lz4")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	opts := []kfake.Opt{kfake.DefaultNumPartitions(*defParts)}

	var portList []int
	for _, p := range strings.Split(*ports, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("-ports: bad port %q", p)
		}
		portList = append(portList, n)
	}
	if len(portList) == 0 {
		return fmt.Errorf("-ports: no port given")
	}
	opts = append(opts, kfake.Ports(portList...))

	for _, t := range strings.Split(*seed, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		name, partsStr, hasParts := strings.Cut(t, ":")
		parts := int64(-1) // kfake: non-positive means DefaultNumPartitions
		if hasParts {
			var err error
			parts, err = strconv.ParseInt(partsStr, 10, 32)
			if err != nil || parts <= 0 {
				return fmt.Errorf("-seed-topics: bad partition count in %q", t)
			}
		}
		if name == "" {
			return fmt.Errorf("-seed-topics: empty topic name in %q", t)
		}
		opts = append(opts, kfake.SeedTopics(int32(parts), name))
	}
	if *autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}

	// Subscribe before starting so a signal during start-up is not lost.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("starting cluster: %w", err)
	}
	if *produceV0 {
		if err := advertiseProduceV0(c); err != nil {
			c.Close()
			return fmt.Errorf("-advertise-produce-v0: %w", err)
		}
	}
	for i, addr := range c.ListenAddrs() {
		fmt.Printf("broker %d listening on %s\n", i, addr)
	}
	fmt.Println("ready")

	s := <-sigs
	fmt.Printf("received %v, shutting down\n", s)
	c.Close()
	return nil
}

// advertiseProduceV0 answers every ApiVersions request the cluster can serve
// with the cluster's own answer, captured once at start, except that Produce
// is listed from version 0.
func advertiseProduceV0(c *kfake.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()[0]))
	if err != nil {
		return err
	}
	defer cl.Close()
	tmpl, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("asking the cluster for its ApiVersions: %w", err)
	}
	found := false
	for i := range tmpl.ApiKeys {
		if tmpl.ApiKeys[i].ApiKey == 0 {
			tmpl.ApiKeys[i].MinVersion = 0
			found = true
		}
	}
	if !found {
		return fmt.Errorf("the cluster does not list Produce")
	}
	c.ControlKey(18, func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ApiVersionsRequest)
		if req.Version > tmpl.Version {
			return nil, nil, false // kfake answers with its version downgrade
		}
		resp := *tmpl
		resp.Version = req.Version
		return &resp, nil, true
	})
	return nil
}
