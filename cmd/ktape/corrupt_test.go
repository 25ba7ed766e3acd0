package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The corruption matrix: a real repository written by `ktape backup` from
// kfake (three topics, producer codecs none, lz4 and zstd, segments plain
// and framed with zstd or lz4) is damaged in every way FORMAT.md's objects
// can be damaged, one damage per trial, and then
//
//   - `ktape verify --deep` must fail with a message naming the damaged
//     object (and, for a segment, the byte or batch where it applies);
//   - `ktape verify` (shallow) must fail too where the damage is visible
//     without reading batches (all the kinds here: it checks SHA-256s);
//   - `ktape restore` into a fresh kfake cluster must fail naming the
//     object, and what reached the target, read back by franz-go, must be a
//     prefix of each source partition's records: never a wrong record.
//
// Bit flips land at seeded random positions; KTAPE_CORRUPT_TRIALS sets how
// many per kind (default 3; `make reliability-long` sets more) and
// KTAPE_CORRUPT_SEED the seed (default 1).

// corruptTopics are the source topics: name, partitions, producer codec.
var corruptTopics = []struct {
	name       string
	partitions int32
	codec      kgo.CompressionCodec
}{
	{"plain", 2, kgo.NoCompression()},
	{"lz4t", 2, kgo.Lz4Compression()},
	{"zstdt", 1, kgo.ZstdCompression()},
}

// corruptSource is a source cluster, its records per topic/partition (as
// franz-go reads them) and two repositories of it, each holding an older
// backup and a newer full one: framing auto (zstd frames for the
// uncompressed topic, plain segments for the others) and lz4 frames.
type corruptSource struct {
	records map[string][]*kgo.Record // "topic/partition"
	repos   map[string]string        // framing -> directory
}

func newCorruptSource(t *testing.T) *corruptSource {
	src := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(2, "plain", "lz4t"), kfaketest.Topics(1, "zstdt"))
	produce := func(round int) {
		for _, tp := range corruptTopics {
			for p := int32(0); p < tp.partitions; p++ {
				var rs []*kgo.Record
				for i := 0; i < 30; i++ {
					rs = append(rs, &kgo.Record{Key: fmt.Appendf(nil, "%s/%d/%d/%d", tp.name, p, round, i),
						Value: bytes.Repeat([]byte{byte('a' + i%26)}, 10+i*7), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte{byte(round)}}}})
				}
				src.ProduceWith(t, kfaketest.ProduceOptions{Compression: tp.codec}, tp.name, p, rs...)
			}
		}
	}
	cs := &corruptSource{records: map[string][]*kgo.Record{}, repos: map[string]string{}}
	produce(0)
	produce(1)
	for _, framing := range []string{"auto", "lz4"} {
		dir := filepath.Join(t.TempDir(), framing)
		if code, _, errOut := runKtape(t, "backup", "--brokers", src.Addrs()[0], "--repo", dir, "--compression", framing, "--skip-groups"); code != 0 {
			t.Fatalf("backup 1 (%s): %d %s", framing, code, errOut)
		}
		cs.repos[framing] = dir
	}
	produce(2)
	for _, framing := range []string{"auto", "lz4"} {
		// The newer backup is full, so its segments differ from the older
		// one's: the older ones are the stale objects.
		if code, _, errOut := runKtape(t, "backup", "--brokers", src.Addrs()[0], "--repo", cs.repos[framing], "--compression", framing, "--full", "--skip-groups"); code != 0 {
			t.Fatalf("backup 2 (%s): %d %s", framing, code, errOut)
		}
	}
	for _, tp := range corruptTopics {
		for _, r := range src.ConsumeAll(t, tp.name) {
			k := fmt.Sprintf("%s/%d", tp.name, r.Partition)
			cs.records[k] = append(cs.records[k], r)
		}
	}
	return cs
}

// corruptRepo is a copy of a source repository for one trial, with what
// a damage needs to know about it.
type corruptRepo struct {
	dir     string
	m       *repo.Manifest // the newest backup, the one verify and restore read
	older   *repo.Manifest
	framing string
}

func (r *corruptRepo) path(key string) string { return filepath.Join(r.dir, filepath.FromSlash(key)) }

// seg returns the key of the first segment of topic/partition in the
// newest backup.
func (r *corruptRepo) seg(t *testing.T, topic string, p int32) string {
	t.Helper()
	return r.m.Topic(topic).Partition(p).Segments[0].Key
}

