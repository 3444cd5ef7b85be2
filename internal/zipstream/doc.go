// Package zipstream writes ZIP archives as a stream, for the project export.
//
// It is the pure core of the export worker: it knows nothing about S3, the
// database or asynq. The caller hands it an ordered list of [Entry] values,
// each with a declared size, an optional recorded SHA-256 and an opener, and
// an [io.Writer] (in production the pipe into a multipart upload). The
// package fetches, hashes and compresses entries in parallel but writes them
// in input order, so the same inputs and [Options.Modified] always give the
// same bytes.
//
// Memory stays flat however large the export is: entries of at most
// [Options.SmallEntryMax] bytes are compressed by workers into pooled chunks,
// and the chunks held at any time are bounded by [Options.MaxBuffered];
// larger entries are streamed straight through when their turn comes. What
// grows with the number of entries is small: each entry's central directory
// record, kept deflated (about 8 bytes an entry for an export's names), and a
// 128-bit hash of its name for the duplicate check. The container (local
// headers, data descriptors, ZIP64 for entries or archives over 4 GiB and
// more than 65,535 entries) is written as archive/zip's CreateRaw and Close
// write it, byte for byte (rawzip.go), without archive/zip's header per
// entry.
//
// Every byte is hashed on the way. An entry whose bytes do not match its
// recorded SHA-256, or whose length differs from its declared size, fails the
// pack with a [*ChecksumMismatchError] or [*SizeMismatchError]; the archive
// written so far is then unusable and the caller must abort the upload.
//
// # Manifest first
//
// [Manifest] and [IndexCSV] build the manifest.json and index.csv bytes;
// [BytesEntry] turns them into entries. The manifest can be written first,
// from the checksums recorded in the database: a pack never succeeds with
// bytes that differ from a recorded checksum, so a manifest written up front
// cannot describe bytes the archive does not hold, and a reader streaming the
// archive meets the manifest before the files. This needs every file entry to
// carry its recorded SHA-256, which labelq's validation step guarantees.
// Where some entry has no recorded checksum, write the manifest last instead:
// call [Writer.Pack] for the files, build the manifest from the returned
// [EntryResult] values, call [Writer.Pack] again with the manifest entry, then
// [Writer.Close].
//
// Names come from [SanitizePath] or, to also remove duplicates, a [Namer];
// [Writer.Pack] refuses any path that is unsafe or collides with another.
package zipstream
