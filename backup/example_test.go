package backup_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A snapshot backup of a cluster into a local repository, then a second
// one that stores only what was produced in between.
func ExampleRun() {
	ctx := context.Background()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	produce := func(values ...string) {
		p, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("orders"))
		if err != nil {
			log.Fatal(err)
		}
		defer p.Close()
		for _, v := range values {
			if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				log.Fatal(err)
			}
		}
	}

	dir, err := os.MkdirTemp("", "ktape-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := storage.Open(ctx, dir)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, true)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(ctx, cluster.ListenAddrs(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	produce("a", "b", "c")
	first, stats, err := backup.Run(ctx, c, r, backup.Options{})
	if err != nil {
		log.Fatal(err)
	}
	p := first.Topics[0].Partitions[0]
	fmt.Printf("first: orders/0 [%d, %d), %d records fetched\n", p.From, p.To, stats.Records)

	produce("d", "e")
	second, stats, err := backup.Run(ctx, c, r, backup.Options{})
	if err != nil {
		log.Fatal(err)
	}
	p = second.Topics[0].Partitions[0]
	fmt.Printf("second: orders/0 [%d, %d), %d records fetched, continues the first: %v\n", p.From, p.To, stats.Records, second.Parent == first.ID)
	// Output:
	// first: orders/0 [0, 3), 3 records fetched
	// second: orders/0 [0, 5), 2 records fetched, continues the first: true
}
