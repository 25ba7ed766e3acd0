package repo

// Encryption at rest (FORMAT.md, "Encryption"). An encrypted repository
// stores every object but its descriptor as a standard age file, so that
// `age -d` can read any of them without ktape. Segments are sealed to the
// repository's recipients only; indexes, manifests, checkpoints and
// restore logs also to its writers, whose keys read a repository's
// metadata (a backup continues from its last manifest) but no record.

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"filippo.io/age"
	"github.com/ktape/ktape/storage"
	"golang.org/x/crypto/chacha20poly1305"
)

// Keys are the age keys a repository is opened with.
type Keys struct {
	// Recipients are who may read the data of a repository created now:
	// age public keys ("age1…"). A repository's recipients are chosen
	// when it is created; given for an existing repository, they must be
	// its own.
	Recipients []string
	// Identities are the age private keys this process holds. An
	// encrypted repository needs one: a writer's key reads its metadata,
	// a recipient's reads its data too. A repository created encrypted
	// names the recipients of these keys as its writers.
	Identities []age.Identity
}

// encryption is the descriptor's "encryption" member.
type encryption struct {
	Scheme     string   `json:"scheme"`
	Recipients []string `json:"recipients"`
	Writers    []string `json:"writers"`
}

const (
	schemeAge = "age"
	// ageMagic starts every binary age file.
	ageMagic = "age-encryption.org/v1\n"
	// The age payload (C2SP age, "Payload"): 64 KiB chunks of plaintext,
	// each sealed with ChaCha20-Poly1305 under a key derived from the file
	// key and a 16-byte nonce that precedes the chunks.
	ageChunk      = 64 << 10
	ageSealed     = ageChunk + chacha20poly1305.Overhead
	ageNonceLen   = 16
	ageHeaderRead = 16 << 10 // enough for a header with many recipients
)

// ErrNoIdentity is returned for an encrypted object none of the
// identities given can open.
var ErrNoIdentity = errors.New("none of the identities given can decrypt it")

// crypt seals and opens a repository's objects.
type crypt struct {
	desc       encryption
	data, meta []age.Recipient
	ids        []age.Identity

	mu   sync.Mutex
	keys map[string]*sealedKey // payload keys of segments read by range
}

// sealedKey is what reading part of a sealed segment needs.
type sealedKey struct {
	payload int64 // position of the first chunk
	aead    interface {
		Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	}
}

// newEncryption describes a new repository's encryption to recipients,
// its writers being the recipients of ids.
func newEncryption(k *Keys) (*encryption, error) {
	if len(k.Identities) == 0 {
		return nil, errors.New("an encrypted repository needs the writer's own key (an identity) to read its manifests: none given")
	}
	e := &encryption{Scheme: schemeAge}
	for _, s := range k.Recipients {
		if _, err := parseRecipient(s); err != nil {
			return nil, err
		}
		e.Recipients = append(e.Recipients, s)
	}
	for _, id := range k.Identities {
		s, err := identityRecipient(id)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(e.Recipients, s) && !slices.Contains(e.Writers, s) {
			e.Writers = append(e.Writers, s)
		}
	}
	return e, nil
}

// identityRecipient is the public key of an identity.
func identityRecipient(id age.Identity) (string, error) {
	switch id := id.(type) {
	case *age.X25519Identity:
		return id.Recipient().String(), nil
	case *age.HybridIdentity:
		return id.Recipient().String(), nil
	}
	return "", fmt.Errorf("repo: an identity of type %T: only age X25519 and hybrid keys are supported", id)
}

func parseRecipient(s string) (age.Recipient, error) {
	rs, err := age.ParseRecipients(strings.NewReader(s))
	if err != nil || len(rs) != 1 || strings.ContainsAny(s, "\n#") {
		return nil, fmt.Errorf("repo: recipient %q is not an age public key (age1…)", s)
	}
	return rs[0], nil
}

// newCrypt checks the descriptor's encryption against the keys given.
func newCrypt(e *encryption, k *Keys) (*crypt, error) {
	if e.Scheme != schemeAge || len(e.Recipients) == 0 {
		return nil, fmt.Errorf("encryption scheme %q with %d recipients: this ktape reads %q with at least one", e.Scheme, len(e.Recipients), schemeAge)
	}
	c := &crypt{desc: *e, keys: map[string]*sealedKey{}}
	for _, s := range e.Recipients {
		r, err := parseRecipient(s)
		if err != nil {
			return nil, err
		}
		c.data = append(c.data, r)
	}
	c.meta = slices.Clone(c.data)
	for _, s := range e.Writers {
		r, err := parseRecipient(s)
		if err != nil {
			return nil, err
		}
		c.meta = append(c.meta, r)
	}
	if k != nil {
		if len(k.Recipients) > 0 && !sameSet(k.Recipients, e.Recipients) {
			return nil, fmt.Errorf("the repository is encrypted to %s, not to the recipients given (a repository's recipients are chosen when it is created)", strings.Join(e.Recipients, ", "))
		}
		c.ids = k.Identities
	}
	if len(c.ids) == 0 {
		return nil, errors.New("the repository is encrypted: give the age identity (private key) of a writer or a recipient")
	}
	return c, nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// seal encrypts the parts, in order, as one age file written to w.
func seal(w io.Writer, to []age.Recipient, parts ...[]byte) error {
	aw, err := age.Encrypt(w, to...)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := aw.Write(p); err != nil {
			return err
		}
	}
	return aw.Close()
}

