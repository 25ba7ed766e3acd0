package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codec is a batch's compression, as in the low three attribute bits.
type Codec int8

const (
	None   Codec = 0
	Gzip   Codec = 1
	Snappy Codec = 2
	LZ4    Codec = 3
	Zstd   Codec = 4
)

func (c Codec) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Snappy:
		return "snappy"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

// ErrTooLarge is returned when decompressed data would exceed the limit: a
// decompression bomb, or a limit set too low for the data.
var ErrTooLarge = errors.New("record: decompressed data exceeds the limit")

// DefaultMaxDecompressed is the decompression limit of a zero Decompressor:
// larger than any batch a broker accepts by default (message.max.bytes is
// about 1 MiB; the largest settings seen in practice are a few hundred MiB).
const DefaultMaxDecompressed = 256 << 20

// xerialMagic starts the framing the Java client wraps snappy data in.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// A Decompressor decompresses batch payloads into caller-owned buffers,
// reusing its decoders so that steady-state decompression allocates
// nothing. It is not safe for concurrent use; pool Decompressors per
// goroutine. The zero value is ready, with DefaultMaxDecompressed.
type Decompressor struct {
	// Max is the largest decompressed size accepted; 0 means
	// DefaultMaxDecompressed.
	Max int

	gz    *gzip.Reader
	lz    *lz4.Reader
	zs    *zstd.Decoder
	zsMax int
	src   bytes.Reader
}

func (d *Decompressor) limit() int {
	if d.Max > 0 {
		return d.Max
	}
	return DefaultMaxDecompressed
}

// Decompress appends the decompressed form of src, compressed with codec c,
// to dst[:0] and returns it. Gzip and lz4 are framed formats; snappy may be
// a raw block (librdkafka, franz-go) or xerial-framed (the Java client);
// zstd is a frame.
func (d *Decompressor) Decompress(dst []byte, c Codec, src []byte) ([]byte, error) {
	dst = dst[:0]
	limit := d.limit()
	switch c {
	case None:
		if len(src) > limit {
			return dst, ErrTooLarge
		}
		return append(dst, src...), nil
	case Gzip:
		d.src.Reset(src)
		if d.gz == nil {
			gz, err := gzip.NewReader(&d.src)
			if err != nil {
				return dst, fmt.Errorf("record: gzip: %w", err)
			}
			d.gz = gz
		} else if err := d.gz.Reset(&d.src); err != nil {
			return dst, fmt.Errorf("record: gzip: %w", err)
		}
		return readLimited(dst, d.gz, limit, "gzip")
	case Snappy:
		return d.snappy(dst, src, limit)
	case LZ4:
		d.src.Reset(src)
		if d.lz == nil {
			d.lz = lz4.NewReader(&d.src)
		} else {
			d.lz.Reset(&d.src)
		}
		return readLimited(dst, d.lz, limit, "lz4")
	case Zstd:
		if d.zs == nil || d.zsMax != limit {
			if d.zs != nil {
				d.zs.Close()
			}
			zs, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)))
			if err != nil {
				return dst, fmt.Errorf("record: zstd: %w", err)
			}
			d.zs, d.zsMax = zs, limit
		}
		out, err := d.zs.DecodeAll(src, dst)
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
				return dst, ErrTooLarge
			}
			return dst, fmt.Errorf("record: zstd: %w", err)
		}
		if len(out) > limit {
			return dst, ErrTooLarge
		}
		return out, nil
	}
	return dst, fmt.Errorf("record: unknown compression codec %d", int8(c))
}

func (d *Decompressor) snappy(dst, src []byte, limit int) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		return snappyBlock(dst, src, limit)
	}
	// Xerial framing: magic, version and compatible version (int32 each),
	// then chunks of int32 length + raw snappy block.
	if len(src) < 16 {
		return dst, &CorruptError{Offset: 0, Reason: "xerial snappy header truncated"}
	}
	pos := 16
	for pos < len(src) {
		if len(src)-pos < 4 {
			return dst, &CorruptError{Offset: pos, Reason: "xerial snappy chunk length truncated"}
		}
		n := int(binary.BigEndian.Uint32(src[pos:]))
		pos += 4
		if n < 0 || n > len(src)-pos {
			return dst, &CorruptError{Offset: pos, Reason: fmt.Sprintf("xerial snappy chunk of %d bytes, %d left", n, len(src)-pos)}
		}
		var err error
		if dst, err = snappyBlock(dst, src[pos:pos+n], limit); err != nil {
			return dst, err
		}
		pos += n
	}
	return dst, nil
}