func (r *corruptRepo) manifestKey() string { return "backups/" + r.m.ID + ".json" }

func copyRepo(t *testing.T, from, framing string) *corruptRepo {
	t.Helper()
	dir := copyDir(t, from)
	ctx := context.Background()
	st, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := repo.Open(ctx, st, false)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := rp.Backups(ctx)
	if err != nil || len(ids) != 2 {
		t.Fatalf("backups %v, %v", ids, err)
	}
	cr := &corruptRepo{dir: dir, framing: framing}
	if cr.older, err = rp.Manifest(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if cr.m, err = rp.Manifest(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	return cr
}

// damage is one way of damaging a repository. apply damages r and returns
// the object keys an error must name, and the partitions ("topic/p")
// whose records may be missing from the target.
type damage struct {
	name string
	// random says the damage lands at a random position: it is tried
	// KTAPE_CORRUPT_TRIALS times, the others once.
	random bool
	// unseen: some instances cannot be detected and are harmless. The
	// descriptor ktape.json and manifests have no checksum; the
	// descriptor's id and creation time are read by nothing that restores
	// data, so a flipped hex digit in either leaves a valid descriptor.
	unseen bool
	// deepOnly: shallow verify is not expected to see it.
	deepOnly bool
	apply    func(t *testing.T, r *corruptRepo, rng *rand.Rand) (keys []string, where string)
}

func flipBit(t *testing.T, path string, rng *rand.Rand) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pos := rng.IntN(len(b))
	bit := rng.IntN(8)
	lo, hi := max(0, pos-12), min(len(b), pos+12)
	before := string(b[lo:hi])
	b[pos] ^= 1 << bit
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("bit %d of byte %d of %d: %q -> %q", bit, pos, len(b), before, b[lo:hi])
}

func truncate(t *testing.T, path string, rng *rand.Rand) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := rng.IntN(len(b))
	if err := os.WriteFile(path, b[:n], 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("cut to %d of %d bytes", n, len(b))
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// swap exchanges the contents of two segments and of their indexes: the
// keys stay, the bytes move.
func swap(t *testing.T, r *corruptRepo, a, b string) {
	t.Helper()
	for _, pair := range [][2]string{{a, b}, {repo.IndexKey(a), repo.IndexKey(b)}} {
		x, err := os.ReadFile(r.path(pair[0]))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(r.path(pair[1]))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(r.path(pair[0]), y, 0o644)
		os.WriteFile(r.path(pair[1]), x, 0o644)
	}
}

var damages = []damage{
	{name: "flip framed or plain segment (uncompressed batches)", random: true, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		k := r.seg(t, "plain", 0)
		return []string{k}, flipBit(t, r.path(k), rng)
	}},
	{name: "flip segment of producer-compressed batches", random: true, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		k := r.seg(t, "lz4t", 1)
		return []string{k}, flipBit(t, r.path(k), rng)
	}},
	{name: "flip index", random: true, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		k := repo.IndexKey(r.seg(t, "zstdt", 0))
		return []string{k}, flipBit(t, r.path(k), rng)
	}},
	// A manifest holds no checksum of itself (format version 1): a flip
	// that leaves valid JSON with a valid value the segments cannot
	// contradict (a high watermark 90 -> 98, a finish time 2026 -> 2226)
	// passes unseen. The matrix counts these (unseen) and requires that
	// the restore is then whole and correct.
	{name: "flip manifest", random: true, unseen: true, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		k := r.manifestKey()
		return []string{k}, flipBit(t, r.path(k), rng)
	}},
	{name: "flip descriptor ktape.json", random: true, unseen: true, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		return []string{"ktape.json"}, flipBit(t, r.path("ktape.json"), rng)
	}},
	{name: "truncate segment", random: true, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		k := r.seg(t, "plain", 1)
		return []string{k}, truncate(t, r.path(k), rng)
	}},
	{name: "truncate index", random: true, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		k := repo.IndexKey(r.seg(t, "lz4t", 0))
		return []string{k}, truncate(t, r.path(k), rng)
	}},
	{name: "truncate manifest", random: true, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		k := r.manifestKey()
		return []string{k}, truncate(t, r.path(k), rng)
	}},
	{name: "missing segment", random: false, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		k := r.seg(t, "zstdt", 0)
		remove(t, r.path(k))
		return []string{k}, "removed"
	}},
	{name: "missing index", random: false, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		k := repo.IndexKey(r.seg(t, "plain", 0))
		remove(t, r.path(k))
		return []string{k}, "removed"
	}},
	{name: "missing descriptor ktape.json", random: false, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		remove(t, r.path("ktape.json"))
		return []string{"ktape.json"}, "removed"
	}},
	{name: "segment+index swapped between partitions", random: false, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		a, b := r.seg(t, "plain", 0), r.seg(t, "plain", 1)
		swap(t, r, a, b)
		return []string{a, b}, "plain/0 <-> plain/1"
	}},
	{name: "segment+index swapped between topics", random: false, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		a, b := r.seg(t, "lz4t", 0), r.seg(t, "zstdt", 0)
		swap(t, r, a, b)
		return []string{a, b}, "lz4t/0 <-> zstdt/0"
	}},
	{name: "stale segment+index (older backup's) under the newer key", random: false, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		k := r.seg(t, "lz4t", 1)
		old := r.older.Topic("lz4t").Partition(1).Segments[0].Key
		for _, pair := range [][2]string{{old, k}, {repo.IndexKey(old), repo.IndexKey(k)}} {
			b, err := os.ReadFile(r.path(pair[0]))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(r.path(pair[1]), b, 0o644)
		}
		return []string{k}, "older " + old
	}},
	{name: "stale index only (older backup's)", random: false, apply: func(t *testing.T, r *corruptRepo, rng *rand.Rand) ([]string, string) {
		k := r.seg(t, "plain", 1)
		old := r.older.Topic("plain").Partition(1).Segments[0].Key
		b, err := os.ReadFile(r.path(repo.IndexKey(old)))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(r.path(repo.IndexKey(k)), b, 0o644)
		return []string{repo.IndexKey(k)}, "older " + repo.IndexKey(old)
	}},
}

