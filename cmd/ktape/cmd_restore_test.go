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
