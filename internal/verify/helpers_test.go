package verify

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func ptr[T any](v T) *T { return &v }

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// elfBytes is a minimal 64-bit little-endian ELF executable header: the magic,
// class, data and version bytes, e_type = ET_EXEC, and zeros to 64 bytes.
func elfBytes() []byte {
	b := make([]byte, 64)
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	b[16] = 2 // ET_EXEC
	b[18] = 0x3e
	return b
}

func testImage() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 32, 16))
	for x := range 32 {
		for y := range 16 {
			img.Set(x, y, color.RGBA{uint8(x * 8), uint8(y * 16), 128, 255})
		}
	}
	return img
}

func pngBytes(t testing.TB) []byte {
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, testImage()))
	return b.Bytes()
}

func jpegBytes(t testing.TB) []byte {
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, testImage(), nil))
	return b.Bytes()
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

// zipEntry describes one entry for buildZip.
type zipEntry struct {
	name  string
	data  []byte
	store bool // zip.Store instead of zip.Deflate
	mode  fs.FileMode
	flags uint16
	extra []byte
}

func buildZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Flags: e.flags, Extra: e.extra}
		if e.store {
			h.Method = zip.Store
		}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		require.NoError(t, err)
		_, err = w.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return b.Bytes()
}

// rawZip hand-writes an archive with stored entries whose central directory
// records all point at the one local file: what archive/zip's writer can't
// produce, and what overlapping-file zip bombs do.
func rawZip(data []byte, names ...string) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	crc := crc32.ChecksumIEEE(data)
	local := names[0]
	b.Write(le.AppendUint32(nil, 0x04034b50))
	b.Write(le.AppendUint16(nil, 20))                // version needed
	b.Write(le.AppendUint16(nil, 0))                 // flags
	b.Write(le.AppendUint16(nil, 0))                 // method: store
	b.Write(le.AppendUint32(nil, 0))                 // time, date
	b.Write(le.AppendUint32(nil, crc))               // crc
	b.Write(le.AppendUint32(nil, uint32(len(data)))) // compressed
	b.Write(le.AppendUint32(nil, uint32(len(data)))) // uncompressed
	b.Write(le.AppendUint16(nil, uint16(len(local))))
	b.Write(le.AppendUint16(nil, 0)) // extra
	b.WriteString(local)
	b.Write(data)

	cdStart := b.Len()
	for _, name := range names {
		b.Write(le.AppendUint32(nil, 0x02014b50))
		b.Write(le.AppendUint16(nil, 20)) // made by
		b.Write(le.AppendUint16(nil, 20)) // needed
		b.Write(le.AppendUint16(nil, 0))  // flags
		b.Write(le.AppendUint16(nil, 0))  // method
		b.Write(le.AppendUint32(nil, 0))  // time, date
		b.Write(le.AppendUint32(nil, crc))
		b.Write(le.AppendUint32(nil, uint32(len(data))))
		b.Write(le.AppendUint32(nil, uint32(len(data))))
		b.Write(le.AppendUint16(nil, uint16(len(name))))
		b.Write(le.AppendUint16(nil, 0)) // extra
		b.Write(le.AppendUint16(nil, 0)) // comment
		b.Write(le.AppendUint16(nil, 0)) // disk
		b.Write(le.AppendUint16(nil, 0)) // internal attrs
		b.Write(le.AppendUint32(nil, 0)) // external attrs
		b.Write(le.AppendUint32(nil, 0)) // local header offset: all the same
		b.WriteString(name)
	}
	cdSize := b.Len() - cdStart
	b.Write(le.AppendUint32(nil, 0x06054b50))
	b.Write(le.AppendUint16(nil, 0))
	b.Write(le.AppendUint16(nil, 0))
	b.Write(le.AppendUint16(nil, uint16(len(names))))
	b.Write(le.AppendUint16(nil, uint16(len(names))))
	b.Write(le.AppendUint32(nil, uint32(cdSize)))
	b.Write(le.AppendUint32(nil, uint32(cdStart)))
	b.Write(le.AppendUint16(nil, 0))
	return b.Bytes()
}

func inspect(t testing.TB, data []byte, opts Options) Report {
	t.Helper()
	rep, err := InspectZip(context.Background(), bytes.NewReader(data), int64(len(data)), opts)
	require.NoError(t, err)
	return rep
}

func codes(r Report) []Code {
	out := []Code{}
	for _, f := range r.Findings {
		out = append(out, f.Code)
	}
	return out
}
