package verify

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"hash/crc64"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// The check value of every CRC catalogue entry is its CRC of "123456789".
func TestChecksumVectors(t *testing.T) {
	m, err := Measure(context.Background(), bytes.NewReader([]byte("123456789")),
		Options{Checksums: MD5 | SHA1 | CRC32 | CRC32C | CRC64NVME})
	require.NoError(t, err)

	require.Equal(t, "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225", m.SHA256Hex())
	require.Equal(t, uint32(0xcbf43926), m.CRC32, "CRC-32/ISO-HDLC")
	require.Equal(t, uint32(0xe3069283), m.CRC32C, "CRC-32C/Castagnoli")
	require.Equal(t, uint64(0xae8b14860a799888), m.CRC64NVME, "CRC-64/NVME as published by AWS")
	// S3 reports the big-endian bytes in base64.
	require.Equal(t, "rosUhgp5mIg=", m.Base64(CRC64NVME))
	require.Equal(t, "4waSgw==", m.Base64(CRC32C))
	require.Equal(t, "y/Q5Jg==", m.Base64(CRC32))
	require.Equal(t, "25f9e794323b453885f5181f1b624d0b", hex.EncodeToString(m.MD5[:]))
}

// The fast CRC-64/NVME must agree with hash/crc64's own (slow-path) update
// for every length and every way of splitting the input across calls.
func TestCRC64NVMEMatchesStdlib(t *testing.T) {
	std := crc64.MakeTable(crc64NVMEPoly)
	data := randomBytes(5000, 1)
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 4097, 5000} {
		require.Equal(t, crc64.Checksum(data[:n], std), crc64NVMEUpdate(0, data[:n]), "length %d", n)
	}
	for _, split := range []int{1, 3, 8, 1000, 4999} {
		c := crc64NVMEUpdate(0, data[:split])
		c = crc64NVMEUpdate(c, data[split:])
		require.Equal(t, crc64.Checksum(data, std), c, "split at %d", split)
	}
}

func TestMeasureDigests(t *testing.T) {
	all := MD5 | SHA1 | SHA512 | CRC32 | CRC32C | CRC64NVME
	tests := []struct {
		name       string
		data       []byte
		bufferSize int
	}{
		{"empty", nil, 0},
		{"one byte", []byte{42}, 0},
		{"small text", []byte("hello, labelq\n"), 0},
		{"many small buffers", randomBytes(100_000, 2), 7},
		{"exactly one buffer", randomBytes(4096, 3), 4096},
		{"default buffer, several MiB", randomBytes(3<<20+5, 4), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Measure(context.Background(), iotest.HalfReader(bytes.NewReader(tt.data)),
				Options{Checksums: all, BufferSize: tt.bufferSize})
			require.NoError(t, err)

			require.Equal(t, int64(len(tt.data)), m.Size)
			require.Equal(t, sha256.Sum256(tt.data), m.SHA256)
			require.Equal(t, sha1.Sum(tt.data), m.SHA1)
			require.Equal(t, sha512.Sum512(tt.data), m.SHA512)
			require.Equal(t, md5.Sum(tt.data), m.MD5)
			require.Equal(t, crc32.ChecksumIEEE(tt.data), m.CRC32)
			require.Equal(t, crc32.Checksum(tt.data, crc32.MakeTable(crc32.Castagnoli)), m.CRC32C)
			require.Equal(t, crc64.Checksum(tt.data, crc64.MakeTable(crc64NVMEPoly)), m.CRC64NVME)
			require.Equal(t, all|SHA256, m.Computed)
		})
	}
}

// Only SHA-256 runs unless asked: nothing else may hold a value.
func TestMeasureComputesOnlyWhatIsAsked(t *testing.T) {
	data := []byte("some bytes")
	m, err := Measure(context.Background(), bytes.NewReader(data), Options{})
	require.NoError(t, err)
	require.Equal(t, SHA256, m.Computed)
	require.Zero(t, m.MD5)
	require.Zero(t, m.CRC32C)
	require.Zero(t, m.CRC64NVME)
	_, ok := m.Sum(MD5)
	require.False(t, ok)
	require.Empty(t, m.Base64(CRC32C))

	m, err = Measure(context.Background(), bytes.NewReader(data), Options{Checksums: CRC32C})
	require.NoError(t, err)
	require.Equal(t, SHA256|CRC32C, m.Computed)
	require.NotZero(t, m.CRC32C)
	require.Zero(t, m.MD5)
}

