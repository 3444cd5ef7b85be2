// Package imagetest builds the images the tests of internal/verify and
// worker/validate feed the image header reader: real JPEG, PNG and GIF files
// encoded by the standard library, a JPEG carrying an EXIF Orientation written
// byte by byte, a minimal WebP header, and damaged or cut-off variants.
package imagetest

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/stretchr/testify/require"
)

// picture is a w×h gradient: something an encoder has to work on.
func picture(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		for y := range h {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 13), 128, 255})
		}
	}
	return img
}

// PNG is a w×h PNG.
func PNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, picture(w, h)))
	return b.Bytes()
}

// GIF is a w×h GIF.
func GIF(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, gif.Encode(&b, picture(w, h), nil))
	return b.Bytes()
}

// JPEG is a w×h JPEG stored as encoded; orientation 1-8 adds an EXIF APP1
// segment right after the start-of-image marker whose IFD0 holds that
// Orientation and nothing else (big-endian "MM" TIFF, as most cameras write
// it), 0 adds none.
func JPEG(t testing.TB, w, h, orientation int) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, picture(w, h), &jpeg.Options{Quality: 80}))
	if orientation == 0 {
		return b.Bytes()
	}
	return Splice(b.Bytes(), EXIF(binary.BigEndian, orientation))
}

// EXIF is a JPEG APP1 segment (marker included) with an EXIF TIFF structure
// in the given byte order whose IFD0 has one entry: Orientation (tag 0x0112,
// type SHORT, count 1).
func EXIF(order binary.AppendByteOrder, orientation int) []byte {
	var tiff []byte
	if order.String() == binary.BigEndian.String() {
		tiff = append(tiff, 'M', 'M')
	} else {
		tiff = append(tiff, 'I', 'I')
	}
	tiff = order.AppendUint16(tiff, 42)
	tiff = order.AppendUint32(tiff, 8) // IFD0 right after the header
	tiff = order.AppendUint16(tiff, 1) // one entry
	tiff = order.AppendUint16(tiff, 0x0112)
	tiff = order.AppendUint16(tiff, 3) // SHORT
	tiff = order.AppendUint32(tiff, 1)
	tiff = order.AppendUint16(tiff, uint16(orientation))
	tiff = append(tiff, 0, 0)          // the value field is 4 bytes
	tiff = order.AppendUint32(tiff, 0) // no IFD1
	body := append([]byte("Exif\x00\x00"), tiff...)
	return Segment(0xE1, body)
}

// Segment is a JPEG marker segment: 0xFF, marker, the big-endian length
// (which counts itself), body.
func Segment(marker byte, body []byte) []byte {
	seg := []byte{0xFF, marker}
	seg = binary.BigEndian.AppendUint16(seg, uint16(len(body)+2))
	return append(seg, body...)
}

// Splice puts segments into a JPEG right after its start-of-image marker.
func Splice(jpg []byte, segments ...[]byte) []byte {
	out := append([]byte{}, jpg[:2]...)
	for _, s := range segments {
		out = append(out, s...)
	}
	return append(out, jpg[2:]...)
}

// Padding is n bytes of APP2 segments (each at most 64 KiB) of no meaning,
// pushing a JPEG's frame header n bytes further into the file; n counts the
// markers and lengths too and must be at least 4.
func Padding(n int) [][]byte {
	var segs [][]byte
	for n > 0 {
		size := min(n, 0xFFFF+2)
		if rest := n - size; rest > 0 && rest < 4 {
			size -= 4 - rest // leave room for one last segment
		}
		segs = append(segs, Segment(0xE2, bytes.Repeat([]byte{'p'}, size-4)))
		n -= size
	}
	return segs
}

// WebP is the header of a lossless WebP (a VP8L chunk) declaring w×h, with
// filler standing in for the compressed image: what webp.DecodeConfig reads
// is only this header.
func WebP(w, h int) []byte {
	bits := uint32(w-1) | uint32(h-1)<<14 // 14 bits each; no alpha, version 0
	vp8l := append([]byte{0x2f}, binary.LittleEndian.AppendUint32(nil, bits)...)
	vp8l = append(vp8l, make([]byte, 27)...) // even length: no RIFF padding
	chunk := append([]byte("VP8L"), binary.LittleEndian.AppendUint32(nil, uint32(len(vp8l)))...)
	chunk = append(chunk, vp8l...)
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(chunk)))...)
	out = append(out, "WEBP"...)
	return append(out, chunk...)
}

// BadPNGChecksum is a PNG whose header chunk (IHDR) fails its CRC: damaged in
// its first bytes.
func BadPNGChecksum(t testing.TB, w, h int) []byte {
	t.Helper()
	b := PNG(t, w, h)
	b[8+8+13] ^= 0xFF // the first byte of IHDR's CRC (signature, length and type, 13 bytes of data)
	return b
}
