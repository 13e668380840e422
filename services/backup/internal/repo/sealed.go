package repo

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// The sealed format:
//
//	header  = magic "CNPYBK1" | chunk size (uint32 BE) | nonce prefix (4 random bytes)
//	chunk i = AES-256-GCM(data key, nonce = prefix | i (uint64 BE),
//	          aad = header | i (uint64 BE) | final (1 byte), up to chunk size bytes)
//
// over the zstd stream of the plaintext. Every chunk but the last holds
// exactly chunk size bytes; the last (final = 1) holds fewer, possibly
// none, so a reader tells it by its length. The counter in the nonce and
// the aad makes reordered or dropped chunks fail to open; the final flag
// makes a stream cut at a chunk boundary fail (its last chunk was sealed
// as not final, and no final chunk follows); the header in the aad binds
// the chunk size and prefix. The random prefix keeps nonces distinct
// should a data key ever seal two objects (callers use a fresh key per
// object; the prefix is the safety margin, not the scheme).
const (
	magic            = "CNPYBK1"
	headerSize       = len(magic) + 4 + 4
	defaultChunkSize = 1 << 20
	minChunkSize     = 1 << 10
	maxChunkSize     = 16 << 20
	tagSize          = 16
)

// encoderLevel is zstd.SpeedFastest, measured with BenchmarkSeal (64 MiB
// of SQL-dump-like text, concurrency 2, 1 MiB chunks) on this 2-core
// machine while other builds ran: SpeedFastest sealed at 180-280 MB/s
// (ratio 3.84), SpeedDefault at 110-160 MB/s (ratio 3.80, no better on
// this data), so only SpeedFastest keeps the 150 MB/s a large instance's
// backup needs. zstd is ~85% of the CPU time; AES-GCM and SHA-256 ~5%.
const encoderLevel = zstd.SpeedFastest

// encoderConcurrency: two blocks in flight, one per core.
const encoderConcurrency = 2

// Seal compresses and encrypts everything read from r into the object
// key of b, and returns the object's manifest entry.
func Seal(ctx context.Context, b Blobs, key string, dataKey []byte, r io.Reader) (backup.Object, error) {
	return seal(ctx, b, key, dataKey, r, sealOptions{chunkSize: defaultChunkSize, level: encoderLevel})
}

// errPutReturned is what the producer's writes fail with once Put has
// returned.
var errPutReturned = errors.New("repository stopped reading")

// sealOptions are fixed in production; tests and benchmarks vary them.
type sealOptions struct {
	chunkSize int
	level     zstd.EncoderLevel
}

func seal(ctx context.Context, b Blobs, key string, dataKey []byte, r io.Reader, opt sealOptions) (backup.Object, error) {
	aead, err := newAEAD(dataKey)
	if err != nil {
		return backup.Object{}, fmt.Errorf("seal %s: %w", key, err)
	}
	header := make([]byte, headerSize)
	copy(header, magic)
	binary.BigEndian.PutUint32(header[len(magic):], uint32(opt.chunkSize))
	if _, err := rand.Read(header[len(magic)+4:]); err != nil {
		return backup.Object{}, fmt.Errorf("seal %s: nonce prefix: %w", key, err)
	}

	// The producer writes the sealed stream into a pipe that Put reads:
	// the whole object is never in memory, and a failure on either side
	// reaches the other (a failed producer fails Put, so nothing partial
	// becomes visible; a failed Put stops the producer).
	pr, pw := io.Pipe()
	sum := sha256.New()
	var stored, plain countWriter
	prodErr := make(chan error, 1)
	go func() {
		err := produce(ctx, io.MultiWriter(pw, sum, &stored), header, aead, r, &plain, opt)
		pw.CloseWithError(err)
		prodErr <- err
	}()
	putErr := b.Put(ctx, key, pr)
	pr.CloseWithError(errPutReturned) // unblocks a producer Put stopped reading
	perr := <-prodErr
	if putErr != nil {
		if perr != nil && !errors.Is(perr, errPutReturned) {
			// The producer failed first (the source's error, say) and
			// that failed Put: report the cause, not its echo.
			return backup.Object{}, fmt.Errorf("seal %s: %w", key, perr)
		}
		return backup.Object{}, fmt.Errorf("seal %s: %w", key, putErr)
	}
	if perr != nil {
		// Put claimed success without reading everything; do not leave
		// an object the manifest cannot describe.
		_ = b.Delete(context.WithoutCancel(ctx), key)
		return backup.Object{}, fmt.Errorf("seal %s: %w", key, perr)
	}
	return backup.Object{
		Key:       key,
		SHA256:    hex.EncodeToString(sum.Sum(nil)),
		Size:      stored.n,
		PlainSize: plain.n,
	}, nil
}

