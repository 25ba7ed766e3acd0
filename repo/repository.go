package repo

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/storage"
)

// Repository is a backup repository in a store: its descriptor
// (ktape.json), segments, indexes and manifests, written in the order
// FORMAT.md requires.
type Repository struct {
	st *storage.Store
	// ID is the repository's id, from its descriptor.
	ID string
	// SealBuffer, if set, gives the buffers an encrypted repository seals
	// segments into, and a function that frees each: a backup reuses its
	// segment buffers for them.
	SealBuffer func() (w PartsWriter, release func())

	crypt *crypt // nil when the repository is not encrypted
}

type descriptor struct {
	Format     string      `json:"format"`
	Version    int         `json:"version"`
	ID         string      `json:"id"`
	Created    time.Time   `json:"created"`
	Encryption *encryption `json:"encryption,omitempty"`
}

const (
	descriptorKey    = "ktape.json"
	repositoryFormat = "ktape-repository"
)

// Open opens the repository in st, initialising it when the store is
// empty and init is true. An encrypted repository needs OpenKeys.
func Open(ctx context.Context, st *storage.Store, init bool) (*Repository, error) {
	return OpenKeys(ctx, st, init, nil)
}

// OpenKeys is Open with age keys: a repository created with recipients
// is encrypted to them, and an encrypted one is read with the identities.
func OpenKeys(ctx context.Context, st *storage.Store, init bool, k *Keys) (*Repository, error) {
	b, err := st.Get(ctx, descriptorKey)
	if errors.Is(err, storage.ErrNotFound) && init {
		var id [16]byte
		rand.Read(id[:])
		d := descriptor{Format: repositoryFormat, Version: 1, ID: hex.EncodeToString(id[:]), Created: time.Now().UTC().Truncate(time.Second)}
		if k != nil && len(k.Recipients) > 0 {
			if d.Encryption, err = newEncryption(k); err != nil {
				return nil, fmt.Errorf("repo: %s: %w", st.URL(), err)
			}
		}
		if b, err = json.Marshal(d); err != nil {
			return nil, err
		}
		if err = st.Create(ctx, descriptorKey, b); errors.Is(err, storage.ErrConflict) {
			b, err = st.Get(ctx, descriptorKey) // initialised meanwhile by another run
		}
	}
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("repo: %s is not a ktape repository (no %s)", st.URL(), descriptorKey)
		}
		return nil, fmt.Errorf("repo: %s: %w", st.URL(), err)
	}
	var d descriptor
	// A member this ktape does not know may change how to read the rest.
	if err := checkKeys(b, reflect.TypeFor[descriptor]()); err != nil {
		return nil, fmt.Errorf("repo: %s: %s: %w", st.URL(), descriptorKey, err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("repo: %s: %s: %w", st.URL(), descriptorKey, err)
	}
	if d.Format != repositoryFormat || d.Version != 1 || !hex32Re.MatchString(d.ID) {
		return nil, fmt.Errorf("repo: %s: %s says format %q version %d: this ktape reads %q version 1", st.URL(), descriptorKey, d.Format, d.Version, repositoryFormat)
	}
	r := &Repository{st: st, ID: d.ID}
	switch {
	case d.Encryption != nil:
		if r.crypt, err = newCrypt(d.Encryption, k); err != nil {
			return nil, fmt.Errorf("repo: %s: %w", st.URL(), err)
		}
	case k != nil && len(k.Recipients) > 0:
		return nil, fmt.Errorf("repo: %s is not encrypted: a repository is encrypted when it is created, and this one was not", st.URL())
	}
	return r, nil
}

// Encrypted reports whether the repository's objects are encrypted.
func (r *Repository) Encrypted() bool { return r.crypt != nil }

// Recipients are the public keys an encrypted repository's data is
// sealed to, and its writers' (which read only its metadata).
func (r *Repository) Recipients() (data, writers []string) {
	if r.crypt == nil {
		return nil, nil
	}
	return slices.Clone(r.crypt.desc.Recipients), slices.Clone(r.crypt.desc.Writers)
}

// PutSegment stores a segment and then its index, and returns the
// manifest's reference to it. Storing a segment again with the same bytes
// (a resumed backup re-fetching the same batches) is not an error.
func (r *Repository) PutSegment(ctx context.Context, topic, topicID string, partition int32, stored []byte, seg *Segment) (SegmentRef, error) {
	return r.PutSegmentParts(ctx, topic, topicID, partition, [][]byte{stored}, seg)
}

