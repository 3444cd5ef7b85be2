package verify

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"strings"
	"sync"

	"github.com/bep/imagemeta"
	"github.com/gabriel-vasile/mimetype"
	"golang.org/x/image/webp"
)

// ImageHeadBytes is the most of the start of an image Measure keeps to read
// its header. PNG, GIF and WebP headers sit in the first few dozen bytes; a
// JPEG's frame header comes after its APPn segments (EXIF, XMP and ICC each
// at most 64 KiB, a few of them in a phone's photo), so a header past the
// first MiB is exceedingly rare and is left unread rather than buffered
// without bound.
const ImageHeadBytes = 1 << 20

// Image is what an image's header says about it: the size of its pixel grid
// and its EXIF orientation. Measure reads it for JPEG, PNG, GIF and WebP
// content from the first bytes of the stream (the pixels are not decoded).
type Image struct {
	// Format is the decoder's name: "jpeg", "png", "gif" or "webp".
	Format string
	// Width and Height are the pixel grid as stored in the file, before the
	// EXIF orientation is applied: what image.DecodeConfig reports. For
	// orientations 5–8 a viewer shows the image rotated by 90°, Height wide
	// and Width high; Displayed gives that size.
	Width, Height int
	// Orientation is the EXIF Orientation tag of the file's main image
	// (IFD0), 1–8; 1 when the file carries none. It is read from the bytes
	// the header was read from: a JPEG's EXIF always comes before its frame
	// header, but a PNG's eXIf chunk after large chunks, or a WebP's EXIF
	// chunk (which follows the image data), is only seen when it lies within
	// those bytes (the first 64 KiB or more); 1 otherwise.
	Orientation int
}

// Displayed returns the size a viewer that applies the EXIF orientation shows
// the image at: Width × Height, swapped for orientations 5–8 (transposed or
// rotated by 90°). Browsers apply the orientation by default (CSS
// image-orientation: from-image), and Label Studio takes a region's
// original_width and original_height from the browser's naturalWidth and
// naturalHeight, so this is the size Label Studio's results speak of.
func (im Image) Displayed() (width, height int) {
	if Rotated(im.Orientation) {
		return im.Height, im.Width
	}
	return im.Width, im.Height
}

// Rotated reports whether an EXIF orientation turns the image by 90° (5–8),
// so that its displayed width is its stored height.
func Rotated(orientation int) bool { return orientation >= 5 && orientation <= 8 }

// imageDecoders read the header of the formats Measure records facts for,
// keyed by the sniffed media type. The format's own DecodeConfig is called
// rather than image.DecodeConfig: the sniffer has already named the format,
// and image.DecodeConfig would depend on which decoders some package happened
// to register.
var imageDecoders = map[string]struct {
	format, name string
	config       func(io.Reader) (image.Config, error)
	exif         imagemeta.ImageFormat // 0: the format carries no EXIF
}{
	"image/jpeg": {"jpeg", "JPEG", jpeg.DecodeConfig, imagemeta.JPEG},
	"image/png":  {"png", "PNG", png.DecodeConfig, imagemeta.PNG}, // APNG sniffs below it
	"image/gif":  {"gif", "GIF", gif.DecodeConfig, 0},
	"image/webp": {"webp", "WebP", webp.DecodeConfig, imagemeta.WebP},
}

// imageProbe reads an image's header out of the chunks Measure hashes, so the
// object is read once. It tries the first chunk as it is (a PNG's header is in
// its first 33 bytes, and most chunks are 64 KiB or 4 MiB); only when that
// chunk ends inside the header does it copy chunks, up to ImageHeadBytes, and
// try again on each. For content that is no image it is never made.
type imageProbe struct {
	format string
	name   string // the format as people write it, for messages
	config func(io.Reader) (image.Config, error)
	exif   imagemeta.ImageFormat

	head    []byte  // chunks kept while the header is incomplete, in pooled
	pooled  *[]byte // the buffer head lives in, back to headPool once settled
	err     error   // why the last attempt failed
	full    bool    // head holds ImageHeadBytes and the header was still not read
	settled bool

	img     *Image
	problem *Finding
	notes   []string
}

// newImageProbe returns a probe for content sniffed as n, or nil when n is not
// a format facts are read for.
func newImageProbe(n *mimetype.MIME) *imageProbe {
	for ; n != nil; n = n.Parent() {
		if d, ok := imageDecoders[n.String()]; ok {
			return &imageProbe{format: d.format, name: d.name, config: d.config, exif: d.exif}
		}
	}
	return nil
}

