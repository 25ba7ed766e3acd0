package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/testfixtures"
	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

// makeRepo stores one backup of a fixture's partitions (kgo-written
// batches in every codec) in a new local repository.
func makeRepo(t *testing.T) (dir string, m *repo.Manifest) {
	t.Helper()
	ctx := context.Background()
	dir = t.TempDir()
	st, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, st, true)
	if err != nil {
		t.Fatal(err)
	}
	names, err := testfixtures.Names()
	if err != nil {
		t.Fatal(err)
	}
	fx, err := testfixtures.Load(names[0])
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	m = &repo.Manifest{Format: "ktape-backup", Version: 1, ID: repo.NewBackupID(now), Started: now, Finished: now,
		KtapeVersion: "test", Mode: "snapshot", Isolation: "read_uncommitted"}
	topic := repo.Topic{Name: "orders", ID: strings.Repeat("ab", 16), PartitionsCount: len(fx.Partitions)}
	for _, fp := range fx.Partitions {
		var buf bytes.Buffer
		w, _ := repo.NewSegmentWriter(&buf, repo.FramingZstd, 0)
		it := record.NewIter(fp.Raw)
		p := repo.Partition{Partition: fp.Partition, From: -1}
		for it.Next() {
			b := it.Batch()
			if p.From < 0 {
				p.From = b.BaseOffset()
			}
			p.To = b.LastOffset() + 1
			if err := w.Append(b); err != nil {
				t.Fatal(err)
			}
		}
		if p.From < 0 {
			p.From = 0
			topic.Partitions = append(topic.Partitions, p)
			continue
		}
		seg, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		ref, err := r.PutSegment(ctx, topic.Name, topic.ID, p.Partition, buf.Bytes(), seg)
		if err != nil {
			t.Fatal(err)
		}
		p.Segments = append(p.Segments, ref)
		topic.Partitions = append(topic.Partitions, p)
	}
	m.Topics = []repo.Topic{topic}
	if err := r.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func runKtape(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestLsDescribeVerify(t *testing.T) {
	dir, m := makeRepo(t)
	code, out, errOut := runKtape(t, "ls", "--repo", dir)
	if code != 0 || !strings.Contains(out, m.ID) || !strings.Contains(out, "snapshot") {
		t.Fatalf("ls: %d %q %q", code, out, errOut)
	}
	code, out, _ = runKtape(t, "ls", "--repo", dir, "--json")
	var line struct {
		MessageType string `json:"message_type"`
		ID          string `json:"id"`
		Partitions  int    `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(out), &line); code != 0 || err != nil || line.ID != m.ID || line.MessageType != "backup" || line.Partitions != len(m.Topics[0].Partitions) {
		t.Fatalf("ls --json: %d %q %v", code, out, err)
	}
	code, out, _ = runKtape(t, "describe", "--repo", dir)
	if code != 0 || !strings.Contains(out, "orders") || !strings.Contains(out, "[0, ") {
		t.Fatalf("describe: %d %q", code, out)
	}
	code, out, _ = runKtape(t, "describe", "--repo", dir, m.ID, "--json")
	if code != 0 || !strings.Contains(out, `"message_type":"manifest"`) || !strings.Contains(out, m.ID) {
		t.Fatalf("describe --json: %d %q", code, out)
	}
	for _, deep := range []string{"", "--deep"} {
		args := []string{"verify", "--repo", dir}
		if deep != "" {
			args = append(args, deep)
		}
		if code, out, errOut := runKtape(t, args...); code != 0 || !strings.Contains(out, "no problems found") {
			t.Fatalf("verify %s: %d %q %q", deep, code, out, errOut)
		}
	}
	// Damage one segment: verify names it and exits 3.
	key := m.Topics[0].Partitions[0].Segments[0].Key
	path := filepath.Join(dir, filepath.FromSlash(key))
	b, _ := os.ReadFile(path)
	b[len(b)-1] ^= 1
	os.WriteFile(path, b, 0o644)
	code, out, errOut = runKtape(t, "verify", "--repo", dir)
	if code != 3 || !strings.Contains(out, key) || !strings.Contains(errOut, "verify found 1 problems") {
		t.Fatalf("verify a damaged backup: %d %q %q", code, out, errOut)
	}
	code, out, _ = runKtape(t, "verify", "--repo", dir, "--json")
	if code != 3 || !strings.Contains(out, `"message_type":"problem"`) || !strings.Contains(out, `"problems":1`) {
		t.Fatalf("verify --json: %d %q", code, out)
	}
}

func TestRepoCommandErrors(t *testing.T) {
	t.Setenv("KTAPE_REPO", "")
	if code, _, errOut := runKtape(t, "ls"); code != 2 || !strings.Contains(errOut, "--repo") {
		t.Fatalf("ls without a repository: %d %q", code, errOut)
	}
	if code, _, errOut := runKtape(t, "ls", "--repo", filepath.Join(t.TempDir(), "missing")); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Fatalf("ls of a missing directory: %d %q", code, errOut)
	}
	if code, _, errOut := runKtape(t, "verify", "--repo", t.TempDir()); code != 1 || !strings.Contains(errOut, "not a ktape repository") {
		t.Fatalf("verify of an empty directory: %d %q", code, errOut)
	}
	dir, _ := makeRepo(t)
	if code, _, errOut := runKtape(t, "describe", "--repo", dir, "20200101T000000Z-00000000"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("describe of an unknown backup: %d %q", code, errOut)
	}
	if code, _, _ := runKtape(t, "describe", "--repo", dir, "a", "b"); code != 2 {
		t.Fatalf("two ids: %d", code)
	}
}

// ktape backup against kfake, then ls and verify --deep on what it wrote.
func TestBackupCommand(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(3, "orders", "skipped"))
	var recs []*kgo.Record
	for i := 0; i < 200; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: bytes.Repeat([]byte{'v'}, i)})
	}
	c.Produce(t, "orders", 1, recs...)
	c.Produce(t, "skipped", 0, &kgo.Record{Value: []byte("not backed up")})
	dir := filepath.Join(t.TempDir(), "repo")
	code, out, errOut := runKtape(t, "backup", "--brokers", c.Addrs()[0], "--repo", dir, "--topics", "ord.*", "--json")
	var done struct {
		Backup     string `json:"backup"`
		Topics     int    `json:"topics"`
		Partitions int    `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(out), &done); code != 0 || err != nil || done.Topics != 1 || done.Partitions != 3 {
		t.Fatalf("backup: %d %q %q", code, out, errOut)
	}
	if code, out, _ := runKtape(t, "verify", "--repo", dir, "--deep", done.Backup); code != 0 || !strings.Contains(out, "no problems") {
		t.Fatalf("verify: %d %q", code, out)
	}
	if code, out, _ := runKtape(t, "describe", "--repo", dir); code != 0 || !strings.Contains(out, "[0, 200)") || strings.Contains(out, "skipped") {
		t.Fatalf("describe: %d %q", code, out)
	}
	for _, bad := range [][]string{
		{"backup", "--repo", dir},
		{"backup", "--brokers", "x:1", "--repo", dir, "--topics", "("},
		{"backup", "--brokers", "x:1", "--repo", dir, "--mode", "forever"},
		{"backup", "--brokers", "x:1", "--repo", dir, "--checkpoint-interval", "0s"},
		{"backup", "--brokers", "x:1", "--repo", dir, "--memory", "1000"},
	} {
		if code, _, _ := runKtape(t, bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}