func produce(ctx context.Context, w io.Writer, header []byte, aead cipher.AEAD, r io.Reader, plain *countWriter, opt sealOptions) error {
	if _, err := w.Write(header); err != nil {
		return err
	}
	cw := &chunkWriter{
		w:      w,
		aead:   aead,
		header: header,
		buf:    make([]byte, 0, opt.chunkSize),
		out:    make([]byte, 0, opt.chunkSize+tagSize),
	}
	enc, err := zstd.NewWriter(cw,
		zstd.WithEncoderLevel(opt.level),
		zstd.WithEncoderConcurrency(encoderConcurrency))
	if err != nil {
		return fmt.Errorf("zstd encoder: %w", err)
	}
	if _, err := io.Copy(enc, io.TeeReader(ctxReader{ctx, r}, plain)); err != nil {
		enc.Close()
		return fmt.Errorf("read plaintext: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	return cw.close()
}

func newAEAD(dataKey []byte) (cipher.AEAD, error) {
	if len(dataKey) != DataKeySize {
		return nil, fmt.Errorf("data key is %d bytes, want %d", len(dataKey), DataKeySize)
	}
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// chunkNonce and chunkAAD lay out what the format comment describes.
func chunkNonce(dst, header []byte, counter uint64) []byte {
	dst = append(dst[:0], header[len(magic)+4:]...)
	return binary.BigEndian.AppendUint64(dst, counter)
}

func chunkAAD(dst, header []byte, counter uint64, final bool) []byte {
	dst = append(dst[:0], header...)
	dst = binary.BigEndian.AppendUint64(dst, counter)
	if final {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// chunkWriter seals the compressed stream chunk by chunk.
type chunkWriter struct {
	w       io.Writer
	aead    cipher.AEAD
	header  []byte
	buf     []byte // pending plaintext of the current chunk
	out     []byte
	nonce   []byte
	aad     []byte
	counter uint64
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(cap(c.buf)-len(c.buf), len(p))
		c.buf = append(c.buf, p[:k]...)
		p, n = p[k:], n+k
		// A full chunk is sealed as not final only now, when more bytes
		// are known to follow; the final chunk is always short.
		if len(c.buf) == cap(c.buf) && len(p) > 0 {
			if err := c.flush(false); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (c *chunkWriter) flush(final bool) error {
	c.nonce = chunkNonce(c.nonce, c.header, c.counter)
	c.aad = chunkAAD(c.aad, c.header, c.counter, final)
	c.out = c.aead.Seal(c.out[:0], c.nonce, c.buf, c.aad)
	c.buf = c.buf[:0]
	c.counter++
	_, err := c.w.Write(c.out)
	return err
}

func (c *chunkWriter) close() error {
	// A full buffer at the end is sealed as an ordinary chunk, followed by
	// an empty final one: the final chunk must be shorter than a chunk.
	if len(c.buf) == cap(c.buf) {
		if err := c.flush(false); err != nil {
			return err
		}
	}
	return c.flush(true)
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// Open returns the plaintext of a sealed object, checking as it reads:
// ErrMissing, or ErrCorrupt (naming the key) for altered or truncated
// bytes, which Read returns at the latest at the end of the stream, before
// io.EOF; a caller that reads to EOF without error has every byte intact.
func Open(ctx context.Context, b Blobs, obj backup.Object, dataKey []byte) (io.ReadCloser, error) {
	aead, err := newAEAD(dataKey)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", obj.Key, err)
	}
	want, err := hex.DecodeString(obj.SHA256)
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("open %s: manifest sha256 %q is not a SHA-256", obj.Key, obj.SHA256)
	}
	src, err := b.Get(ctx, obj.Key)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", obj.Key, err)
	}
	cr := &chunkReader{
		key:  obj.Key,
		src:  src,
		aead: aead,
		sum:  sha256.New(),
		want: want,
		size: obj.Size,
	}
	if err := cr.readHeader(); err != nil {
		src.Close()
		return nil, err
	}
	dec, err := zstd.NewReader(cr,
		// Synchronous: no read-ahead goroutines, so an error from the
		// chunk reader surfaces on the caller's Read in order.
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(false))
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("open %s: zstd decoder: %w", obj.Key, err)
	}
	return &plainReader{ctx: ctx, key: obj.Key, cr: cr, dec: dec, want: obj.PlainSize}, nil
}

// chunkReader authenticates and decrypts the stored stream, and checks its
// SHA-256 and size against the manifest once it has read it all.
type chunkReader struct {
	key     string
	src     io.ReadCloser
	aead    cipher.AEAD
	header  []byte
	sum     hash.Hash
	want    []byte
	size    int64
	read    int64
	buf     []byte // sealed chunk
	plain   []byte // decrypted, not yet returned
	nonce   []byte
	aad     []byte
	counter uint64
	final   bool
	err     error // sticky
}

func (c *chunkReader) corrupt(format string, args ...any) error {
	return fmt.Errorf("open %s: %w: %s", c.key, ErrCorrupt, fmt.Sprintf(format, args...))
}

// fill reads len(p) stored bytes (fewer at EOF), hashing them.
func (c *chunkReader) fill(p []byte) (int, error) {
	n, err := io.ReadFull(c.src, p)
	c.sum.Write(p[:n])
	c.read += int64(n)
	return n, err
}

func (c *chunkReader) readHeader() error {
	h := make([]byte, headerSize)
	if _, err := c.fill(h); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return c.corrupt("%d bytes, shorter than a header", c.read)
		}
		return fmt.Errorf("open %s: read header: %w", c.key, err)
	}
	if string(h[:len(magic)]) != magic {
		return c.corrupt("not a sealed object (bad magic)")
	}
	cs := int(binary.BigEndian.Uint32(h[len(magic):]))
	if cs < minChunkSize || cs > maxChunkSize {
		return c.corrupt("chunk size %d out of range", cs)
	}
	c.header = h
	c.buf = make([]byte, cs+tagSize)
	return nil
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.plain) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if c.final {
			c.err = c.finish()
			return 0, c.err
		}
		c.err = c.next()
	}
	n := copy(p, c.plain)
	c.plain = c.plain[n:]
	return n, nil
}

