package client

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ktape/ktape/record"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkFetchThroughput reads a whole topic from an in-process kfake
// cluster, from offset 0 to the high watermark, once per iteration:
//   - ktape: the Fetcher, handing out raw batches (what a backup stores);
//     it counts records from batch headers and decodes nothing.
//   - kgo: franz-go's consumer, which decodes every record (its only mode).
//   - sarama: sarama's consumer, likewise.
//
// kfake runs in its own process (internal/cmd/kfakeserver), so that the
// CPU, memory and allocations measured are the client's alone. kfake is
// itself a bottleneck here (it copies batches into each response); a
// benchmark broker that writes stored bytes straight out is the next step
// (issue 6).
func BenchmarkFetchThroughput(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "kfakeserver")
	if out, err := exec.Command("go", "build", "-o", bin, "../internal/cmd/kfakeserver").CombinedOutput(); err != nil {
		b.Fatalf("building kfakeserver: %v\n%s", err, out)
	}
	for _, size := range []int{100, 1024} {
		for _, parts := range []int32{1, 8} {
			total := (16 << 20) / size // 16 MiB of values per topic
			addr, stop := startKfakeServer(b, bin, parts)
			loadTopic(b, addr, total, size)
			name := fmt.Sprintf("%dB/%dp", size, parts)
			b.Run(name+"/ktape", func(b *testing.B) { benchKtapeFetch(b, addr, parts, total, size) })
			b.Run(name+"/kgo", func(b *testing.B) { benchKgoFetch(b, addr, total, size) })
			b.Run(name+"/sarama", func(b *testing.B) { benchSaramaFetch(b, addr, parts, total, size) })
			stop()
		}
	}
}

// startKfakeServer runs kfakeserver with topic t of parts partitions on a
// free loopback port and returns its address and a stop function.
func startKfakeServer(b *testing.B, bin string, parts int32) (string, func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-ports", strconv.Itoa(port), "-seed-topics", fmt.Sprintf("t:%d", parts))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
	}
	go io.Copy(io.Discard, out)
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	b.Cleanup(stop)
	return fmt.Sprintf("127.0.0.1:%d", port), stop
}

func loadTopic(b *testing.B, addr string, total, size int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	value := make([]byte, size)
	ctx := context.Background()
	for i := 0; i < total; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: "t", Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

func report(b *testing.B, total, size int, batches int64) {
	sec := b.Elapsed().Seconds()
	n := float64(b.N)
	b.ReportMetric(float64(total)*n/sec, "records/s")
	b.ReportMetric(float64(total*size)*n/sec/1e6, "MB/s")
	if batches > 0 {
		b.ReportMetric(float64(batches)/n, "batches/op")
	}
}

func benchKtapeFetch(b *testing.B, addr string, parts int32, total, size int) {
	cl, err := New(context.Background(), []string{addr}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var batches int64
	var before, after runtime.MemStats
	b.ReportAllocs()
	// One Fetcher for every pass, as a backup keeps one: each pass
	// re-assigns the partitions at offset 0. Its set-up is not measured.
	f := NewFetcher(cl, FetchConfig{MaxWait: 10 * time.Millisecond})
	defer f.Close()
	runtime.ReadMemStats(&before)
	for b.Loop() {
		for p := int32(0); p < parts; p++ {
			f.Assign(TopicPartition{"t", p}, 0)
		}
		n := 0
		for n < total {
			fe, err := f.Poll(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			for _, fp := range fe.Partitions {
				it := record.NewIter(fp.Records)
				for it.Next() {
					n += int(it.Batch().NumRecords())
					batches++
				}
			}
			fe.Release()
		}
	}
	runtime.ReadMemStats(&after)
	report(b, total, size, batches)
	// Everything the client allocated, Fetcher set-up included, per batch.
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(batches), "allocs/batch")
}

func benchKgoFetch(b *testing.B, addr string, total, size int) {
	b.ReportAllocs()
	for b.Loop() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("t"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(10*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for n < total {
			fs := cl.PollFetches(context.Background())
			if errs := fs.Errors(); len(errs) > 0 {
				b.Fatal(errs[0].Err)
			}
			n += fs.NumRecords()
		}
		cl.Close()
	}
	report(b, total, size, 0)
}

func benchSaramaFetch(b *testing.B, addr string, parts int32, total, size int) {
	conf := sarama.NewConfig()
	conf.Version = sarama.V2_8_0_0
	conf.Consumer.Fetch.Max = 50 << 20
	conf.Consumer.MaxWaitTime = 10 * time.Millisecond
	conf.Consumer.Return.Errors = true
	b.ReportAllocs()
	for b.Loop() {
		cons, err := sarama.NewConsumer([]string{addr}, conf)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		done := make(chan int, parts)
		for p := int32(0); p < parts; p++ {
			pc, err := cons.ConsumePartition("t", p, sarama.OffsetOldest)
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				hwm := pc.HighWaterMarkOffset()
				k := 0
				for m := range pc.Messages() {
					k++
					if m.Offset+1 >= hwm {
						break
					}
				}
				done <- k
			}()
		}
		for p := int32(0); p < parts; p++ {
			n += <-done
		}
		cons.Close()
		if n < total {
			b.Fatalf("sarama read %d of %d", n, total)
		}
	}
	report(b, total, size, 0)
}
