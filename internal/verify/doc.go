// Package verify is the pure core of the file:validate task: it decides whether
// the bytes of an uploaded file version are the bytes that were declared and
// stored, and whether they are content the project accepts.
//
// It does no I/O of its own. The caller (worker/validate) opens the object and
// hands over an io.Reader (and, for archives, an io.ReaderAt); everything
// here is plain functions over plain values, so it is tested without MinIO or
// Postgres and can be reused by the export, which re-hashes bytes it packs.
//
// The flow, in the order the worker runs it:
//
//  1. Precheck(refs, opts): what the object's metadata alone decides (size
//     against the declared size, the size limit, empty objects), so a
//     truncated 10 GiB upload is caught without reading it.
//  2. Measure(ctx, objectReader, opts): one streaming pass, constant memory,
//     computing SHA-256, the byte count, the sniffed content type and whichever
//     extra digests Needed(refs) says the references call for; for JPEG, PNG,
//     GIF and WebP content also the image's header (Measurement.Image: pixel
//     size and EXIF orientation), read from the same buffers.
//  3. Check(measurement, refs, opts): compares the measurement with every
//     reference (declared SHA-256 and size, the object's size, S3 additional
//     checksums, a plain single-part ETag) and applies the content rules
//     (declared type against sniffed type, blocked types, per-file-type
//     allow-lists, an image whose header is damaged or cut off).
//  4. InspectArchive(ctx, objectReaderAt, size, opts), when the measurement
//     is an archive (Measurement.IsArchive: ZIP or ZIP-based, tar, gzip) and
//     Check found nothing wrong: every entry's path, type (links, devices),
//     size, compression ratio and checksum, with bomb limits enforced on the
//     bytes actually decompressed; archives inside are opened in turn up to
//     Options.MaxArchiveDepth levels, the limits counted across the whole
//     tree. InspectZip is the same for a file known to be a ZIP.
//
// Check also refuses a polyglot: a file of another type (JPEG, PNG, PDF…)
// with a ZIP archive appended, found by the ZIP end-of-central-directory
// record in the last TailBytes that Measure keeps. Such a file is rejected
// rather than inspected as a ZIP: it is served as the declared type while
// other programs open it as an archive, and no real image or document needs
// to carry one.
//
// The result is a Report whose Verdict maps one to one onto
// file_versions.validation_status (valid, corrupt, rejected) and whose
// Message() is meant for file_versions.validation_error: each finding says what
// is wrong and what a person can do about it. A missing object is the
// caller's business (it never gets here). Errors returned by Measure,
// InspectArchive and InspectZip are I/O or context failures, i.e. worth a
// retry; everything the bytes themselves decide is a Finding, never an error.
package verify
