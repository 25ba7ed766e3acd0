package producer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/producer"
	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/record"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// appendKey names goroutine g's i-th record so order and duplicates show.
func appendKey(g, i int) string { return fmt.Sprintf("g%02d-%06d", g, i) }

// appendValue is deterministic per key, of varying length.
func appendValue(g, i int) []byte {
	return bytes.Repeat([]byte{byte('a' + (g+i)%26)}, (g*7+i)%300)
}

// appendMany appends from goroutines goroutines, each its own sequence of
// records spread over partitions, and returns once every ticket is
// acknowledged.
func appendMany(t *testing.T, p *producer.Producer, topic string, goroutines, perGoroutine, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last []producer.Ticket
			for i := 0; i < perGoroutine; i++ {
				hdrs := []record.Header{{Key: []byte("g"), Value: []byte{byte(g)}}, {Key: []byte("nil"), Value: nil}}
				tk, err := p.Append(ctx, topic, int32((g+i)%partitions), []byte(appendKey(g, i)), appendValue(g, i), hdrs...)
				if err != nil {
					t.Errorf("append %d/%d: %v", g, i, err)
					return
				}
				if i%1000 == 0 {
					last = append(last, tk)
				}
			}
			for _, tk := range last {
				if err := tk.Wait(ctx); err != nil {
					t.Errorf("ticket: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// checkReadBack checks records read back by franz-go: every record once,
// each goroutine's records in order within each partition, exact values
// and headers, timestamps within the run (the producer's clock is read
// by a goroutine every millisecond, so it may lag a little).
func checkReadBack(t *testing.T, recs []*kgo.Record, goroutines, perGoroutine, partitions int, from, to time.Time) {
	t.Helper()
	if len(recs) != goroutines*perGoroutine {
		t.Fatalf("read back %d records, want %d", len(recs), goroutines*perGoroutine)
	}
	next := map[[2]int]int{} // (partition, goroutine) -> next index expected
	for _, r := range recs {
		var g, i int
		if _, err := fmt.Sscanf(string(r.Key), "g%02d-%06d", &g, &i); err != nil {
			t.Fatalf("key %q: %v", r.Key, err)
		}
		if int(r.Partition) != (g+i)%partitions {
			t.Fatalf("%s on partition %d", r.Key, r.Partition)
		}
		k := [2]int{int(r.Partition), g}
		want, ok := next[k]
		if !ok {
			want = (int(r.Partition) - g%partitions + partitions) % partitions
		}
		if i != want {
			t.Fatalf("partition %d: goroutine %d's record %d where %d was due", r.Partition, g, i, want)
		}
		next[k] = i + partitions
		if !bytes.Equal(r.Value, appendValue(g, i)) {
			t.Fatalf("%s: value %q", r.Key, r.Value)
		}
		if len(r.Headers) != 2 || r.Headers[0].Key != "g" || !bytes.Equal(r.Headers[0].Value, []byte{byte(g)}) || r.Headers[1].Key != "nil" || r.Headers[1].Value != nil {
			t.Fatalf("%s: headers %+v", r.Key, r.Headers)
		}
		if r.Timestamp.Before(from.Add(-20*time.Millisecond)) || r.Timestamp.After(to.Add(2*time.Millisecond)) {
			t.Fatalf("%s: timestamp %s outside the run [%s, %s]", r.Key, r.Timestamp, from, to)
		}
	}
}

// Many goroutines appending to many partitions, read back through
// franz-go's decoder (kfake never parses records): everything once, in
// order per partition, with exact values, headers and timestamps. Small
// batches make many rotations and back-pressure waits happen.
func TestAppendManyGoroutinesReadBack(t *testing.T) {
	for _, codec := range []record.Codec{record.None, record.LZ4} {
		t.Run(codec.String(), func(t *testing.T) {
			c := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.Topics(6, "t"))
			p, _ := newProducer(t, c, producer.Config{BatchSize: 16 << 10, MaxBufferedBytes: 256 << 10, Compression: codec})
			from := time.Now()
			appendMany(t, p, "t", 8, 3000, 6)
			checkReadBack(t, c.ConsumeAll(t, "t"), 8, 3000, 6, from, time.Now())
		})
	}
}

// Every codec, and the fixed-width varints of appended records, read by
// kcat (librdkafka) as well as franz-go.
func TestAppendEveryCodecKcat(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, codecs[0].String(), codecs[1].String(), codecs[2].String(), codecs[3].String(), codecs[4].String()))
	for _, codec := range codecs {
		p, _ := newProducer(t, c, producer.Config{Compression: codec})
		from := time.Now()
		appendMany(t, p, codec.String(), 2, 500, 1)
		checkReadBack(t, c.ConsumeAll(t, codec.String()), 2, 500, 1, from, time.Now())
	}
	if _, err := exec.LookPath("kcat"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is required in CI")
		}
		t.Skip("kcat not installed")
	}
	for _, codec := range codecs {
		out, err := exec.Command("kcat", "-b", c.Addrs()[0], "-C", "-t", codec.String(), "-o", "beginning", "-e", "-q", "-f", "%k %S %h\n").Output()
		if err != nil {
			t.Fatalf("kcat %s: %v", codec, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 1000 {
			t.Fatalf("kcat %s: %d records", codec, len(lines))
		}
		seen := map[string]bool{}
		for _, l := range lines {
			var key string
			var size, g, i int
			if _, err := fmt.Sscanf(l, "%s %d", &key, &size); err != nil {
				t.Fatalf("kcat %s: %q: %v", codec, l, err)
			}
			fmt.Sscanf(key, "g%02d-%06d", &g, &i)
			if size != len(appendValue(g, i)) || seen[key] || !strings.Contains(l, "nil=") {
				t.Fatalf("kcat %s: %q", codec, l)
			}
			seen[key] = true
		}
	}
}

// The append path allocates nothing per record.
func TestAppendAllocatesNothing(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(2, "t"))
	p, _ := newProducer(t, c, producer.Config{})
	ctx := context.Background()
	key, value := []byte("key"), make([]byte, 100)
	hdr := record.Header{Key: []byte("h"), Value: []byte("v")}
	if _, err := p.Append(ctx, "t", 0, key, value); err != nil { // looks the topic up
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(5000, func() {
		if _, err := p.Append(ctx, "t", 1, key, value, hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Append(ctx, "t", producer.AnyPartition, key, value); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per append", allocs)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// Keyed records go where the Java client would put them.
func TestAppendKeyedPartition(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(7, "t"))
	p, _ := newProducer(t, c, producer.Config{})
	for i := 0; i < 100; i++ {
		key := []byte(fmt.Sprint("key-", i))
		tk, err := p.Append(context.Background(), "t", producer.AnyPartition, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := producer.PartitionForKey(key, 7); tk.Partition() != want {
			t.Fatalf("%s: partition %d, want %d", key, tk.Partition(), want)
		}
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, r := range c.ConsumeAll(t, "t") {
		if want := producer.PartitionForKey(r.Key, 7); r.Partition != want || r.Value != nil {
			t.Fatalf("%s on %d, want %d (value %q)", r.Key, r.Partition, want, r.Value)
		}
	}
}

// A full buffer: TryAppend says so at once, Append waits for its context,
// and both work again once the broker answers.
func TestAppendBackPressure(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "t"))
	k := c.Kfake()
	release := make(chan struct{})
	k.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		<-release
		return nil, nil, false
	})
	p, _ := newProducer(t, c, producer.Config{BatchSize: 4096, MaxBufferedBytes: 8192, LingerSet: true})
	value := make([]byte, 1000)
	var full error
	n := 0
	for ; n < 100 && full == nil; n++ {
		_, full = p.TryAppend("t", 0, nil, value)
	}
	if !errors.Is(full, producer.ErrBufferFull) {
		t.Fatalf("after %d appends: %v, want ErrBufferFull", n, full)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := p.Append(ctx, "t", 0, nil, value)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append on a full buffer: %v, want the context's deadline", err)
	}
	close(release)
	k.DropControl()
	tk, err := p.Append(context.Background(), "t", 0, nil, value)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(c.ConsumeAll(t, "t")); got != n {
		t.Fatalf("read back %d records, appended %d", got, n)
	}
}

// Records too large, unknown partitions and a closed producer are errors
// that say what happened.
func TestAppendErrors(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(2, "t"))
	p, _ := newProducer(t, c, producer.Config{BatchSize: 4096, MaxBufferedBytes: 1 << 20})
	ctx := context.Background()
	if _, err := p.Append(ctx, "t", 0, nil, make([]byte, 5000)); !errors.Is(err, producer.ErrRecordTooLarge) {
		t.Fatalf("5000-byte value in 4096-byte batches: %v", err)
	}
	if _, err := p.Append(ctx, "t", 2, nil, nil); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
		t.Fatalf("partition 2 of 2: %v", err)
	}
	tk, err := p.Append(ctx, "t", 0, nil, []byte("lost"))
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := tk.Wait(ctx); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("ticket of a record never sent, after Close: %v", err)
	}
	if _, err := p.Append(ctx, "t", 0, nil, nil); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("append after Close: %v", err)
	}
}

