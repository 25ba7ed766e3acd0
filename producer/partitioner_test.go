package producer_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/ktape/ktape/producer"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Keys land on the partition franz-go's key partitioner picks, which
// follows the Java client.
func TestPartitionForKeyMatchesFranzGo(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	part := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for i := 0; i < 20000; i++ {
		key := make([]byte, rng.Intn(40)+1)
		rng.Read(key)
		n := int32(rng.Intn(200) + 1)
		want := part.Partition(&kgo.Record{Key: key}, int(n))
		if got := producer.PartitionForKey(key, n); int(got) != want {
			t.Fatalf("key %x over %d partitions: ktape %d, franz-go %d", key, n, got, want)
		}
	}
}

func TestPartitionForKeyAllocatesNothing(t *testing.T) {
	key := []byte("order-42")
	if n := testing.AllocsPerRun(100, func() { producer.PartitionForKey(key, 12) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func ExamplePartitionForKey() {
	fmt.Println(producer.PartitionForKey([]byte("order-42"), 12))
	// Output: 0
}