// snappyBlock appends the decoding of one raw snappy block to dst.
func snappyBlock(dst, src []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return dst, fmt.Errorf("record: snappy: %w", err)
	}
	if n > limit-len(dst) {
		return dst, ErrTooLarge
	}
	start := len(dst)
	dst = grow(dst, n)
	if _, err := snappy.Decode(dst[start:start+n], src); err != nil {
		return dst[:start], fmt.Errorf("record: snappy: %w", err)
	}
	return dst, nil
}

// grow extends b by n bytes, reallocating only when capacity is short.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// readLimited reads r to the end into dst, failing with ErrTooLarge past
// max bytes. It allocates only to grow dst.
func readLimited(dst []byte, r io.Reader, limit int, name string) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			// Grow geometrically, but never past one byte over the
			// limit: a bomb costs at most limit+1 bytes.
			dst = grow(dst, min(max(4096, cap(dst)), limit+1-len(dst)))[:len(dst)]
		}
		room := dst[len(dst):cap(dst)]
		if over := len(dst) + len(room) - (limit + 1); over > 0 {
			room = room[:len(room)-over]
		}
		n, err := r.Read(room)
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst[:0], ErrTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst[:0], fmt.Errorf("record: %s: %w", name, err)
		}
	}
}

// A Compressor compresses batch payloads with reused encoders. It is not
// safe for concurrent use. The zero value uses each codec's default level.
type Compressor struct {
	// Level per codec: gzip 1-9 (-1 default), lz4 0-9 (0 fast), zstd 1-4
	// (zstd.EncoderLevel: fastest, default, better, best). 0 is the
	// codec's default.
	GzipLevel, LZ4Level, ZstdLevel int

	gz  *gzip.Writer
	lz  *lz4.Writer
	zs  *zstd.Encoder
	buf bytes.Buffer
}

// Compress appends src compressed with codec c to dst and returns it.
// Snappy is written as a raw block, which every client reads.
func (z *Compressor) Compress(dst []byte, c Codec, src []byte) ([]byte, error) {
	switch c {
	case None:
		return append(dst, src...), nil
	case Snappy:
		n := snappy.MaxEncodedLen(len(src))
		start := len(dst)
		dst = grow(dst, n)
		out := snappy.Encode(dst[start:], src)
		return dst[:start+len(out)], nil
	case Zstd:
		if z.zs == nil {
			lvl := zstd.SpeedDefault
			if z.ZstdLevel > 0 {
				lvl = zstd.EncoderLevel(z.ZstdLevel)
			}
			zs, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
			if err != nil {
				return dst, fmt.Errorf("record: zstd: %w", err)
			}
			z.zs = zs
		}
		return z.zs.EncodeAll(src, dst), nil
	case Gzip, LZ4:
		z.buf.Reset()
		w, err := z.writer(c)
		if err != nil {
			return dst, err
		}
		if _, err := w.Write(src); err != nil {
			return dst, fmt.Errorf("record: %s: %w", c, err)
		}
		if err := w.Close(); err != nil {
			return dst, fmt.Errorf("record: %s: %w", c, err)
		}
		return append(dst, z.buf.Bytes()...), nil
	}
	return dst, fmt.Errorf("record: unknown compression codec %d", int8(c))
}

func (z *Compressor) writer(c Codec) (io.WriteCloser, error) {
	if c == Gzip {
		if z.gz == nil {
			lvl := gzip.DefaultCompression
			if z.GzipLevel != 0 {
				lvl = z.GzipLevel
			}
			gz, err := gzip.NewWriterLevel(&z.buf, lvl)
			if err != nil {
				return nil, fmt.Errorf("record: gzip level %d: %w", z.GzipLevel, err)
			}
			z.gz = gz
		} else {
			z.gz.Reset(&z.buf)
		}
		return z.gz, nil
	}
	if z.lz == nil {
		z.lz = lz4.NewWriter(&z.buf)
		opts := []lz4.Option{lz4.ConcurrencyOption(1)}
		if z.LZ4Level > 0 {
			opts = append(opts, lz4.CompressionLevelOption(lz4.CompressionLevel(1<<(7+z.LZ4Level))))
		}
		if err := z.lz.Apply(opts...); err != nil {
			return nil, fmt.Errorf("record: lz4 level %d: %w", z.LZ4Level, err)
		}
	} else {
		z.lz.Reset(&z.buf)
	}
	return z.lz, nil
}