// corruptTrials is how many random positions each random damage is tried at.
func corruptTrials(t *testing.T) int {
	if s := os.Getenv("KTAPE_CORRUPT_TRIALS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("KTAPE_CORRUPT_TRIALS=%q: want a positive count", s)
		}
		return n
	}
	return 3
}

func corruptSeed(t *testing.T) uint64 {
	if s := os.Getenv("KTAPE_CORRUPT_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KTAPE_CORRUPT_SEED=%q: want a number", s)
		}
		return n
	}
	return 1
}

// matrixCounts are the figures the matrix reports: trials; damage found
// (naming the object) by verify, verify --deep and restore; damage none
// of them found although it was harmless (verify passed and the restore
// was whole and correct: a repository id or creation time, see
// damage.unseen); restores that passed damage they cannot see but that
// changed nothing restored; records written from partially restored
// partitions (a correct prefix); and wrong records written.
type matrixCounts struct {
	trials, shallow, deep, restore, unseen, restoreHarmless, partial, wrong int
}

func (c *matrixCounts) add(o matrixCounts) {
	c.trials += o.trials
	c.shallow += o.shallow
	c.deep += o.deep
	c.restore += o.restore
	c.unseen += o.unseen
	c.restoreHarmless += o.restoreHarmless
	c.partial += o.partial
	c.wrong += o.wrong
}

func TestCorruptionMatrix(t *testing.T) {
	cs := newCorruptSource(t)
	trials, seed := corruptTrials(t), corruptSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x6b74617065))
	counts := map[string]*matrixCounts{}
	var total matrixCounts
	start := time.Now()
	for _, d := range damages {
		c := &matrixCounts{}
		counts[d.name] = c
		n := 1
		if d.random {
			n = trials
		}
		for _, framing := range []string{"auto", "lz4"} {
			for i := 0; i < n; i++ {
				r := copyRepo(t, cs.repos[framing], framing)
				keys, where := d.apply(t, r, rng)
				c.add(corruptTrial(t, cs, r, d, keys, fmt.Sprintf("%s [%s framing, %s]", d.name, framing, where)))
			}
		}
		total.add(*c)
	}
	var names []string
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("corruption matrix, seed %d, %d random positions per kind, %s:", seed, trials, time.Since(start).Round(time.Millisecond))
	row := func(n string, c matrixCounts) {
		t.Logf("| %-58s | %6d | %7d | %4d | %7d | %6d | %16d | %7d | %5d |", n, c.trials, c.shallow, c.deep, c.restore, c.unseen, c.restoreHarmless, c.partial, c.wrong)
	}
	t.Logf("| %-58s | %6s | %7s | %4s | %7s | %6s | %16s | %7s | %5s |", "damage", "trials", "verify", "deep", "restore", "unseen", "restore harmless", "partial", "wrong")
	for _, n := range names {
		row(n, *counts[n])
	}
	row("total", total)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// corruptTrial runs verify, verify --deep and restore on a repository
