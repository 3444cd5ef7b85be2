package verify

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/verify/imagetest"
)

// measureImage measures data the way the worker does (one pass) with the given
// read size (0: the default) and checks it as a dataset file.
func measureImage(t *testing.T, data []byte, bufferSize int) (Measurement, Report) {
	t.Helper()
	opts := Options{BufferSize: bufferSize}
	// HalfReader: Measure's io.ReadFull fills each buffer from many short
	// reads, as from a socket.
	m, err := Measure(context.Background(), iotest.HalfReader(bytes.NewReader(data)), opts)
	require.NoError(t, err)
	size := int64(len(data))
	return m, Check(m, References{FileType: FileTypeDataset, ObjectSize: &size, DeclaredSHA256: sha256Hex(data)}, opts)
}

func TestMeasureImageFacts(t *testing.T) {
	t.Parallel()
	// A JPEG whose frame header lies 300 KiB in: past a 64 KiB first buffer.
	deepJPEG := imagetest.Splice(imagetest.JPEG(t, 40, 30, 0),
		append([][]byte{imagetest.EXIF(binary.LittleEndian, 8)}, imagetest.Padding(300<<10)...)...)
	cases := []struct {
		name string
		data []byte
		want Image
	}{
		{"PNG", imagetest.PNG(t, 48, 20), Image{Format: "png", Width: 48, Height: 20, Orientation: 1}},
		{"JPEG without EXIF", imagetest.JPEG(t, 64, 24, 0), Image{Format: "jpeg", Width: 64, Height: 24, Orientation: 1}},
		{"JPEG with EXIF orientation 6", imagetest.JPEG(t, 64, 24, 6), Image{Format: "jpeg", Width: 64, Height: 24, Orientation: 6}},
		{"JPEG with little-endian EXIF orientation 3", imagetest.Splice(imagetest.JPEG(t, 10, 12, 0), imagetest.EXIF(binary.LittleEndian, 3)),
			Image{Format: "jpeg", Width: 10, Height: 12, Orientation: 3}},
		{"JPEG whose header is 300 KiB in", deepJPEG, Image{Format: "jpeg", Width: 40, Height: 30, Orientation: 8}},
		{"GIF", imagetest.GIF(t, 9, 7), Image{Format: "gif", Width: 9, Height: 7, Orientation: 1}},
		{"WebP", imagetest.WebP(300, 200), Image{Format: "webp", Width: 300, Height: 200, Orientation: 1}},
	}
	for _, c := range cases {
		for _, buf := range []int{0, SmallBufferSize, 4096} {
			m, rep := measureImage(t, c.data, buf)
			require.Equal(t, Valid, rep.Verdict, "%s, buffer %d: %s", c.name, buf, rep.Message())
			require.NotNil(t, m.Image, "%s, buffer %d", c.name, buf)
			require.Equal(t, c.want, *m.Image, "%s, buffer %d", c.name, buf)
			require.Empty(t, rep.Notes, "%s, buffer %d", c.name, buf)
		}
	}
}

func TestImageDisplayed(t *testing.T) {
	t.Parallel()
	for o := 1; o <= 8; o++ {
		w, h := Image{Width: 64, Height: 24, Orientation: o}.Displayed()
		if o >= 5 {
			require.Equal(t, [2]int{24, 64}, [2]int{w, h}, "orientation %d turns the image by 90°", o)
		} else {
			require.Equal(t, [2]int{64, 24}, [2]int{w, h}, "orientation %d keeps it upright or flips it", o)
		}
	}
}

func TestMeasureImageDamaged(t *testing.T) {
	t.Parallel()
	png := imagetest.PNG(t, 48, 20)
	jpg := imagetest.JPEG(t, 64, 24, 6)
	cases := []struct {
		name   string
		data   []byte
		errHas []string
	}{
		{"PNG cut off inside its header", png[:20], []string{"the file is PNG but ends inside its header", "upload the complete image"}},
		{"PNG with a damaged header", imagetest.BadPNGChecksum(t, 48, 20), []string{"the file is PNG but its header cannot be read", "invalid checksum", "save or export the image again"}},
		{"JPEG cut off before its frame header", jpg[:40], []string{"the file is JPEG but ends inside its header"}},
		{"GIF with a zero-width screen", func() []byte {
			g := imagetest.GIF(t, 9, 7)
			g[6], g[7] = 0, 0
			return g
		}(), []string{"GIF header gives a size of 0×7 pixels"}},
	}
	for _, c := range cases {
		for _, buf := range []int{0, 4096} {
			m, rep := measureImage(t, c.data, buf)
			require.Equal(t, Rejected, rep.Verdict, "%s, buffer %d", c.name, buf)
			require.Equal(t, []Code{CodeImageHeader}, codes(rep), "%s, buffer %d", c.name, buf)
			for _, s := range c.errHas {
				require.Contains(t, rep.Message(), s, "%s, buffer %d", c.name, buf)
			}
			require.Nil(t, m.Image)
		}
	}
}

func TestMeasureImageHeaderPastTheLimit(t *testing.T) {
	t.Parallel()
	// The frame header more than ImageHeadBytes in: not read, but no reason to
	// refuse an image every viewer shows.
	data := imagetest.Splice(imagetest.JPEG(t, 16, 16, 0), imagetest.Padding(ImageHeadBytes+1000)...)
	for _, buf := range []int{0, SmallBufferSize} {
		m, rep := measureImage(t, data, buf)
		require.Equal(t, Valid, rep.Verdict, rep.Message())
		require.Nil(t, m.Image)
		require.Len(t, rep.Notes, 1)
		require.Contains(t, rep.Notes[0], "the JPEG header does not end within the first 1 MiB")
	}
	// Exactly ImageHeadBytes long and still no frame header: cut off, not long.
	short := imagetest.Splice(imagetest.JPEG(t, 16, 16, 0), imagetest.Padding(ImageHeadBytes)...)[:ImageHeadBytes]
	for _, buf := range []int{0, SmallBufferSize} {
		_, rep := measureImage(t, short, buf)
		require.Equal(t, []Code{CodeImageHeader}, codes(rep), "buffer %d", buf)
		require.Contains(t, rep.Message(), "ends inside its header")
	}
}

func TestMeasureImageBadEXIF(t *testing.T) {
	t.Parallel()
	// An orientation outside 1-8 is taken as 1 with a note: EXIF does not make
	// an image unusable.
	data := imagetest.JPEG(t, 20, 10, 9)
	m, rep := measureImage(t, data, 0)
	require.Equal(t, Valid, rep.Verdict)
	require.Equal(t, Image{Format: "jpeg", Width: 20, Height: 10, Orientation: 1}, *m.Image)
	require.Len(t, rep.Notes, 1)
	require.Contains(t, rep.Notes[0], "EXIF orientation 9 is not one of 1-8")
}

func TestMeasureNotAnImage(t *testing.T) {
	t.Parallel()
	m, rep := measureImage(t, []byte("id,label\n1,cat\n2,dog\n"), 0)
	require.Equal(t, Valid, rep.Verdict)
	require.Nil(t, m.Image)
	require.Empty(t, rep.Notes)
	// A declared image that is something else is a type mismatch, not a
	// damaged header.
	csv := []byte("id,label\n1,cat\n")
	mm, err := Measure(context.Background(), bytes.NewReader(csv), Options{})
	require.NoError(t, err)
	r := Check(mm, References{FileType: FileTypeDataset, DeclaredMIME: "image/png"}, Options{})
	require.Equal(t, []Code{CodeTypeMismatch}, codes(r))
}