// PutSegmentParts is PutSegment for a segment's stored bytes held in
// pieces (a buffer of chunks), in order.
//
// In an encrypted repository the segment is sealed first, and its name,
// SHA-256 and SealedLen are the sealed object's: seg need not be hashed.
// Sealing is random, so a segment stored again gets another name, and the
// one stored before is left unreferenced.
func (r *Repository) PutSegmentParts(ctx context.Context, topic, topicID string, partition int32, stored [][]byte, seg *Segment) (SegmentRef, error) {
	if r.crypt != nil {
		sealed, release, err := r.sealSegment(stored)
		if err != nil {
			return SegmentRef{}, fmt.Errorf("repo: encrypt segment: %w", err)
		}
		defer release()
		seg.Hash(sealed)
		seg.SealedLen = uint64(partsLen(sealed))
		stored = sealed
	}
	key := SegmentKey(topic, topicID, partition, seg)
	if err := r.st.CreateParts(ctx, key, stored); err != nil {
		return SegmentRef{}, err
	}
	if err := r.putMeta(ctx, IndexKey(key), seg.AppendIndex(nil)); err != nil {
		return SegmentRef{}, err
	}
	return seg.Ref(key), nil
}

func partsLen(parts [][]byte) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n
}

// PutManifest stores a complete backup's manifest: the backup exists from
// then on. Every object it names must already be stored.
func (r *Repository) PutManifest(ctx context.Context, m *Manifest) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	return r.putMeta(ctx, "backups/"+m.ID+".json", b)
}

// Backups lists the ids of the complete backups, oldest first.
func (r *Repository) Backups(ctx context.Context) ([]string, error) {
	keys, err := r.st.List(ctx, "backups/")
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, k := range keys {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(k, "backups/"), ".json"); ok && backupIDRe.MatchString(id) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Manifest reads and checks a backup's manifest.
func (r *Repository) Manifest(ctx context.Context, id string) (*Manifest, error) {
	if !backupIDRe.MatchString(id) {
		return nil, fmt.Errorf("repo: %q is not a backup id", id)
	}
	b, err := r.getMeta(ctx, "backups/"+id+".json")
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("repo: backups/%s.json: %w", id, err)
	}
	if m.ID != id {
		return nil, fmt.Errorf("repo: backups/%s.json holds backup %s", id, m.ID)
	}
	return m, nil
}

// VerifyError names damaged objects and where the damage is.
type VerifyError struct {
	Key string
	Err error
}

func (e *VerifyError) Error() string { return fmt.Sprintf("%s: %v", e.Key, e.Err) }
func (e *VerifyError) Unwrap() error { return e.Err }