// sealedLen is the length of the age payload of n bytes of plaintext.
func sealedLen(n int64) int64 {
	chunks := max((n+ageChunk-1)/ageChunk, 1)
	return n + chunks*chacha20poly1305.Overhead
}

// SealedBound is at most the length of the age file a segment of n
// stored bytes is sealed into (0 for none, or in a repository that is
// not encrypted): what a writer must set aside to seal it.
func (r *Repository) SealedBound(n int) int {
	if r.crypt == nil || n == 0 {
		return 0
	}
	// The header: the intro and MAC lines and the nonce, and a stanza
	// of about 100 bytes per recipient.
	return int(sealedLen(int64(n))) + 128 + 256*len(r.crypt.data)
}

// open decrypts the age file b, the object at key.
func (c *crypt) open(key string, b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, []byte(ageMagic)) {
		return nil, fmt.Errorf("repo: %s is not encrypted, but the repository is: refusing it", key)
	}
	r, err := age.Decrypt(bytes.NewReader(b), c.ids...)
	if err != nil {
		return nil, c.openError(key, err)
	}
	// The plaintext is the file less its header, nonce and tags: within
	// a chunk's tag of len(b) less the header.
	out := bytes.NewBuffer(make([]byte, 0, len(b)))
	if _, err := out.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("repo: %s: decrypt: %w", key, err)
	}
	return out.Bytes(), nil
}

func (c *crypt) openError(key string, err error) error {
	var none *age.NoIdentityMatchError
	if errors.As(err, &none) {
		if strings.HasSuffix(key, ".seg") {
			return fmt.Errorf("repo: %s: %w (segments open only with a recipient's key, not a writer's)", key, ErrNoIdentity)
		}
		return fmt.Errorf("repo: %s: %w (it opens with a recipient's or a writer's key)", key, ErrNoIdentity)
	}
	return fmt.Errorf("repo: %s: decrypt: %w", key, err)
}

// getMeta reads a metadata object, decrypting it in an encrypted
// repository.
func (r *Repository) getMeta(ctx context.Context, key string) ([]byte, error) {
	b, err := r.st.Get(ctx, key)
	if err != nil || r.crypt == nil {
		return b, err
	}
	return r.crypt.open(key, b)
}

// putMeta stores a metadata object once, sealed to the repository's
// recipients and writers when it is encrypted. An object already there
// with the same plaintext (a resumed run writing it again) is not an
// error; sealing is random, so that is checked on the plaintext.
func (r *Repository) putMeta(ctx context.Context, key string, b []byte) error {
	if r.crypt == nil {
		return r.st.Create(ctx, key, b)
	}
	var sealed bytes.Buffer
	if err := seal(&sealed, r.crypt.meta, b); err != nil {
		return fmt.Errorf("repo: %s: encrypt: %w", key, err)
	}
	err := r.st.Create(ctx, key, sealed.Bytes())
	if errors.Is(err, storage.ErrConflict) {
		old, gerr := r.getMeta(ctx, key)
		if gerr != nil {
			return fmt.Errorf("%w (and reading it: %w)", err, gerr)
		}
		if bytes.Equal(old, b) {
			return nil
		}
	}
	return err
}

// sealSegment encrypts a segment's stored bytes to the data recipients.
func (r *Repository) sealSegment(stored [][]byte) (sealed [][]byte, release func(), err error) {
	var w PartsWriter
	release = func() {}
	if r.SealBuffer != nil {
		w, release = r.SealBuffer()
	} else {
		n := 0
		for _, p := range stored {
			n += len(p)
		}
		w = &flatBuffer{b: make([]byte, 0, int(sealedLen(int64(n)))+ageHeaderRead/4)}
	}
	if err := seal(w, r.crypt.data, stored...); err != nil {
		release()
		return nil, nil, err
	}
	return w.Parts(), release, nil
}

// CheckDataKey checks that the identities given can read the data of
// backup m, by opening the header of one of its segments: nil for an
// unencrypted repository or a backup of no data.
func (r *Repository) CheckDataKey(ctx context.Context, m *Manifest) error {
	if r.crypt == nil {
		return nil
	}
	for _, t := range m.Topics {
		for _, p := range t.Partitions {
			for _, ref := range p.Segments {
				if err := r.checkSealed(ref); err != nil {
					return err
				}
				_, err := r.crypt.segmentKey(ctx, r.st, ref)
				return err
			}
		}
	}
	return nil
}

// PartsWriter is a buffer that holds what is written to it in pieces.
type PartsWriter interface {
	io.Writer
	// Parts is what was written, in order.
	Parts() [][]byte
}