func (c *chunkReader) next() error {
	n, err := c.fill(c.buf)
	switch {
	case err == nil: // a full chunk: never the final one
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.final = true
	case errors.Is(err, io.EOF):
		return c.corrupt("truncated: no final chunk after chunk %d", c.counter)
	default:
		return fmt.Errorf("open %s: read chunk %d: %w", c.key, c.counter, err)
	}
	c.nonce = chunkNonce(c.nonce, c.header, c.counter)
	c.aad = chunkAAD(c.aad, c.header, c.counter, c.final)
	plain, oerr := c.aead.Open(c.buf[:0], c.nonce, c.buf[:n], c.aad)
	if oerr != nil {
		return c.corrupt("chunk %d fails authentication (altered, reordered, truncated or wrong key)", c.counter)
	}
	c.plain = plain
	c.counter++
	return nil
}

// finish runs after the final chunk: the stream must end there and match
// the manifest.
func (c *chunkReader) finish() error {
	var one [1]byte
	if n, _ := c.src.Read(one[:]); n > 0 {
		return c.corrupt("bytes after the final chunk")
	}
	if c.read != c.size {
		return c.corrupt("%d stored bytes, manifest says %d", c.read, c.size)
	}
	if got := c.sum.Sum(nil); string(got) != string(c.want) {
		return c.corrupt("sha256 %x, manifest says %x", got, c.want)
	}
	return io.EOF
}

// plainReader is what Open returns: the decompressed stream, which reports
// io.EOF only once the chunk reader has verified the whole object.
type plainReader struct {
	ctx  context.Context
	key  string
	cr   *chunkReader
	dec  *zstd.Decoder
	want int64
	n    int64
	err  error
}

func (p *plainReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.dec.Read(b)
	p.n += int64(n)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF):
		p.err = p.verifyEnd()
	case p.cr.err != nil && !errors.Is(p.cr.err, io.EOF):
		p.err = p.cr.err
	default:
		p.err = fmt.Errorf("open %s: %w: decompress: %v", p.key, ErrCorrupt, err)
	}
	return n, p.err
}

// verifyEnd drains the chunk reader past the end of the zstd frame, so the
// final chunk, the SHA-256 and the sizes are all checked before io.EOF.
func (p *plainReader) verifyEnd() error {
	if _, err := io.Copy(io.Discard, p.cr); err != nil {
		return err
	}
	if !p.cr.final {
		return p.cr.corrupt("no final chunk")
	}
	if p.n != p.want {
		return p.cr.corrupt("%d plaintext bytes, manifest says %d", p.n, p.want)
	}
	return io.EOF
}

func (p *plainReader) Close() error {
	p.dec.Close()
	return p.cr.src.Close()
}
