package repo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/storage"
)

// plainRepo creates a repository, not encrypted, in a new directory.
func plainRepo(t testing.TB) (*storage.Store, *Repository) {
	t.Helper()
	st, err := storage.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(context.Background(), st, true)
	if err != nil {
		t.Fatal(err)
	}
	return st, r
}

// writeBackup stores every fixture partition of v2 batches as partitions
// of one topic, in two segments each where there are enough batches, and
// a manifest naming them.
func writeBackup(t *testing.T, r *Repository) *Manifest {
	t.Helper()
	ctx := context.Background()
	id := "00112233445566778899aabbccddeeff"
	start := time.Now().UTC().Truncate(time.Second)
	m := &Manifest{Format: manifestFormat, Version: manifestVersion, ID: NewBackupID(start), Started: start, Finished: start,
		KtapeVersion: "test", Mode: "snapshot", Isolation: "read_uncommitted"}
	topic := Topic{Name: "fixtures", ID: id}
	for i, batches := range fixtureBatches(t) {
		p := Partition{Partition: int32(i), From: batches[0].BaseOffset(), To: batches[len(batches)-1].LastOffset() + 1}
		half := (len(batches) + 1) / 2
		for j, part := range [][]record.Batch{batches[:half], batches[half:]} {
			if len(part) == 0 {
				continue
			}
			stored, seg := writeSegment(t, []Framing{FramingNone, FramingZstd}[j], 0, part)
			ref, err := r.PutSegment(ctx, topic.Name, topic.ID, p.Partition, stored, seg)
			if err != nil {
				t.Fatal(err)
			}
			p.Segments = append(p.Segments, ref)
		}
		topic.Partitions = append(topic.Partitions, p)
	}
	topic.PartitionsCount = len(topic.Partitions)
	m.Topics = []Topic{topic}
	if err := r.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRepositoryWriteListVerify(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, st, false); err == nil || !strings.Contains(err.Error(), "not a ktape repository") {
		t.Fatalf("empty store without init: %v", err)
	}
	r, err := Open(ctx, st, true)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := Open(ctx, st, true); err != nil || again.ID != r.ID {
		t.Fatalf("reopened: %v, id %s vs %s", err, again.ID, r.ID)
	}
	m := writeBackup(t, r)
	ids, err := r.Backups(ctx)
	if err != nil || len(ids) != 1 || ids[0] != m.ID {
		t.Fatalf("backups: %v, %v", ids, err)
	}
	got, err := r.Manifest(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if errs := r.Verify(ctx, got, true); len(errs) != 0 {
		t.Fatalf("a good backup fails verify: %v", errs)
	}
	// Writing the same backup's segments again (a resumed run) is fine.
	writeBackupSegmentsAgain := func() {
		for i, batches := range fixtureBatches(t) {
			stored, seg := writeSegment(t, FramingNone, 0, batches[:(len(batches)+1)/2])
			if _, err := r.PutSegment(ctx, "fixtures", m.Topics[0].ID, int32(i), stored, seg); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeBackupSegmentsAgain()

	// Damage: flip a byte of one segment file, delete another's index.
	p0 := m.Topics[0].Partitions[0]
	seg0 := filepath.Join(dir, filepath.FromSlash(p0.Segments[0].Key))
	b, _ := os.ReadFile(seg0)
	b[len(b)/2] ^= 1
	os.WriteFile(seg0, b, 0o644)
	p1 := m.Topics[0].Partitions[1]
	os.Remove(filepath.Join(dir, filepath.FromSlash(IndexKey(p1.Segments[0].Key))))
	errs := r.Verify(ctx, got, false)
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), p0.Segments[0].Key) || !strings.Contains(errs[0].Error(), "SHA-256") ||
		!strings.Contains(errs[1].Error(), IndexKey(p1.Segments[0].Key)) {
		t.Fatalf("verify after damage: %v", errs)
	}
}

// Deep verification finds offsets a manifest claims but no batch or gap
// holds.
func TestVerifyDeepFindsHoles(t *testing.T) {
	ctx := context.Background()
	st, _ := storage.Open(ctx, t.TempDir())
	r, err := Open(ctx, st, true)
	if err != nil {
		t.Fatal(err)
	}
	m := writeBackup(t, r)
	p := &m.Topics[0].Partitions[0]
	p.To += 10 // ten offsets past the data
	if errs := r.Verify(ctx, m, true); len(errs) != 1 || !strings.Contains(errs[0].Error(), "in no segment and no gap") {
		t.Fatalf("hole at the end: %v", errs)
	}
	p.Gaps = []Gap{{From: p.To - 10, To: p.To, Reason: "retention"}}
	if errs := r.Verify(ctx, m, true); len(errs) != 0 {
		t.Fatalf("hole covered by a gap: %v", errs)
	}
}

// Checkpoints of a run: listed while the run has no manifest, read back,
// deleted; segments no backup or newest checkpoint names are unreferenced.
func TestCheckpointsAndUnreferenced(t *testing.T) {
	ctx := context.Background()
	_, r := plainRepo(t)
	done := writeBackup(t, r)
	if runs, err := r.Unfinished(ctx); err != nil || len(runs) != 0 {
		t.Fatalf("unfinished runs %v, %v", runs, err)
	}
	// A run with two checkpoints, the second naming one more segment,
	// and a segment stored after it (a crash before the next checkpoint).
	cp := *done
	cp.ID, cp.Checkpoint = NewBackupID(time.Now().Add(time.Hour)), true
	cp.Topics = append([]Topic(nil), done.Topics...)
	cp.Topics[0].Partitions = append([]Partition(nil), done.Topics[0].Partitions[:1]...)
	if err := r.PutCheckpoint(ctx, &cp, 1); err != nil {
		t.Fatal(err)
	}
	batches := fixtureBatches(t)[0]
	stored, seg := writeSegment(t, FramingLZ4, 0, batches[:1])
	ref, err := r.PutSegment(ctx, "other", cp.Topics[0].ID, 0, stored, seg)
	if err != nil {
		t.Fatal(err)
	}
	cp.Topics = append(cp.Topics, Topic{Name: "other", ID: cp.Topics[0].ID, PartitionsCount: 1,
		Partitions: []Partition{{From: ref.BaseOffset, To: ref.LastOffset + 1, Segments: []SegmentRef{ref}}}})
	if err := r.PutCheckpoint(ctx, &cp, 2); err != nil {
		t.Fatal(err)
	}
	stored, seg = writeSegment(t, FramingNone, 0, batches[1:2])
	garbage, err := r.PutSegment(ctx, "other", cp.Topics[0].ID, 0, stored, seg)
	if err != nil {
		t.Fatal(err)
	}
	notCheckpoint := *done
	if err := r.PutCheckpoint(ctx, &notCheckpoint, 3); err == nil {
		t.Fatal("a manifest not marked as a checkpoint was stored as one")
	}

	runs, err := r.Unfinished(ctx)
	if err != nil || len(runs) != 1 || runs[0].ID != cp.ID || len(runs[0].Checkpoints) != 2 || runs[0].Checkpoints[1] != 2 {
		t.Fatalf("unfinished runs %+v, %v", runs, err)
	}
	got, err := r.Checkpoint(ctx, cp.ID, 2)
	if err != nil || len(got.Topics) != 2 || !got.Checkpoint {
		t.Fatalf("checkpoint 2: %+v, %v", got, err)
	}
	if _, err := r.Checkpoint(ctx, cp.ID, 7); err == nil {
		t.Fatal("a missing checkpoint was read")
	}
	un, err := r.Unreferenced(ctx)
	if err != nil || len(un) != 2 || un[0] != IndexKey(garbage.Key) || un[1] != garbage.Key {
		t.Fatalf("unreferenced %v, %v: want %s and its index", un, err, garbage.Key)
	}
	if err := r.DeleteCheckpoints(ctx, cp.ID, []int{1}); err != nil {
		t.Fatal(err)
	}
	if runs, _ := r.Unfinished(ctx); len(runs) != 1 || len(runs[0].Checkpoints) != 1 {
		t.Fatalf("after deleting checkpoint 1: %+v", runs)
	}
	// The run finishes: its manifest exists, it is no longer unfinished.
	cp.Checkpoint = false
	if err := r.PutManifest(ctx, &cp); err != nil {
		t.Fatal(err)
	}
	if runs, _ := r.Unfinished(ctx); len(runs) != 0 {
		t.Fatalf("a finished run is listed as unfinished: %+v", runs)
	}
}

// A new backup's id sorts after every backup and unfinished run already
// in the repository, also when they started in the same second (ids hold
// the time to the second, then random digits: the newest backup read as
// older half the time; found by the corruption matrix in cmd/ktape, whose
// two backups ran within a second) and when one is from a later second.
func TestNextBackupIDSortsLast(t *testing.T) {
	ctx := context.Background()
	st, r := plainRepo(t)
	at := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	for _, existing := range []string{
		"backups/20261122T010203Z-fffffff0.json",                // same second, a high suffix
		"backups/20261122T010203Z-00000001.json",                // same second, a low one
		"checkpoints/20261122T010204Z-00000000/0000000001.json", // an unfinished run a second later
	} {
		if err := st.Create(ctx, existing, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 200; i++ {
			id, err := r.NextBackupID(ctx, at)
			if err != nil {
				t.Fatal(err)
			}
			name := strings.TrimSuffix(strings.TrimPrefix(existing, "backups/"), ".json")
			if rest, ok := strings.CutPrefix(existing, "checkpoints/"); ok {
				name, _, _ = strings.Cut(rest, "/")
			}
			if !backupIDRe.MatchString(id) || id <= name {
				t.Fatalf("after %s: new id %s does not sort after it", existing, id)
			}
		}
	}
}

// FuzzOpenDescriptor stores arbitrary bytes as a repository's descriptor
// and opens it, with and without keys: whatever is there, Open returns a
// repository of the format it reads or an error naming the descriptor,
// and never panics.
func FuzzOpenDescriptor(f *testing.F) {
	ctx := context.Background()
	plainSt, err := storage.Open(ctx, f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	if _, err := Open(ctx, plainSt, true); err != nil {
		f.Fatal(err)
	}
	plain, _ := plainSt.Get(ctx, descriptorKey)
	f.Add(plain)
	cryptSt, _, _, _ := cryptRepo(f)
	sealed, _ := cryptSt.Get(ctx, descriptorKey)
	f.Add(sealed)
	f.Add([]byte(`{"format":"ktape-repository","version":1,"id":"0123456789abcdef0123456789abcdef","encryption":{}}`))
	f.Add([]byte(`{"format":"ktape-repository","version":1,"id":"0123456789abcdef0123456789abcdef","encryption":null}`))
	f.Add([]byte(`{"format":"ktape-repository","version":2}`))
	key, err := age.GenerateX25519Identity()
	if err != nil {
		f.Fatal(err)
	}
	st, err := storage.Open(ctx, f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st.Delete(ctx, descriptorKey)
		if err := st.Create(ctx, descriptorKey, b); err != nil {
			t.Fatal(err)
		}
		for _, k := range []*Keys{nil, {Identities: []age.Identity{key}}} {
			r, err := OpenKeys(ctx, st, false, k)
			switch {
			case err != nil && !strings.Contains(err.Error(), st.URL()):
				t.Fatalf("%q: the error does not name the repository: %v", b, err)
			case err == nil && !hex32Re.MatchString(r.ID):
				t.Fatalf("%q opened with id %q", b, r.ID)
			}
		}
	})
}
