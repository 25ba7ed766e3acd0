package client_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/ktape/ktape/client"
)

// Workers share the partitions of a backup run through a Kafka group: the
// leader plans (lists the partitions, names the run), every worker gets a
// balanced, sticky share, and works on it until the group rebalances.
func ExampleClient_NewGroupMember() {
	ctx := context.Background()
	cl, err := client.New(ctx, []string{"localhost:9092"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	m, err := cl.NewGroupMember(client.GroupConfig{
		Group:          "ktape-backup-orders",
		InstanceID:     "worker-1", // optional: a restart within the session timeout keeps its share
		SessionTimeout: 30 * time.Second,
		Plan: func(ctx context.Context) ([]client.TopicPartition, []byte, error) {
			// Runs on the leader only: what to share, and the run id
			// every worker is told.
			return []client.TopicPartition{{Topic: "orders", Partition: 0}, {Topic: "orders", Partition: 1}},
				[]byte("run-2026-11-22"), nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	for {
		a, err := m.Join(ctx)
		if err != nil {
			log.Fatal(err) // e.g. the group name is used by Kafka consumers
		}
		log.Printf("generation %d: run %s, back up %v", a.Generation, a.Shared, a.Items)
		work, stop := context.WithCancel(ctx)
		go backUp(work, a.Items)
		<-m.Revoked() // a member joined or left, or this one lost its session
		stop()        // stop writing, save progress, then rejoin
		if err := m.Err(); !errors.Is(err, client.ErrRebalance) {
			log.Printf("membership lost: %v", err)
		}
		if done() {
			break
		}
	}
	if err := m.Leave(ctx); err != nil {
		log.Print(err)
	}
}

func backUp(context.Context, []client.TopicPartition) {}
func done() bool                                      { return true }
