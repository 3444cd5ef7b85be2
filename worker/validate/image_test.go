package validate_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/minio/minio-go/v7"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/verify"
	"github.com/labelq/labelq/internal/verify/imagetest"
)

// Image facts (issue 19, item 3): validation records an image's stored size and
// EXIF orientation from the header as the one GET streams past, rejects an image
// whose header is damaged or cut off with the reason, and records nothing for
// other content.
func TestValidateImageFacts(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)

	png := imagetest.PNG(t, 48, 20)
	// Past the 64 KiB buffer a file under 4 MiB is read with: the header is
	// pieced together from several reads of the one stream.
	deep := imagetest.Splice(imagetest.JPEG(t, 40, 30, 6), imagetest.Padding(300<<10)...)

	type image struct{ w, h, o, dw, dh int }
	tests := []struct {
		name   string
		data   []byte
		mime   string
		status db.ValidationStatus
		image  *image   // nil: no facts
		errHas []string // validation_error
		codes  []string // the event's codes
	}{
		{name: "JPEG with EXIF orientation 6", data: imagetest.JPEG(t, 64, 24, 6), mime: "image/jpeg",
			status: db.ValidationStatusValid, image: &image{w: 64, h: 24, o: 6, dw: 24, dh: 64}},
		{name: "PNG", data: png, mime: "image/png", status: db.ValidationStatusValid, image: &image{w: 48, h: 20, o: 1, dw: 48, dh: 20}},
		{name: "JPEG whose header is 300 KiB in", data: deep, mime: "image/jpeg",
			status: db.ValidationStatusValid, image: &image{w: 40, h: 30, o: 6, dw: 30, dh: 40}},
		{name: "PNG cut off inside its header", data: png[:20], mime: "image/png", status: db.ValidationStatusRejected,
			errHas: []string{"the file is PNG but ends inside its header", "upload the complete image"},
			codes:  []string{string(verify.CodeImageHeader)}},
		{name: "PNG with a damaged header", data: imagetest.BadPNGChecksum(t, 48, 20), mime: "image/png",
			status: db.ValidationStatusRejected,
			errHas: []string{"the file is PNG but its header cannot be read", "invalid checksum", "save or export the image again"},
			codes:  []string{string(verify.CodeImageHeader)}},
		{name: "not an image", data: csvBytes(20), mime: "text/csv", status: db.ValidationStatusValid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCase(t, hs, validateCase{})
			v := c.upload(t, c.file, tc.data, declared(tc.data, tc.mime), minio.PutObjectOptions{})
			err := hs.process(t, v.ID)
			if tc.status == db.ValidationStatusValid {
				require.NoError(t, err)
			} else {
				requireResult(t, archived, err)
			}

			row := hs.version(t, v.ID)
			require.Equal(t, tc.status, row.ValidationStatus)
			var meta struct {
				Codes []string `json:"codes"`
				Image *struct {
					Format        string `json:"format"`
					Width         int    `json:"width"`
					Height        int    `json:"height"`
					Orientation   int    `json:"orientation"`
					DisplayWidth  int    `json:"display_width"`
					DisplayHeight int    `json:"display_height"`
				} `json:"image"`
			}
			events := hs.events(t, v)
			require.Len(t, events, 1)
			require.NoError(t, json.Unmarshal(events[0].Metadata, &meta))

			if tc.image == nil {
				require.Nil(t, row.ImageWidth)
				require.Nil(t, row.ImageHeight)
				require.Nil(t, row.ImageOrientation)
				require.Nil(t, meta.Image)
			} else {
				require.Equal(t, ptr(int32(tc.image.w)), row.ImageWidth, "image_width is the stored width")
				require.Equal(t, ptr(int32(tc.image.h)), row.ImageHeight)
				require.Equal(t, ptr(int32(tc.image.o)), row.ImageOrientation)
				require.NotNil(t, meta.Image)
				require.Equal(t, [3]int{tc.image.w, tc.image.h, tc.image.o}, [3]int{meta.Image.Width, meta.Image.Height, meta.Image.Orientation})
				require.Equal(t, [2]int{tc.image.dw, tc.image.dh}, [2]int{meta.Image.DisplayWidth, meta.Image.DisplayHeight}, "the displayed size")
			}
			if len(tc.errHas) == 0 {
				require.Nil(t, row.ValidationError)
			} else {
				require.NotNil(t, row.ValidationError)
				for _, s := range tc.errHas {
					require.Contains(t, *row.ValidationError, s)
				}
			}
			require.Equal(t, tc.codes, meta.Codes)
		})
	}
}

// The header is read from the bytes the checksum pass streams, not by a
// second read of the object: the bytes hashed are the object's size, once.
func TestValidateImageReadOnce(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)
	c := newCase(t, hs, validateCase{})
	data := imagetest.Splice(imagetest.JPEG(t, 40, 30, 6), imagetest.Padding(300<<10)...)
	v := c.upload(t, c.file, data, declared(data, "image/jpeg"), minio.PutObjectOptions{})
	require.NoError(t, hs.process(t, v.ID))
	var m dto.Metric
	require.NoError(t, hs.metrics.BytesHashed.Write(&m))
	require.EqualValues(t, len(data), m.GetCounter().GetValue())
	require.Equal(t, ptr(int32(6)), hs.version(t, v.ID).ImageOrientation)
}

// Sending a version back to validation forgets what its header said, like
// everything else that was measured.
func TestRevalidationForgetsImageFacts(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)
	c := newCase(t, hs, validateCase{})
	data := imagetest.PNG(t, 12, 34)
	v := c.upload(t, c.file, data, declared(data, "image/png"), minio.PutObjectOptions{})
	require.NoError(t, hs.process(t, v.ID))
	require.NotNil(t, hs.version(t, v.ID).ImageWidth)
	reset, err := hs.env.PG.Q.FileVersionResetForRevalidation(context.Background(), db.FileVersionResetForRevalidationParams{ID: v.ID, OrgID: v.OrgID})
	require.NoError(t, err)
	require.Nil(t, reset.ImageWidth)
	require.Nil(t, reset.ImageHeight)
	require.Nil(t, reset.ImageOrientation)
}