// damaged by d and checks that each found the damage naming keys, and that
// the target holds only correct prefixes of the source partitions.
func corruptTrial(t *testing.T, cs *corruptSource, r *corruptRepo, d damage, keys []string, name string) (c matrixCounts) {
	t.Helper()
	c.trials = 1
	names := func(s string) bool {
		for _, k := range keys {
			if strings.Contains(s, k) {
				return true
			}
		}
		// A manifest value that no longer matches an index is reported
		// by the index, as disagreeing with the manifest.
		return strings.HasPrefix(keys[0], "backups/") && strings.Contains(s, "disagrees with the manifest")
	}
	type outcome struct {
		code     int
		out, err string
	}
	var verify [2]outcome
	for i, args := range [][]string{{"verify", "--repo", r.dir}, {"verify", "--deep", "--repo", r.dir}} {
		o := &verify[i]
		o.code, o.out, o.err = runKtape(t, args...)
		if strings.Count(strings.TrimSpace(o.err), "\n") > 0 {
			t.Errorf("%s: %v: the error is more than one line: %q", name, args[:len(args)-2], o.err)
		}
	}
	c.shallow = b2i(verify[0].code != 0 && names(verify[0].out+verify[0].err))
	c.deep = b2i(verify[1].code != 0 && names(verify[1].out+verify[1].err))

	var topics []kfaketest.Option
	for _, tp := range corruptTopics {
		topics = append(topics, kfaketest.Topics(int(tp.partitions), tp.name))
	}
	dst := kfaketest.Start(t, append(topics, kfaketest.Brokers(1))...)
	code, out, errOut := runKtape(t, "restore", "--brokers", dst.Addrs()[0], "--repo", r.dir)
	c.restore = b2i(code != 0 && names(errOut))
	if strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
		t.Errorf("%s: restore: the error is more than one line: %q", name, errOut)
	}
	whole := true
	for _, tp := range corruptTopics {
		got := map[int32][]*kgo.Record{}
		for _, rec := range dst.ConsumeAll(t, tp.name) {
			got[rec.Partition] = append(got[rec.Partition], rec)
		}
		for p := int32(0); p < tp.partitions; p++ {
			want := cs.records[fmt.Sprintf("%s/%d", tp.name, p)]
			g := got[p]
			if len(g) != len(want) {
				whole = false
				c.partial += len(g)
			}
			for i, rec := range g {
				if i >= len(want) || !sameRecord(rec, want[i]) {
					c.wrong++
					if c.wrong < 4 {
						t.Errorf("%s: target %s/%d offset %d holds a record that is not the source's: key %q", name, tp.name, p, i, rec.Key)
					}
				}
			}
		}
	}
	correct := whole && c.wrong == 0 && code == 0
	switch {
	case c.deep == 0 && d.unseen && correct && verify[1].code == 0:
		// Harmless and invisible: see damage.unseen.
		c.unseen = 1
	case c.deep == 0:
		t.Errorf("%s: verify --deep: exit %d, not naming %v: %s%s", name, verify[1].code, keys, verify[1].out, verify[1].err)
	case c.shallow == 0 && !d.deepOnly:
		t.Errorf("%s: verify: exit %d, not naming %v: %s%s", name, verify[0].code, keys, verify[0].out, verify[0].err)
	}
	if c.restore == 0 {
		if code == 0 && correct && c.deep == 1 {
			// Damage a restore cannot see and that changes nothing it
			// writes: bytes the restore rewrites (a batch's partition
			// leader epoch), a manifest SHA-256 digit past the 16 the
			// segment's name holds (restores range-read and check each
			// batch's CRC-32C, not the whole segment's SHA-256), or a
			// frame byte that decompresses to the same batches.
			c.restoreHarmless = 1
		} else if c.unseen == 0 {
			t.Errorf("%s: restore: exit %d, not naming %v: %s%s", name, code, keys, out, errOut)
		}
	}
	return c
}

func sameRecord(a, b *kgo.Record) bool {
	if !bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Value, b.Value) || !a.Timestamp.Equal(b.Timestamp) || len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !bytes.Equal(a.Headers[i].Value, b.Headers[i].Value) {
			return false
		}
	}
	return true
}