// Verify checks every object a backup names: each segment's length and
// SHA-256, and that its index parses and agrees with the manifest. With
// deep, it also reads every batch (CRC-32C, index entries) and checks that
// each partition's batches, gaps and range leave no offset unaccounted
// for (holes between batches are allowed in compacted topics). It returns every problem found, nil when there is none.
func (r *Repository) Verify(ctx context.Context, m *Manifest, deep bool) []error {
	var errs []error
	d := &record.Decompressor{Max: 256 << 20}
	for _, t := range m.Topics {
		// Compaction removes whole batches: holes between batches are the
		// log's own then.
		compacted := strings.Contains(t.Configs["cleanup.policy"], "compact")
		for _, p := range t.Partitions {
			before := len(errs)
			next := p.From // the first offset not yet accounted for
			gaps := p.Gaps
			for _, ref := range p.Segments {
				if err := r.checkSealed(ref); err != nil {
					errs = append(errs, &VerifyError{ref.Key, err})
					continue
				}
				stored, err := r.st.Get(ctx, ref.Key)
				if err != nil {
					errs = append(errs, &VerifyError{ref.Key, err})
					continue
				}
				idx, err := r.getMeta(ctx, IndexKey(ref.Key))
				if err != nil {
					errs = append(errs, &VerifyError{IndexKey(ref.Key), err})
					continue
				}
				seg, err := ParseIndex(idx)
				if err != nil {
					errs = append(errs, &VerifyError{IndexKey(ref.Key), err})
					continue
				}
				seg.SealedLen = ref.SealedBytes
				sum, _ := hex.DecodeString(ref.SHA256)
				if len(sum) != 32 {
					errs = append(errs, &VerifyError{ref.Key, fmt.Errorf("manifest SHA-256 %q", ref.SHA256)})
					continue
				}
				// The index is checked against the manifest before the
				// segment against the index, so that a stale or foreign
				// index is named as such rather than blamed on its segment.
				seg.SHA256 = [32]byte(sum) // the index does not hold it
				if got := seg.Ref(ref.Key); got != ref {
					errs = append(errs, &VerifyError{IndexKey(ref.Key), fmt.Errorf("the index disagrees with the manifest: %+v against %+v", got, ref)})
					continue
				}
				if err := seg.CheckSum(stored, [32]byte(sum)); err != nil {
					// A segment whose bytes still match the hash in its own
					// name is intact: the manifest's SHA-256 is what changed.
					if got := sha256.Sum256(stored); uint64(len(stored)) == cmp.Or(seg.SealedLen, seg.StoredLen) && strings.HasSuffix(ref.Key, "-"+hex.EncodeToString(got[:8])+".seg") {
						err = fmt.Errorf("the manifest records SHA-256 %s for %s, whose bytes (matching the hash in its name) have %x", ref.SHA256, ref.Key, got)
						errs = append(errs, &VerifyError{"backups/" + m.ID + ".json", err})
						continue
					}
					errs = append(errs, &VerifyError{ref.Key, err})
					continue
				}
				if !deep {
					continue
				}
				if r.crypt != nil {
					if stored, err = r.openSealed(ref, seg, stored); err != nil {
						errs = append(errs, err)
						continue
					}
				}
				err = seg.Batches(stored, d, func(e IndexEntry, b record.Batch) error {
					for len(gaps) > 0 && gaps[0].From <= next {
						next = max(next, gaps[0].To)
						gaps = gaps[1:]
					}
					// From the entry, checked against the batch (or legacy message).
					if e.BaseOffset > next && next < p.To && !compacted {
						return fmt.Errorf("offsets %d to %d are in no batch and no gap", next, e.BaseOffset-1)
					}
					next = max(next, e.LastOffset+1)
					return nil
				})
				if err != nil {
					errs = append(errs, &VerifyError{ref.Key, err})
				}
			}
			for len(gaps) > 0 && gaps[0].From <= next {
				next = max(next, gaps[0].To)
				gaps = gaps[1:]
			}
			// A hole is only meaningful when this partition's segments read.
			if deep && next < p.To && !compacted && len(errs) == before {
				errs = append(errs, fmt.Errorf("repo: %s/%d: offsets from %d to %d are in no segment and no gap", t.Name, p.Partition, next, p.To-1))
			}
		}
	}
	return errs
}

// checkpointKey is where checkpoint seq of run id lives.
func checkpointKey(id string, seq int) string {
	return fmt.Sprintf("checkpoints/%s/%010d.json", id, seq)
}

// PutCheckpoint stores checkpoint seq of the running backup m (m.ID names
// the run). Like a manifest, it may only name objects already stored; a
// run resumed after a crash continues from its newest checkpoint.
func (r *Repository) PutCheckpoint(ctx context.Context, m *Manifest, seq int) error {
	if !m.Checkpoint {
		return fmt.Errorf("repo: checkpoint %d of %s is not marked as a checkpoint", seq, m.ID)
	}
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	return r.putMeta(ctx, checkpointKey(m.ID, seq), b)
}

// Run is a backup run that has checkpoints but no manifest: it is still
// going, or it stopped (crashed, killed) before it finished.
type Run struct {
	ID string
	// Checkpoints are the sequence numbers stored, in order.
	Checkpoints []int
}

