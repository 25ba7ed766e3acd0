package client

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ktape/ktape/record"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Interop: data written by librdkafka (kcat, confluent-kafka) and by
// kafka-python, in every codec, is fetched by ktape exactly as franz-go's
// consumer reads it. The clients come from Debian (scripts/test.sh installs
// them); CI requires them, elsewhere the test skips without them.

const debianPython = "/usr/bin/python3"

func requireTool(t *testing.T, name string, check ...string) {
	t.Helper()
	var err error
	if len(check) > 0 {
		err = exec.Command(check[0], check[1:]...).Run()
	} else {
		_, err = exec.LookPath(name)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI (scripts/test.sh installs it): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
}

// advertiseProduceV0 makes kfake's ApiVersions list Produce from v0, as
// Kafka 4 does (KAFKA-18659): librdkafka 2.0.2 otherwise sends gzip,
// snappy and lz4 batches uncompressed, and this test would prove nothing.
func advertiseProduceV0(t *testing.T, c *kfake.Cluster) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tmpl, err := kmsg.NewPtrApiVersionsRequest().RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tmpl.ApiKeys {
		if tmpl.ApiKeys[i].ApiKey == 0 {
			tmpl.ApiKeys[i].MinVersion = 0
		}
	}
	c.ControlKey(18, func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ApiVersionsRequest)
		if req.Version > tmpl.Version {
			return nil, nil, false
		}
		resp := *tmpl
		resp.Version = req.Version
		return &resp, nil, true
	})
}

const interopRecords = 60

// interopLines are the records every producer writes: key:value, with a
// compressible value so librdkafka does not skip compression.
func interopLines() []string {
	var lines []string
	for i := 0; i < interopRecords; i++ {
		lines = append(lines, fmt.Sprintf("key-%d:value %d %s", i, i, strings.Repeat("abcdefgh", 8)))
	}
	return lines
}

func TestInteropProducers(t *testing.T) {
	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	type producer struct {
		name  string
		check []string
		run   func(t *testing.T, addr, topic, codec string)
	}
	producers := []producer{
		{"kcat", []string{"kcat", "-V"}, produceKcat},
		{"confluent-kafka", []string{debianPython, "-c", "import confluent_kafka"}, producePython("confluent")},
		{"kafka-python", []string{debianPython, "-c", "import kafka, snappy, lz4, zstandard"}, producePython("kafkapy")},
	}
	for _, p := range producers {
		t.Run(p.name, func(t *testing.T) {
			requireTool(t, p.name, p.check...)
			var topics []string
			for _, c := range codecs {
				topics = append(topics, p.name+"-"+c)
			}
			c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
			advertiseProduceV0(t, c)
			addr := c.ListenAddrs()[0]
			cl := newFetchClient(t, c)
			for i, codec := range codecs {
				p.run(t, addr, topics[i], codec)
				want := consumeKgo(t, c, topics[i], interopRecords)
				f := NewFetcher(cl, FetchConfig{})
				got, codecsSeen := fetchWithCodecs(t, f, topics[i], interopRecords)
				f.Close()
				if err := equalStrings(got, want); err != nil {
					t.Fatalf("%s: %v", topics[i], err)
				}
				if len(codecsSeen) != 1 || codecsSeen[0] != codec {
					t.Fatalf("%s: batches were written with %v, want only %s", topics[i], codecsSeen, codec)
				}
			}
		})
	}
}

// fetchWithCodecs is fetchAll for partition 0, also reporting the codecs of
// the batches seen.
func fetchWithCodecs(t *testing.T, f *Fetcher, topic string, want int) ([]string, []string) {
	t.Helper()
	f.Assign(TopicPartition{topic, 0}, 0)
	var r record.Reader
	seen := map[string]bool{}
	var recs []string
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(recs) < want {
		fe, err := f.Poll(ctx)
		if err != nil {
			t.Fatalf("%s: fetched %d of %d: %v", topic, len(recs), want, err)
		}
		for _, fp := range fe.Partitions {
			if fp.Err != nil {
				t.Fatal(fp.Err)
			}
			it := record.NewIter(fp.Records)
			for it.Next() {
				b := it.Batch()
				if err := b.Validate(); err != nil {
					t.Fatal(err)
				}
				seen[b.Codec().String()] = true
				ri, err := r.Records(b)
				if err != nil {
					t.Fatal(err)
				}
				for ri.Next() {
					rec := ri.Record()
					recs = append(recs, recordString(fp.Partition, rec.Offset, rec.Key, rec.Value))
				}
				if ri.Err() != nil {
					t.Fatal(ri.Err())
				}
			}
		}
		fe.Release()
	}
	sort.Strings(recs)
	var codecs []string
	for c := range seen {
		codecs = append(codecs, c)
	}
	sort.Strings(codecs)
	return recs, codecs
}

func produceKcat(t *testing.T, addr, topic, codec string) {
	t.Helper()
	cmd := exec.Command("kcat", "-b", addr, "-P", "-t", topic, "-p", "0", "-z", codec, "-K:",
		"-X", "linger.ms=50", "-X", "enable.idempotence=true")
	cmd.Stdin = strings.NewReader(strings.Join(interopLines(), "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat: %v: %s", err, stderr.String())
	}
}

// producePython returns a producer running Debian's python3 with
// confluent-kafka or kafka-python.
func producePython(lib string) func(t *testing.T, addr, topic, codec string) {
	return func(t *testing.T, addr, topic, codec string) {
		t.Helper()
		var script string
		if lib == "confluent" {
			script = `
import sys
from confluent_kafka import Producer
addr, topic, codec = sys.argv[1:4]
p = Producer({"bootstrap.servers": addr, "compression.type": codec, "linger.ms": 50, "enable.idempotence": True})
errs = []
for line in sys.stdin.read().splitlines():
    k, v = line.split(":", 1)
    p.produce(topic, key=k.encode(), value=v.encode(), partition=0, headers=[("h", b"v")],
              on_delivery=lambda err, msg: errs.append(err) if err else None)
p.flush(30)
if errs: sys.exit("delivery failed: %s" % errs)
`
		} else {
			script = `
import sys
from kafka import KafkaProducer
addr, topic, codec = sys.argv[1:4]
p = KafkaProducer(bootstrap_servers=addr, compression_type=None if codec == "none" else codec,
                  linger_ms=50, api_version=(2, 5, 0))
futs = []
for line in sys.stdin.read().splitlines():
    k, v = line.split(":", 1)
    futs.append(p.send(topic, key=k.encode(), value=v.encode(), partition=0, headers=[("h", b"v")]))
p.flush(30)
for f in futs: f.get(timeout=30)
`
		}
		cmd := exec.Command(debianPython, "-c", script, addr, topic, codec)
		cmd.Stdin = strings.NewReader(strings.Join(interopLines(), "\n"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v: %s", lib, err, stderr.String())
		}
	}
}
