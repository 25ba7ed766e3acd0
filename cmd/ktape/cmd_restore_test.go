package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ktape backup, then ktape restore --remap into another cluster: the
// records arrive, read back by franz-go; bad flags are usage errors.
func TestRestoreCommand(t *testing.T) {
	src := kfaketest.Start(t, kfaketest.Topics(2, "orders"))
	for p := int32(0); p < 2; p++ {
		var rs []*kgo.Record
		for i := 0; i < 50; i++ {
			rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprint(p, "-", i)), Value: []byte("v")})
		}
		src.Produce(t, "orders", p, rs...)
	}
	dir := t.TempDir()
	if code, _, errOut := runKtape(t, "backup", "--brokers", src.Addrs()[0], "--repo", dir); code != 0 {
		t.Fatalf("backup: %d %s", code, errOut)
	}
	dst := kfaketest.Start(t, kfaketest.Topics(1, "x"))
	// A dry run shows the plan and writes nothing.
	code, out, errOut := runKtape(t, "restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--remap", "orders=copy", "--dry-run")
	if code != 0 || !strings.Contains(out, "orders -> copy (creating it with 2 partitions)") || !strings.Contains(out, "partition 1: offsets 0..49") {
		t.Fatalf("dry run: %d %s %s", code, out, errOut)
	}
	// (The restore below creating the topic shows the dry run did not.)
	code, out, errOut = runKtape(t, "restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--remap", "orders=copy", "--json")
	if code != 0 {
		t.Fatalf("restore: %d %s", code, errOut)
	}
	var done struct {
		MessageType   string `json:"message_type"`
		Records       int64  `json:"records"`
		TopicsCreated int    `json:"topics_created"`
	}
	if err := json.Unmarshal([]byte(out), &done); err != nil || done.MessageType != "restore_done" || done.Records != 100 || done.TopicsCreated != 1 {
		t.Fatalf("restore --json: %q, %v", out, err)
	}
	if got := dst.ConsumeAll(t, "copy", kgo.ReadCommitted()); len(got) != 100 {
		t.Fatalf("the target holds %d records, want 100", len(got))
	}
	for _, bad := range [][]string{
		{"restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--remap", "orders"},
		{"restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--remap", "(=x"},
		{"restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--remap", "orders=bad name"},
		{"restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--replication-factor", "-1"},
		{"restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--from", "yesterday"},
		{"restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--to-offset", "orders:0"},
		{"restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--to-offset", "nothing:0:5"},
		{"restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--from", "2026-11-22T00:00:00Z", "--to", "2026-11-21T00:00:00Z"},
		{"restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--group-remap", "x"},
	} {
		if code, _, errOut := runKtape(t, bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", bad[4:], code, errOut)
		}
	}
	// The same restore again: already done, nothing produced.
	if code, out, errOut := runKtape(t, "restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--remap", "orders=copy"); code != 0 || !strings.Contains(out, "had already finished") {
		t.Fatalf("the same restore again: %d %s %s", code, out, errOut)
	}
	// A different restore into the now full topic: refused, naming it.
	if code, _, errOut := runKtape(t, "restore", "--brokers", dst.Addrs()[0], "--repo", dir, "--remap", "orders=copy", "--to-offset", "orders:0:10"); code != 1 || !strings.Contains(errOut, "copy/0 (50 records)") {
		t.Fatalf("restore into full partitions: %d %s", code, errOut)
	}
}