type flatBuffer struct{ b []byte }

func (f *flatBuffer) Write(p []byte) (int, error) { f.b = append(f.b, p...); return len(p), nil }
func (f *flatBuffer) Parts() [][]byte             { return [][]byte{f.b} }

// readSealedRange reads bytes [pos, pos+n) of the plaintext of the sealed
// segment ref names into buf (capacity n+ReadSlack at least): only the
// chunks holding them are read and decrypted.
func (r *Repository) readSealedRange(ctx context.Context, ref SegmentRef, pos, n int64, buf []byte) ([]byte, error) {
	k, err := r.crypt.segmentKey(ctx, r.st, ref)
	if err != nil {
		return nil, err
	}
	size := int64(ref.SealedBytes)
	if pos < 0 || n <= 0 || pos+n > int64(ref.StoredBytes) {
		return nil, fmt.Errorf("repo: %s: bytes %d+%d of %d", ref.Key, pos, n, ref.StoredBytes)
	}
	last := (sealedLen(int64(ref.StoredBytes)) - 1) / ageSealed // index of the final chunk
	c0, c1 := pos/ageChunk, (pos+n-1)/ageChunk
	from := k.payload + c0*ageSealed
	to := min(k.payload+(c1+1)*ageSealed, size)
	scratch := getScratch(int(to-from) + storage.ReadSlack)
	defer putScratch(scratch)
	ct, err := r.st.ReadRange(ctx, ref.Key, from, to-from, scratch)
	if err != nil {
		return nil, err
	}
	out := buf[:0]
	var nonce [chacha20poly1305.NonceSize]byte
	skip := pos - c0*ageChunk
	for c := c0; c <= c1; c++ {
		chunk := ct[:min(ageSealed, len(ct))]
		ct = ct[len(chunk):]
		// The nonce is the chunk counter, big-endian in 11 bytes, and a
		// byte that is 1 for the final chunk only.
		for i, v := 0, c; i < 11; i++ {
			nonce[10-i] = byte(v >> (8 * i))
		}
		nonce[11] = 0
		if c == last {
			nonce[11] = 1
		}
		plain, err := k.aead.Open(chunk[:0], nonce[:], chunk, nil)
		if err != nil {
			return nil, fmt.Errorf("repo: %s: chunk %d (stored bytes %d..%d): %w", ref.Key, c, c*ageChunk, (c+1)*ageChunk, err)
		}
		plain = plain[min(skip, int64(len(plain))):]
		skip = 0
		out = append(out, plain[:min(int64(len(plain)), n-int64(len(out)))]...)
	}
	if int64(len(out)) != n {
		return nil, fmt.Errorf("repo: %s: read %d of bytes %d+%d", ref.Key, len(out), pos, n)
	}
	return out, nil
}

// segmentKey reads the header of a sealed segment for its payload key,
// once per segment while a few thousand are cached.
func (c *crypt) segmentKey(ctx context.Context, st *storage.Store, ref SegmentRef) (*sealedKey, error) {
	c.mu.Lock()
	k := c.keys[ref.Key]
	c.mu.Unlock()
	if k != nil {
		return k, nil
	}
	head, err := st.GetRange(ctx, ref.Key, 0, min(ageHeaderRead, int64(ref.SealedBytes)))
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(head, []byte(ageMagic)) {
		return nil, fmt.Errorf("repo: %s is not encrypted, but the repository is: refusing it", ref.Key)
	}
	hdr, err := age.ExtractHeader(bytes.NewReader(head))
	if err != nil {
		return nil, fmt.Errorf("repo: %s: age header: %w", ref.Key, err)
	}
	fileKey, err := age.DecryptHeader(hdr, c.ids...)
	if err != nil {
		return nil, c.openError(ref.Key, err)
	}
	if len(head) < len(hdr)+ageNonceLen {
		return nil, fmt.Errorf("repo: %s: %d bytes end inside the age header", ref.Key, len(head))
	}
	nonce := head[len(hdr) : len(hdr)+ageNonceLen]
	streamKey, err := hkdf.Key(sha256.New, fileKey, nonce, "payload", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(streamKey)
	if err != nil {
		return nil, err
	}
	payload := int64(len(hdr) + ageNonceLen)
	if payload+sealedLen(int64(ref.StoredBytes)) != int64(ref.SealedBytes) {
		return nil, fmt.Errorf("repo: %s: a %d-byte age file cannot hold the %d bytes its index says", ref.Key, ref.SealedBytes, ref.StoredBytes)
	}
	k = &sealedKey{payload: payload, aead: aead}
	c.mu.Lock()
	if len(c.keys) >= 4096 {
		clear(c.keys)
	}
	c.keys[ref.Key] = k
	c.mu.Unlock()
	return k, nil
}

var scratchPool sync.Pool

func getScratch(n int) []byte {
	if p, ok := scratchPool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]byte, n)
}

func putScratch(b []byte) { scratchPool.Put(&b) }
