package main

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// kafkago: segmentio/kafka-go's Writer in Async mode, one WriteMessages
// call per record (its per-record API) from a reused one-message slice,
// deliveries counted by the Completion callback. The partition is chosen
// by a Balancer that returns the message's Partition field.
//
// Writer.BatchSize is a record count, and kafka-go allocates a slice of
// BatchSize messages for every batch it starts. Sized for 1 MiB of 25-byte
// values (42,000 records), every batch allocated ~7 MB, and with 16
// partitions, where linger closes batches long before they fill, throughput
// fell to ~15,000 records/s. So BatchSize is 1 MiB/value capped at
// kafkagoMaxBatchRecords; against this sink, counts from 100 (kafka-go's
// default) to 1,000 measured within about 1.5x of each other.
const kafkagoMaxBatchRecords = 1000

func init() {
	register("kafkago", "kafka-go has no idempotent producer (acks=all without idempotence); "+
		"one batch in flight per partition, not 5 per connection; batches capped at 1000 records (BatchSize, preallocated per batch); Async buffers without bound", openKafkago)
}

type kafkagoProducer struct {
	w     *kafka.Writer
	track *tracker
	gs    []kafkagoGoroutine
}

type kafkagoGoroutine struct {
	msgs     [1]kafka.Message
	appended int64
	_        [64]byte
}

func kafkagoCodec(name string) (kafka.Compression, error) {
	switch name {
	case "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("kafka-go: unknown compression %q", name)
}

// byPartitionField sends each message to the partition it names.
var byPartitionField = kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition })

func openKafkago(_ context.Context, cfg clientConfig) (producer, error) {
	codec, err := kafkagoCodec(cfg.Compression)
	if err != nil {
		return nil, err
	}
	acks := kafka.RequireAll
	if !cfg.idempotent() {
		acks = kafka.RequireOne
	}
	p := &kafkagoProducer{track: newTracker(), gs: make([]kafkagoGoroutine, cfg.Goroutines)}
	p.w = &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        cfg.Topic,
		Balancer:     byPartitionField,
		BatchSize:    min(batchMaxBytes/max(cfg.ValueBytes, 1), kafkagoMaxBatchRecords),
		BatchBytes:   batchMaxBytes,
		BatchTimeout: linger,
		RequiredAcks: acks,
		Async:        true,
		Compression:  codec,
		Completion:   func(msgs []kafka.Message, err error) { p.track.report(len(msgs), err) },
		Transport:    &kafka.Transport{ClientID: "ktape-bench-kafkago", MetadataTopics: []string{cfg.Topic}},
	}
	return p, nil
}

func (p *kafkagoProducer) Append(g int, partition int32, value []byte) error {
	st := &p.gs[g]
	st.msgs[0] = kafka.Message{Partition: int(partition), Value: value}
	st.appended++
	if err := p.w.WriteMessages(context.Background(), st.msgs[:]...); err != nil {
		st.appended--
		return fmt.Errorf("kafka-go: write: %w", err)
	}
	return nil
}

func (p *kafkagoProducer) Flush(ctx context.Context) error {
	var appended int64
	for i := range p.gs {
		appended += p.gs[i].appended
	}
	if err := p.track.wait(ctx, appended); err != nil {
		return fmt.Errorf("kafka-go: %w", err)
	}
	return nil
}

func (p *kafkagoProducer) Close() error {
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("kafka-go: close: %w", err)
	}
	return nil
}
