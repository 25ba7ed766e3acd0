package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/ktape/ktape/storage"
)

// cryptRepo creates an encrypted repository in a new directory, to a
// recipient key, with a writer key, and returns the store, both keys and
// the repository as the writer opens it.
func cryptRepo(t testing.TB) (st *storage.Store, owner, writer *age.X25519Identity, w *Repository) {
	t.Helper()
	ctx := context.Background()
	var err error
	if st, err = storage.Open(ctx, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if owner, err = age.GenerateX25519Identity(); err != nil {
		t.Fatal(err)
	}
	if writer, err = age.GenerateX25519Identity(); err != nil {
		t.Fatal(err)
	}
	w, err = OpenKeys(ctx, st, true, &Keys{Recipients: []string{owner.Recipient().String()}, Identities: []age.Identity{writer}})
	if err != nil {
		t.Fatal(err)
	}
	if !w.Encrypted() {
		t.Fatal("a repository created with recipients is not encrypted")
	}
	return st, owner, writer, w
}

// An encrypted repository: every object but the descriptor is an age
// file that age itself decrypts to what an unencrypted repository would
// hold; the writer's key reads manifests and indexes and verifies
// objects, but cannot read a segment; the recipient's key reads and
// deep-verifies everything.
func TestEncryptedRepository(t *testing.T) {
	ctx := context.Background()
	st, owner, writer, w := cryptRepo(t)
	m := writeBackup(t, w)

	// Reopened with the writer's key: metadata, shallow verify.
	wr, err := OpenKeys(ctx, st, false, &Keys{Identities: []age.Identity{writer}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := wr.Manifest(ctx, m.ID)
	if err != nil {
		t.Fatalf("the writer cannot read its manifest: %v", err)
	}
	if errs := wr.Verify(ctx, got, false); len(errs) != 0 {
		t.Fatalf("verify with the writer's key: %v", errs)
	}
	if errs := wr.Verify(ctx, got, true); len(errs) == 0 || !errors.Is(errs[0], ErrNoIdentity) {
		t.Fatalf("deep verify with the writer's key: %v, want ErrNoIdentity", errs)
	}
	ref := got.Topics[0].Partitions[0].Segments[0]
	if _, _, err := wr.Segment(ctx, ref); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("the writer reads a segment: %v", err)
	}

	// With the recipient's key: everything, and the same records as the
	// plain repository the same backup makes.
	or, err := OpenKeys(ctx, st, false, &Keys{Identities: []age.Identity{owner}})
	if err != nil {
		t.Fatal(err)
	}
	if errs := or.Verify(ctx, got, true); len(errs) != 0 {
		t.Fatalf("deep verify with the owner's key: %v", errs)
	}
	_, plain := plainRepo(t)
	pm := writeBackup(t, plain)
	for pi, p := range got.Topics[0].Partitions {
		for si, ref := range p.Segments {
			pref := pm.Topics[0].Partitions[pi].Segments[si]
			want, _, err := plain.Segment(ctx, pref)
			if err != nil {
				t.Fatal(err)
			}
			data, seg, err := or.Segment(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, want) {
				t.Fatalf("%s decrypts to other bytes than the plain segment", ref.Key)
			}
			// Every whole-frame range, and every frame, read by range.
			for lo := 0; lo < len(seg.Entries); lo++ {
				for hi := lo + 1; hi <= len(seg.Entries); hi++ {
					wlo, whi, pos, n := seg.FrameRange(lo, hi)
					if wlo != lo || whi != hi {
						continue
					}
					part, err := or.SegmentRangeInto(ctx, ref, seg, lo, hi, make([]byte, 0, n+ReadSlack))
					if err != nil || !bytes.Equal(part, want[pos:pos+n]) {
						t.Fatalf("%s entries %d..%d: %v", ref.Key, lo, hi, err)
					}
				}
				frame, err := or.Frame(ctx, ref, seg, lo)
				e := seg.Entries[lo]
				if err != nil || !bytes.Equal(frame, want[e.FramePos:e.FramePos+uint64(e.FrameLen)]) {
					t.Fatalf("%s frame %d: %v", ref.Key, lo, err)
				}
			}
		}
	}

	// On storage: age files, which age decrypts with the right key.
	keys, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		b, err := st.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if k == descriptorKey {
			if !bytes.Contains(b, []byte(owner.Recipient().String())) || !bytes.Contains(b, []byte(writer.Recipient().String())) {
				t.Fatalf("the descriptor does not name the recipient and the writer: %s", b)
			}
			continue
		}
		if !bytes.HasPrefix(b, []byte(ageMagic)) {
			t.Fatalf("%s is not an age file: %q", k, b[:min(len(b), 32)])
		}
		if _, err := age.Decrypt(bytes.NewReader(b), owner); err != nil {
			t.Fatalf("age cannot decrypt %s with the owner's key: %v", k, err)
		}
		_, err = age.Decrypt(bytes.NewReader(b), writer)
		if isSegment := strings.HasSuffix(k, ".seg"); isSegment != (err != nil) {
			t.Fatalf("%s: the writer's key opens it: %v (segment %v)", k, err == nil, isSegment)
		}
	}
}

// Reads of byte ranges of a sealed segment of several 64 KiB chunks, at
// and across chunk boundaries, give the plaintext; a damaged chunk is an
// error naming it.
func TestSealedRanges(t *testing.T) {
	ctx := context.Background()
	st, owner, _, w := cryptRepo(t)
	rng := rand.New(rand.NewPCG(1, 2))
	plain := make([]byte, 5*ageChunk+1234)
	for i := range plain {
		plain[i] = byte(rng.Uint32())
	}
	seg := &Segment{StoredLen: uint64(len(plain)), DataLen: uint64(len(plain)), Entries: []IndexEntry{{BaseOffset: 7, LastOffset: 7, FrameLen: uint32(len(plain)), Length: uint32(len(plain)), Magic: 2}}}
	ref, err := w.PutSegmentParts(ctx, "t", strings.Repeat("0", 32), 0, [][]byte{plain[:100000], plain[100000:]}, seg)
	if err != nil {
		t.Fatal(err)
	}
	if ref.SealedBytes == 0 || ref.StoredBytes != uint64(len(plain)) {
		t.Fatalf("ref %+v", ref)
	}
	r, err := OpenKeys(ctx, st, false, &Keys{Identities: []age.Identity{owner}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(pos, n int64) {
		t.Helper()
		got, err := r.readSealedRange(ctx, ref, pos, n, make([]byte, 0, n+ReadSlack))
		if err != nil || !bytes.Equal(got, plain[pos:pos+n]) {
			t.Fatalf("bytes %d+%d: %v", pos, n, err)
		}
	}
	for _, c := range [][2]int64{{0, 1}, {0, int64(len(plain))}, {ageChunk - 1, 2}, {ageChunk, ageChunk}, {5 * ageChunk, 1234}, {int64(len(plain)) - 1, 1}, {3, 3 * ageChunk}} {
		check(c[0], c[1])
	}
	for range 200 {
		pos := rng.Int64N(int64(len(plain)))
		check(pos, 1+rng.Int64N(int64(len(plain))-pos))
	}
	for _, c := range [][2]int64{{-1, 2}, {0, 0}, {int64(len(plain)), 1}, {10, int64(len(plain))}} {
		if _, err := r.readSealedRange(ctx, ref, c[0], c[1], make([]byte, 0, int(max(c[1], 0))+ReadSlack)); err == nil {
			t.Fatalf("bytes %d+%d of %d: no error", c[0], c[1], len(plain))
		}
	}

	// A flipped byte in the third chunk: that chunk, and only reads of
	// it, fail.
	path := filepath.Join(st.URL(), filepath.FromSlash(ref.Key))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := r.crypt.segmentKey(ctx, st, ref)
	b[k.payload+2*ageSealed+100] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	check(0, 2*ageChunk)
	if _, err := r.readSealedRange(ctx, ref, 2*ageChunk+5, 10, make([]byte, 0, 10+ReadSlack)); err == nil || !strings.Contains(err.Error(), "chunk 2 ") {
		t.Fatalf("a damaged chunk: %v", err)
	}
	// The last chunk moved before the end (the object cut short by a
	// chunk) is not taken as the end.
	cut := append(b[:k.payload+4*ageSealed:k.payload+4*ageSealed], b[k.payload+5*ageSealed:]...)
	if _, err := age.Decrypt(bytes.NewReader(cut), owner); err == nil {
		if _, err = io.ReadAll(must(age.Decrypt(bytes.NewReader(cut), owner))); err == nil {
			t.Fatal("age accepts a file with a chunk cut out")
		}
	}
}

func storageOpen(t testing.TB) (*storage.Store, error) {
	return storage.Open(context.Background(), t.TempDir())
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Opening an encrypted repository takes a key, and its recipients are
// fixed at creation; an unencrypted one is not encrypted later.
func TestEncryptionRefusals(t *testing.T) {
	ctx := context.Background()
	st, owner, _, _ := cryptRepo(t)
	other, _ := age.GenerateX25519Identity()
	for _, c := range []struct {
		name string
		k    *Keys
		want string
	}{
		{"no key", nil, "the repository is encrypted: give the age identity"},
		{"other recipients", &Keys{Recipients: []string{other.Recipient().String()}, Identities: []age.Identity{owner}}, "not to the recipients given"},
	} {
		if _, err := OpenKeys(ctx, st, false, c.k); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// A key that is neither a recipient's nor a writer's opens nothing.
	r, err := OpenKeys(ctx, st, false, &Keys{Identities: []age.Identity{other}})
	if err != nil {
		t.Fatal(err)
	}
	m := writeBackup(t, r) // anyone may write: encryption is to public keys
	if _, err := r.Manifest(ctx, m.ID); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("a stranger's key reads a manifest: %v", err)
	}

	plainSt, _ := storage.Open(ctx, t.TempDir())
	if _, err := Open(ctx, plainSt, true); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeys(ctx, plainSt, true, &Keys{Recipients: []string{owner.Recipient().String()}, Identities: []age.Identity{owner}}); err == nil || !strings.Contains(err.Error(), "is not encrypted") {
		t.Fatalf("encrypting an existing plain repository: %v", err)
	}
	if _, err := OpenKeys(ctx, must(storage.Open(ctx, t.TempDir())), true, &Keys{Recipients: []string{owner.Recipient().String()}}); err == nil || !strings.Contains(err.Error(), "writer's own key") {
		t.Fatalf("creating an encrypted repository without a writer key: %v", err)
	}
	if _, err := OpenKeys(ctx, must(storage.Open(ctx, t.TempDir())), true, &Keys{Recipients: []string{"age1nope"}, Identities: []age.Identity{owner}}); err == nil || !strings.Contains(err.Error(), `"age1nope"`) {
		t.Fatalf("a bad recipient: %v", err)
	}

	// A plain manifest put into an encrypted repository is refused.
	m.ID = NewBackupID(m.Started.Add(1e9))
	b, _ := m.Marshal()
	if err := st.Create(ctx, "backups/"+m.ID+".json", b); err != nil {
		t.Fatal(err)
	}
	or, _ := OpenKeys(ctx, st, false, &Keys{Identities: []age.Identity{owner}})
	if _, err := or.Manifest(ctx, m.ID); err == nil || !strings.Contains(err.Error(), "is not encrypted, but the repository is") {
		t.Fatalf("a plain manifest in an encrypted repository: %v", err)
	}
}

// SealedBound, which a backup sets memory aside by before it seals a
// segment, is never less than the age file a segment really becomes: for
// tiny, chunk-edge and multi-chunk segments, sealed in parts.
func TestSealedBound(t *testing.T) {
	_, _, _, w := cryptRepo(t)
	for _, n := range []int{1, 100, ageChunk - 1, ageChunk, ageChunk + 1, 3*ageChunk + 17, 1 << 20} {
		data := make([]byte, n)
		sealed, release, err := w.sealSegment([][]byte{data[:n/2], data[n/2:]})
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, p := range sealed {
			got += len(p)
		}
		release()
		if bound := w.SealedBound(n); got > bound || bound > got+1024 {
			t.Errorf("%d bytes sealed into %d, SealedBound says %d", n, got, bound)
		}
	}
	if _, plain := plainRepo(t); plain.SealedBound(1<<20) != 0 {
		t.Errorf("a plain repository's SealedBound is %d", plain.SealedBound(1<<20))
	}
}