// Idempotence under faults on the append path: dropped connections and
// NOT_LEADER answers, five batches in flight per partition; nothing lost,
// duplicated or reordered.
func TestAppendSurvivesFaults(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.Topics(3, "t"))
	k := c.Kfake()
	var n atomic.Int32
	k.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		switch n.Add(1) % 7 {
		case 3:
			return nil, errors.New("drop"), true
		case 5:
			return errResp(req, protocol.ErrNotLeaderOrFollower.Code), nil, true
		}
		return nil, nil, false
	})
	p, _ := newProducer(t, c, producer.Config{BatchSize: 8 << 10, Backoff: client.Backoff{Base: time.Millisecond, Max: 10 * time.Millisecond}})
	from := time.Now()
	appendMany(t, p, "t", 4, 2000, 3)
	k.DropControl()
	checkReadBack(t, c.ConsumeAll(t, "t"), 4, 2000, 3, from, time.Now())
	if n.Load() < 20 {
		t.Fatalf("only %d produce requests: faults not exercised", n.Load())
	}
}

// The fixed-width varints of appended records, read by Debian's Python
// clients: kafka-python (its own decoder) and confluent-kafka
// (librdkafka), in every codec.
func TestAppendPythonReadBack(t *testing.T) {
	const python = "/usr/bin/python3"
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, codecs[0].String(), codecs[1].String(), codecs[2].String(), codecs[3].String(), codecs[4].String()))
	for _, codec := range codecs {
		p, _ := newProducer(t, c, producer.Config{Compression: codec})
		appendMany(t, p, codec.String(), 2, 300, 1)
	}
	scripts := map[string]string{
		"kafka-python": `
import sys
from kafka import KafkaConsumer, TopicPartition
c = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5, 0), enable_auto_commit=False,
                  auto_offset_reset="earliest", consumer_timeout_ms=10000)
c.assign([TopicPartition(sys.argv[2], 0)])
n = 0
for m in c:
    print(m.key.decode(), len(m.value), dict(m.headers).get("nil", "absent"))
    n += 1
    if n == 600: break
`,
		"confluent-kafka": `
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "x", "enable.auto.commit": False})
c.assign([TopicPartition(sys.argv[2], 0, 0)])
n = 0
while n < 600:
    m = c.poll(10)
    if m is None: sys.exit("timed out after %d records" % n)
    if m.error(): sys.exit(str(m.error()))
    n += 1
    print(m.key().decode(), len(m.value()), dict(m.headers()).get("nil", "absent"))
# Debian's confluent-kafka 1.9 over-releases None header values and
# aborts while finalizing; everything is read by then.
sys.stdout.flush()
import os; os._exit(0)
`,
	}
	for lib, script := range scripts {
		module := map[string]string{"kafka-python": "kafka", "confluent-kafka": "confluent_kafka"}[lib]
		if err := exec.Command(python, "-c", "import "+module+", snappy, lz4, zstandard").Run(); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required in CI (scripts/test.sh installs it): %v", lib, err)
			}
			t.Logf("%s not installed: %v", lib, err)
			continue
		}
		for _, codec := range codecs {
			out, err := exec.Command(python, "-c", script, c.Addrs()[0], codec.String()).CombinedOutput()
			if err != nil {
				t.Fatalf("%s, %s: %v: %s", lib, codec, err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 600 {
				t.Fatalf("%s, %s: %d records: %.300s", lib, codec, len(lines), out)
			}
			for _, l := range lines {
				var key string
				var size, g, i int
				var nilHeader string
				if _, err := fmt.Sscanf(l, "%s %d %s", &key, &size, &nilHeader); err != nil {
					t.Fatalf("%s, %s: %q: %v", lib, codec, l, err)
				}
				fmt.Sscanf(key, "g%02d-%06d", &g, &i)
				if size != len(appendValue(g, i)) || nilHeader != "None" {
					t.Fatalf("%s, %s: %q", lib, codec, l)
				}
			}
		}
	}
}

// A broker that lost the producer's state (UNKNOWN_PRODUCER_ID) or sees a
// sequence gap (OUT_OF_ORDER_SEQUENCE_NUMBER) refuses the batch; the
// partition starts over under a new producer id and nothing is lost,
// duplicated or reordered.
func TestAppendStartsOverAfterLostProducerState(t *testing.T) {
	for _, code := range []int16{protocol.ErrUnknownProducerID.Code, protocol.ErrOutOfOrderSequence.Code} {
		t.Run(protocol.ErrorForCode(code).Error(), func(t *testing.T) {
			c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(2, "t"))
			k := c.Kfake()
			var n atomic.Int32
			k.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
				k.KeepControl()
				if n.Add(1)%6 != 4 {
					return nil, nil, false
				}
				return errResp(req, code), nil, true
			})
			p, _ := newProducer(t, c, producer.Config{BatchSize: 4 << 10})
			from := time.Now()
			appendMany(t, p, "t", 2, 2000, 2)
			k.DropControl()
			checkReadBack(t, c.ConsumeAll(t, "t"), 2, 2000, 2, from, time.Now())
			if r := p.Stats().ProducerIDResets; r == 0 {
				t.Fatalf("no producer id reset after %d requests", n.Load())
			}
		})
	}
}