// feed offers the next chunk of the stream. Measure reuses its buffer, so a
// chunk is only looked at here, or copied, never kept.
func (p *imageProbe) feed(chunk []byte) {
	switch {
	case p.settled:
		return
	case p.full:
		// More bytes follow the first ImageHeadBytes: the header is longer
		// than what is kept, not cut off by the end of the file.
		p.settle(false)
		return
	}
	var data []byte
	taken := min(len(chunk), ImageHeadBytes-len(p.head))
	if p.head == nil {
		data = chunk[:taken] // the first chunk, as it is
	} else {
		p.head = append(p.head, chunk[:taken]...)
		data = p.head
	}
	if p.try(data) {
		return
	}
	switch {
	case !short(p.err):
		// A header that says something impossible says it whatever follows.
		p.settle(false)
	case len(data) < ImageHeadBytes && p.head == nil:
		// The header goes on past the first chunk: keep it, and the chunks
		// after it, until the header is whole, in one pooled buffer that
		// never grows.
		p.pooled = headPool.Get().(*[]byte)
		p.head = (*p.pooled)[:len(data)]
		copy(p.head, data)
	case len(data) < ImageHeadBytes:
		// Kept in head already; the next chunk is added to it.
	case taken < len(chunk):
		p.settle(false) // the stream goes on past what is kept
	default:
		p.full = true // the next chunk, or the end, tells which
		p.release()
	}
}

// headPool holds ImageHeadBytes buffers for headers longer than a chunk: a
// cache, like bufferPools, so a worker validating such photos back to back
// neither allocates nor grows one per file.
var headPool = sync.Pool{New: func() any { b := make([]byte, 0, ImageHeadBytes); return &b }}

// release gives head's buffer back to the pool; head is not used again.
func (p *imageProbe) release() {
	p.head = nil
	if p.pooled != nil {
		headPool.Put(p.pooled)
		p.pooled = nil
	}
}

// finish is called at the end of the stream: a header still unread is cut off
// by the end of the file, or damaged.
func (p *imageProbe) finish() {
	if !p.settled {
		p.settle(true)
	}
}

// try reads the header from data; false when it could not (p.err says why).
func (p *imageProbe) try(data []byte) bool {
	cfg, err := p.config(bytes.NewReader(data))
	if err != nil {
		p.err = err
		return false
	}
	p.settled, p.err = true, nil
	if cfg.Width <= 0 || cfg.Height <= 0 {
		p.problem = &Finding{Verdict: Rejected, Code: CodeImageHeader, Message: fmt.Sprintf(
			"the %s header gives a size of %d×%d pixels, which no image has; the file is damaged, save or export the image again and upload it",
			p.name, cfg.Width, cfg.Height)}
	} else {
		p.img = &Image{Format: p.format, Width: cfg.Width, Height: cfg.Height, Orientation: p.orientation(data)}
	}
	p.release() // data may be head: done with it only now
	return true
}

// settle decides about a header that could not be read. atEnd: the whole file
// was offered.
func (p *imageProbe) settle(atEnd bool) {
	p.settled = true
	p.release()
	if p.err == nil {
		return // nothing was offered: an empty file, which Check rejects as such
	}
	name := p.name
	switch {
	case short(p.err) && !atEnd:
		p.notes = append(p.notes, fmt.Sprintf("the %s header does not end within the first %s; width, height and orientation were not recorded",
			name, formatLimit(ImageHeadBytes)))
	case short(p.err):
		p.problem = &Finding{Verdict: Rejected, Code: CodeImageHeader, Message: fmt.Sprintf(
			"the file is %s but ends inside its header (%v): the upload was cut off or the file is damaged; upload the complete image",
			name, p.err)}
	default:
		p.problem = &Finding{Verdict: Rejected, Code: CodeImageHeader, Message: fmt.Sprintf(
			"the file is %s but its header cannot be read (%v): the file is damaged; save or export the image again and upload it",
			name, p.err)}
	}
}

// orientation reads the EXIF Orientation of the main image (IFD0; a
// thumbnail's in IFD1 is not the picture's) from the header bytes. EXIF that
// cannot be read does not make an image unusable, as viewers show it anyway:
// the orientation is then 1, with a note.
func (p *imageProbe) orientation(data []byte) int {
	if p.exif == 0 {
		return 1
	}
	o, bad := 1, -1
	_, err := imagemeta.Decode(imagemeta.Options{
		R: bytes.NewReader(data), ImageFormat: p.exif, Sources: imagemeta.EXIF,
		ShouldHandleTag: func(ti imagemeta.TagInfo) bool {
			return ti.Tag == "Orientation" && strings.HasPrefix(ti.Namespace, "IFD0")
		},
		HandleTag: func(ti imagemeta.TagInfo) error {
			if v, ok := ti.Value.(uint16); ok && v >= 1 && v <= 8 {
				o = int(v)
			} else if ok {
				bad = int(v)
			}
			return imagemeta.ErrStopWalking
		},
	})
	switch {
	case err != nil:
		p.notes = append(p.notes, fmt.Sprintf("the EXIF metadata could not be read (%v); orientation taken as 1", err))
		return 1
	case bad >= 0:
		p.notes = append(p.notes, fmt.Sprintf("EXIF orientation %d is not one of 1-8; taken as 1", bad))
	}
	return o
}

// short reports whether a header read failed for want of bytes: the decoders
// of the standard library (and x/image/webp at a chunk boundary) report
// running out as io.ErrUnexpectedEOF or io.EOF.
func short(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
