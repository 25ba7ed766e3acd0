package restore_test

import (
	"fmt"
	"log"
	"regexp"

	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/restore"
)

// Plan shows where each backed-up partition would go: here every topic
// under a "dr." prefix, the dead-letter topic left out.
func ExamplePlan() {
	m := &repo.Manifest{Topics: []repo.Topic{
		{Name: "orders", PartitionsCount: 2, Partitions: []repo.Partition{{Partition: 0}, {Partition: 1}}},
		{Name: "orders-dlq", PartitionsCount: 1, Partitions: []repo.Partition{{Partition: 0}}},
	}}
	targets, err := restore.Plan(m, restore.Options{
		Exclude: []*regexp.Regexp{regexp.MustCompile(`.*-dlq`)},
		Remap:   []restore.Remap{{From: regexp.MustCompile(`(.*)`), To: "dr.$1"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range targets {
		fmt.Println(t.Source, "->", t.Dest)
	}
	// Output:
	// orders/0 -> dr.orders/0
	// orders/1 -> dr.orders/1
}