func TestMeasureContentType(t *testing.T) {
	tests := []struct {
		name  string
		data  []byte
		want  string
		isZip bool
	}{
		{"text", []byte("hello world\n"), "text/plain; charset=utf-8", false},
		{"csv", []byte("a,b,c\n1,2,3\n4,5,6\n"), "text/csv", false},
		{"json", []byte(`{"labels": ["cat", "dog"]}`), "application/json", false},
		{"png", pngBytes(t), "image/png", false},
		{"jpeg", jpegBytes(t), "image/jpeg", false},
		{"elf", elfBytes(), "application/x-executable", false},
		{"zip", buildZip(t, zipEntry{name: "a.txt", data: []byte("a")}), "application/zip", true},
		{"unknown binary", []byte{0, 1, 2, 3, 0xff, 0xfe, 0, 0}, "application/octet-stream", false},
		// Sniffing uses the first SniffBytes only: a text file whose first
		// bytes are text is text even if it is long.
		{"long text", bytes.Repeat([]byte("lorem ipsum "), 100_000), "text/plain; charset=utf-8", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Measure(context.Background(), bytes.NewReader(tt.data), Options{})
			require.NoError(t, err)
			require.Equal(t, tt.want, m.ContentType)
			require.Equal(t, tt.isZip, m.IsZip())
		})
	}
}

func TestMeasureLimitsAndFailures(t *testing.T) {
	data := randomBytes(10_000, 5)

	t.Run("max size", func(t *testing.T) {
		_, err := Measure(context.Background(), bytes.NewReader(data), Options{MaxSize: 9_999, BufferSize: 1000})
		require.ErrorIs(t, err, ErrTooLarge)
		require.Contains(t, err.Error(), "larger than the 9,999 bytes limit")

		m, err := Measure(context.Background(), bytes.NewReader(data), Options{MaxSize: 10_000})
		require.NoError(t, err, "a file of exactly the limit is fine")
		require.Equal(t, int64(10_000), m.Size)
	})

	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		_, err := Measure(ctx, bytes.NewReader(data), Options{BufferSize: 1000, Progress: func(int64) {
			calls++
			if calls == 3 {
				cancel()
			}
		}})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 3, calls, "no buffer is read after cancellation")
	})

	t.Run("reader error", func(t *testing.T) {
		boom := errors.New("connection reset")
		r := io.MultiReader(bytes.NewReader(data[:5000]), iotest.ErrReader(boom))
		m, err := Measure(context.Background(), r, Options{BufferSize: 1000})
		require.ErrorIs(t, err, boom)
		require.Contains(t, err.Error(), "after 5000 bytes")
		require.Zero(t, m, "a partial measurement is never returned")
	})

	t.Run("progress", func(t *testing.T) {
		var seen []int64
		_, err := Measure(context.Background(), bytes.NewReader(data), Options{BufferSize: 4096,
			Progress: func(n int64) { seen = append(seen, n) }})
		require.NoError(t, err)
		require.Equal(t, []int64{4096, 8192, 10_000}, seen)
	})
}

// Measuring 32 MiB must not allocate anything in proportion to it.
func TestMeasureConstantMemory(t *testing.T) {
	block := randomBytes(1<<20, 6)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Measure(context.Background(), &loopReader{block: block, remaining: 32 << 20},
		Options{Checksums: MD5 | CRC32C | CRC64NVME})
	require.NoError(t, err)
	runtime.ReadMemStats(&after)
	// One DefaultBufferSize buffer (unless the pool had one) and a few small objects.
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(DefaultBufferSize+1<<20),
		"Measure allocated %d bytes for 32 MiB of input", after.TotalAlloc-before.TotalAlloc)
}

// loopReader yields block over and over until remaining bytes are served.
type loopReader struct {
	block     []byte
	off       int
	remaining int64
}

func (r *loopReader) Read(p []byte) (int, error) {
	if r.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.block[r.off:])
		n += c
		r.off = (r.off + c) % len(r.block)
	}
	r.remaining -= int64(n)
	return n, nil
}