// Unfinished lists the runs with checkpoints and no backup manifest,
// oldest first.
func (r *Repository) Unfinished(ctx context.Context) ([]Run, error) {
	keys, err := r.st.List(ctx, "checkpoints/")
	if err != nil {
		return nil, err
	}
	done, err := r.Backups(ctx)
	if err != nil {
		return nil, err
	}
	finished := map[string]bool{}
	for _, id := range done {
		finished[id] = true
	}
	runs := map[string]*Run{}
	for _, k := range keys {
		id, file, ok := strings.Cut(strings.TrimPrefix(k, "checkpoints/"), "/")
		name, isJSON := strings.CutSuffix(file, ".json")
		seq, err := strconv.Atoi(name)
		if !ok || !isJSON || err != nil || len(name) != 10 || !backupIDRe.MatchString(id) || finished[id] {
			continue
		}
		if runs[id] == nil {
			runs[id] = &Run{ID: id}
		}
		runs[id].Checkpoints = append(runs[id].Checkpoints, seq)
	}
	out := make([]Run, 0, len(runs))
	for _, run := range runs {
		sort.Ints(run.Checkpoints)
		out = append(out, *run)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Checkpoint reads and checks checkpoint seq of run id.
func (r *Repository) Checkpoint(ctx context.Context, id string, seq int) (*Manifest, error) {
	key := checkpointKey(id, seq)
	b, err := r.getMeta(ctx, key)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("repo: %s: %w", key, err)
	}
	if m.ID != id || !m.Checkpoint {
		return nil, fmt.Errorf("repo: %s holds %s (checkpoint %v), not a checkpoint of %s", key, m.ID, m.Checkpoint, id)
	}
	return m, nil
}

// DeleteCheckpoints removes the given checkpoints of run id. Checkpoints
// are not part of any backup: a finished run's are clutter, and a running
// one needs only its newest.
func (r *Repository) DeleteCheckpoints(ctx context.Context, id string, seqs []int) error {
	for _, seq := range seqs {
		if err := r.st.Delete(ctx, checkpointKey(id, seq)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("repo: delete %s: %w", checkpointKey(id, seq), err)
		}
	}
	return nil
}

// Unreferenced lists the segment and index objects that no backup, no
// unfinished run's newest checkpoint and no worker checkpoint of a shared
// run names: left by runs that were
// interrupted between storing a segment and committing a checkpoint. They
// are not part of any backup, and nothing reads them. While a backup is
// running, the segments it stored since its last checkpoint are listed
// too: only a repository no backup is writing to has no such objects.
func (r *Repository) Unreferenced(ctx context.Context) ([]string, error) {
	named := map[string]bool{}
	name := func(m *Manifest) {
		for _, t := range m.Topics {
			for _, p := range t.Partitions {
				for _, s := range p.Segments {
					named[s.Key], named[IndexKey(s.Key)] = true, true
				}
			}
		}
	}
	ids, err := r.Backups(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		m, err := r.Manifest(ctx, id)
		if err != nil {
			return nil, err
		}
		name(m)
	}
	runs, err := r.Unfinished(ctx)
	if err != nil {
		return nil, err
	}
	for _, run := range runs {
		m, err := r.Checkpoint(ctx, run.ID, run.Checkpoints[len(run.Checkpoints)-1])
		if errors.Is(err, storage.ErrNotFound) {
			continue // the run moved on or finished since the listing: its objects are named elsewhere
		}
		if err != nil {
			return nil, err
		}
		name(m)
		if m.WorkersGroup == "" {
			continue
		}
		// A shared run's progress is in its workers' checkpoints; any of
		// them may become the backup's, so all of them count.
		refs, err := r.WorkerCheckpoints(ctx, run.ID)
		if err != nil {
			return nil, err
		}
		for _, ref := range refs {
			wm, err := r.WorkerCheckpoint(ctx, ref)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			name(wm)
		}
	}
	keys, err := r.st.List(ctx, "segments/")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		if !named[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

// Index reads and checks the index of the segment ref names.
func (r *Repository) Index(ctx context.Context, ref SegmentRef) (*Segment, error) {
	if err := r.checkSealed(ref); err != nil {
		return nil, err
	}
	b, err := r.getMeta(ctx, IndexKey(ref.Key))
	if err != nil {
		return nil, err
	}
	seg, err := ParseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("repo: %s: %w", IndexKey(ref.Key), err)
	}
	if sum, err := hex.DecodeString(ref.SHA256); err == nil && len(sum) == 32 {
		seg.SHA256 = [32]byte(sum)
	}
	seg.SealedLen = ref.SealedBytes
	if got := seg.Ref(ref.Key); got != ref {
		return nil, fmt.Errorf("repo: %s: the index disagrees with the manifest: %+v against %+v", IndexKey(ref.Key), got, ref)
	}
	return seg, nil
}

// checkSealed refuses a reference that says the segment is sealed in a
// repository that is not encrypted, or the other way round.
func (r *Repository) checkSealed(ref SegmentRef) error {
	switch {
	case r.crypt != nil && ref.SealedBytes == 0:
		return fmt.Errorf("repo: %s: the manifest names it unencrypted, but the repository is encrypted: refusing it", ref.Key)
	case r.crypt == nil && ref.SealedBytes != 0:
		return fmt.Errorf("repo: %s: the manifest names it encrypted (%d bytes sealed), but the repository is not", ref.Key, ref.SealedBytes)
	}
	return nil
}

// openSealed decrypts a sealed segment checked against its SHA-256, and
// checks that it holds as many bytes as its index says.
func (r *Repository) openSealed(ref SegmentRef, seg *Segment, object []byte) ([]byte, error) {
	plain, err := r.crypt.open(ref.Key, object)
	if err != nil {
		return nil, err
	}
	if uint64(len(plain)) != seg.StoredLen {
		return nil, &VerifyError{ref.Key, fmt.Errorf("decrypted to %d bytes, the index says %d", len(plain), seg.StoredLen)}
	}
	return plain, nil
}

// Segment reads the segment ref names and its index, and checks the
// stored bytes against the manifest's SHA-256: a reader gets what was
// written or an error, never damaged data.
func (r *Repository) Segment(ctx context.Context, ref SegmentRef) (stored []byte, seg *Segment, err error) {
	if seg, err = r.Index(ctx, ref); err != nil {
		return nil, nil, err
	}
	if stored, err = r.SegmentData(ctx, ref, seg); err != nil {
		return nil, nil, err
	}
	return stored, seg, nil
}

// SegmentData reads the stored bytes of the segment ref names, whose
// index seg the caller has already read, checked like Segment's (and
// decrypted, in an encrypted repository).
func (r *Repository) SegmentData(ctx context.Context, ref SegmentRef, seg *Segment) ([]byte, error) {
	stored, err := r.st.Get(ctx, ref.Key)
	if err != nil {
		return nil, err
	}
	if err := seg.CheckSum(stored, seg.SHA256); err != nil {
		return nil, fmt.Errorf("repo: %s: %w", ref.Key, err)
	}
	if r.crypt != nil {
		return r.openSealed(ref, seg, stored)
	}
	return stored, nil
}

// ReadSlack is the room SegmentRangeInto needs in its buffer beyond the
// bytes it reads.
const ReadSlack = storage.ReadSlack

// SegmentRangeInto reads the stored bytes of entries lo..hi-1 of the
// segment ref names (seg is its index; the entries must be whole frames,
// see Segment.FrameRange) into buf's memory, whose capacity must be the
// bytes read plus ReadSlack: for a restore, which reads a repository
// through a few reused buffers. The bytes returned are a slice of buf;
// Segment.BatchRange or BatchRangeInto check each batch's CRC-32C (a part
// of a segment cannot be checked against its SHA-256).
func (r *Repository) SegmentRangeInto(ctx context.Context, ref SegmentRef, seg *Segment, lo, hi int, buf []byte) ([]byte, error) {
	if lo < 0 || hi > len(seg.Entries) || lo >= hi {
		return nil, fmt.Errorf("repo: %s: entries %d..%d of %d", ref.Key, lo, hi, len(seg.Entries))
	}
	wlo, whi, pos, n := seg.FrameRange(lo, hi)
	if wlo != lo || whi != hi {
		return nil, fmt.Errorf("repo: %s: entries %d..%d cut frames (whole frames are %d..%d)", ref.Key, lo, hi, wlo, whi)
	}
	if r.crypt != nil {
		return r.readSealedRange(ctx, ref, int64(pos), int64(n), buf)
	}
	return r.st.ReadRange(ctx, ref.Key, int64(pos), int64(n), buf)
}

// Frame reads the stored bytes of the frame holding entry i of the
// segment ref names (seg is its index): for reading a few batches
// without the whole segment. Segment.Batch checks and decodes them.
func (r *Repository) Frame(ctx context.Context, ref SegmentRef, seg *Segment, i int) ([]byte, error) {
	if i < 0 || i >= len(seg.Entries) {
		return nil, fmt.Errorf("repo: %s: no entry %d", ref.Key, i)
	}
	e := seg.Entries[i]
	if r.crypt != nil {
		return r.readSealedRange(ctx, ref, int64(e.FramePos), int64(e.FrameLen), make([]byte, 0, int(e.FrameLen)+ReadSlack))
	}
	return r.st.GetRange(ctx, ref.Key, int64(e.FramePos), int64(e.FrameLen))
}
