package producer_test

import (
	"context"
	"fmt"
	"log"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/producer"
	"github.com/ktape/ktape/record"
)

// Appending records: each Append copies the record into its partition's
// batch and returns a ticket; waiting on the last ticket of a partition
// waits for everything appended to it before.
func ExampleProducer_Append() {
	ctx := context.Background()
	c, err := client.New(ctx, []string{"localhost:9092"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	p, err := producer.New(ctx, c, producer.Config{Compression: record.LZ4})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	var last producer.Ticket
	for i := 0; i < 1000; i++ {
		key := []byte(fmt.Sprint("user-", i%10))
		last, err = p.Append(ctx, "events", producer.AnyPartition, key, []byte("clicked"),
			record.Header{Key: []byte("source"), Value: []byte("web")})
		if err != nil {
			log.Fatal(err)
		}
	}
	if err := last.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil { // everything else
		log.Fatal(err)
	}
}

// Sending a batch as it is (a restore): the producer rewrites its header
// in place and sends the bytes untouched.
func ExampleProducer_SendBatch() {
	ctx := context.Background()
	c, err := client.New(ctx, []string{"localhost:9092"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	p, err := producer.New(ctx, c, producer.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	var batch record.Batch // e.g. read from a backup segment
	tp := client.TopicPartition{Topic: "orders", Partition: 3}
	if err := p.SendBatch(ctx, tp, batch, func(offset int64, err error) {
		if err != nil {
			log.Printf("%s: %v", tp, err)
		}
	}); err != nil {
		log.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		log.Fatal(err)
	}
}