// ktape restore --partition-map: a dry run shows the mapping; a restore
// by key (set in the environment) puts each record where franz-go's
// partitioner puts its key; malformed maps, and maps that leave a
// partition out, are usage errors naming the flag and the bad part.
func TestRestorePartitionMapCommand(t *testing.T) {
	src := kfaketest.Start(t, kfaketest.Topics(2, "orders"))
	for p := int32(0); p < 2; p++ {
		var rs []*kgo.Record
		for i := 0; i < 50; i++ {
			rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprint("k", i%13)), Value: []byte(fmt.Sprint(p, "-", i))})
		}
		src.ProduceWith(t, kfaketest.ProduceOptions{Compression: kgo.SnappyCompression()}, "orders", p, rs...)
	}
	dir := t.TempDir()
	if code, _, errOut := runKtape(t, "backup", "--brokers", src.Addrs()[0], "--repo", dir); code != 0 {
		t.Fatalf("backup: %d %s", code, errOut)
	}
	dst := kfaketest.Start(t)
	base := []string{"restore", "--brokers", dst.Addrs()[0], "--repo", dir}
	code, out, errOut := runKtape(t, append(base, "--remap", "orders=copy", "--partition-map", "orders=hash:3", "--dry-run")...)
	if code != 0 || !strings.Contains(out, "orders -> copy (creating it with 3 partitions)") ||
		!strings.Contains(out, "partition map orders=hash:3: records spread by key over partitions 0..2") || !strings.Contains(out, "partition 1 -> by key: offsets 0..49") {
		t.Fatalf("dry run: %d %s %s", code, out, errOut)
	}
	code, out, errOut = runKtape(t, append(base, "--remap", "orders=merged", "--partition-map", "orders=1:0,0:0", "--dry-run", "--json")...)
	var plan struct {
		Topics []struct {
			Partitions   int    `json:"partitions"`
			PartitionMap string `json:"partition_map"`
			Restored     []struct {
				Partition int32 `json:"partition"`
				Target    int32 `json:"target_partition"`
			} `json:"restored"`
		} `json:"topics"`
	}
	if err := json.Unmarshal([]byte(out), &plan); code != 0 || err != nil || len(plan.Topics) != 1 || plan.Topics[0].Partitions != 1 ||
		plan.Topics[0].PartitionMap != "orders=0:0,1:0" || fmt.Sprint(plan.Topics[0].Restored) != "[{0 0} {1 0}]" {
		t.Fatalf("dry run --json: %d %s %s %v", code, out, errOut, err)
	}

	t.Setenv("KTAPE_PARTITION_MAP", "orders=hash:3")
	code, out, errOut = runKtape(t, append(base, "--remap", "orders=copy", "--json")...)
	var done struct {
		Records       int64    `json:"records"`
		Repartitioned int64    `json:"repartitioned_batches"`
		NotTranslated []string `json:"groups_not_translated"`
	}
	if err := json.Unmarshal([]byte(out), &done); code != 0 || err != nil || done.Records != 100 || done.Repartitioned == 0 {
		t.Fatalf("restore: %d %s %s", code, out, errOut)
	}
	part := kgo.StickyKeyPartitioner(nil).ForTopic("copy")
	got := dst.ConsumeAll(t, "copy", kgo.ReadCommitted())
	for _, r := range got {
		if want := part.Partition(r, 3); int(r.Partition) != want {
			t.Fatalf("key %s in partition %d, franz-go puts it in %d", r.Key, r.Partition, want)
		}
	}
	if len(got) != 100 {
		t.Fatalf("the target holds %d records", len(got))
	}
	t.Setenv("KTAPE_PARTITION_MAP", "")

	for _, tc := range []struct{ spec, want string }{
		{"orders", `--partition-map "orders": want TOPIC_REGEX=hash:N`},
		{"orders=hash:0", `--partition-map "orders=hash:0": hash:0: want a partition count`},
		{"orders=0:0,1:x", `--partition-map "orders=0:0,1:x": "1:x": want SRC:DST`},
		{"(=hash:2", `--partition-map "(=hash:2": topic expression "("`},
		{"orders=0:0", "leaves out source partitions 1 of topic orders"},
		{"nothing=hash:2", "the partition map nothing=hash:2 matches no topic restored"},
	} {
		code, _, errOut := runKtape(t, append(base, "--remap", "orders=x", "--partition-map", tc.spec)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("--partition-map %s: exit %d, want 2 and %q: %s", tc.spec, code, tc.want, errOut)
		}
	}
}
