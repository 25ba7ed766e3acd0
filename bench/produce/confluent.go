//go:build confluent

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// confluent: confluentinc/confluent-kafka-go (librdkafka through cgo) with
// Producer.Produce per record, delivery reports read from Events() with
// go.delivery.report.fields=none so nothing is copied back into Go. It
// is only built with -tags confluent,dynamic, against the system's
// librdkafka (Debian's librdkafka-dev), so the default build needs no cgo;
// the harness builds such a child itself when asked for confluent.

func init() {
	register("confluent", "librdkafka (C) buffers and batches outside the Go heap: "+
		"allocs_per_record, bytes_alloc_per_record and gc_cycles count only the Go side; "+
		"cpu_ns_per_record includes librdkafka's threads", openConfluent)
}

type confluentProducer struct {
	p     *kafka.Producer
	topic string
	track *tracker
	gs    []confluentGoroutine
	done  chan struct{}
}

type confluentGoroutine struct {
	appended int64
	_        [56]byte
}

func openConfluent(_ context.Context, cfg clientConfig) (producer, error) {
	switch cfg.Compression {
	case "none", "gzip", "snappy", "lz4", "zstd":
	default:
		return nil, fmt.Errorf("confluent: unknown compression %q", cfg.Compression)
	}
	acks := "all"
	if !cfg.idempotent() {
		acks = "1"
	}
	p, err := kafka.NewProducer(&kafka.ConfigMap{
		"bootstrap.servers":                     strings.Join(cfg.Brokers, ","),
		"client.id":                             "ktape-bench-confluent",
		"enable.idempotence":                    cfg.idempotent(),
		"acks":                                  acks,
		"linger.ms":                             int(linger / time.Millisecond),
		"batch.size":                            batchMaxBytes,
		"message.max.bytes":                     2 * batchMaxBytes,
		"max.in.flight.requests.per.connection": maxInFlight,
		"compression.type":                      cfg.Compression,
		"queue.buffering.max.messages":          maxBufferedRecs,
		"go.delivery.report.fields":             "none",
	})
	if err != nil {
		return nil, fmt.Errorf("confluent: new producer: %w", err)
	}
	c := &confluentProducer{p: p, topic: cfg.Topic, track: newTracker(), gs: make([]confluentGoroutine, cfg.Goroutines), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ev := range p.Events() {
			switch e := ev.(type) {
			case *kafka.Message:
				c.track.report(1, e.TopicPartition.Error)
			case kafka.Error:
				if e.IsFatal() {
					c.track.abort(e)
				}
			}
		}
	}()
	return c, nil
}

func (c *confluentProducer) Append(g int, partition int32, value []byte) error {
	m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &c.topic, Partition: partition}, Value: value}
	for {
		err := c.p.Produce(m, nil)
		if err == nil {
			c.gs[g].appended++
			return nil
		}
		var ke kafka.Error
		if !errors.As(err, &ke) || ke.Code() != kafka.ErrQueueFull {
			return fmt.Errorf("confluent: produce: %w", err)
		}
		time.Sleep(50 * time.Microsecond) // librdkafka's queue is full: let it send
	}
}

func (c *confluentProducer) Flush(ctx context.Context) error {
	var appended int64
	for i := range c.gs {
		appended += c.gs[i].appended
	}
	if err := c.track.wait(ctx, appended); err != nil {
		return fmt.Errorf("confluent: %w", err)
	}
	return nil
}

func (c *confluentProducer) Close() error {
	c.p.Close()
	<-c.done
	return nil
}
