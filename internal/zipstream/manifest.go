package zipstream

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Names and types of the generated entries, fixed so that consumers of the
// archive can find them.
const (
	ManifestPath = "manifest.json"
	ManifestMIME = "application/json"
	IndexPath    = "index.csv"
	IndexMIME    = "text/csv; charset=utf-8"
)

// Manifest is the content of manifest.json.
type Manifest struct {
	ExportID    int64           `json:"export_id"`
	ProjectID   int64           `json:"project_id"`
	ProjectName string          `json:"project_name"`
	Options     json.RawMessage `json:"options,omitempty"`
	// Format is the export format of an archive laid out by a converter
	// (coco, yolo, ...); empty for labelq's own layout.
	Format        string          `json:"format,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	LabelqVersion string          `json:"labelq_version"`
	Entries       []ManifestEntry `json:"entries"`
}

// ManifestEntry describes one packed file version.
type ManifestEntry struct {
	Path          string `json:"path"`
	FileID        int64  `json:"file_id"`
	VersionID     int64  `json:"version_id"`
	VersionNumber int32  `json:"version_number"`
	SHA256        string `json:"sha256"`
	Size          int64  `json:"size"`
	MIMEType      string `json:"mime_type"`
}

// Marshal returns manifest.json: indented, entries in the order given,
// created_at in UTC, so equal manifests give equal bytes. Options must hold
// valid JSON (or nothing); it is re-indented with the rest, so the caller's
// formatting does not leak into the archive.
func (m *Manifest) Marshal() ([]byte, error) {
	c := *m
	c.CreatedAt = m.CreatedAt.UTC()
	if c.Entries == nil {
		c.Entries = []ManifestEntry{} // "entries": [] rather than null
	}
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("zipstream: marshal manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// ManifestWriter writes manifest.json one entry at a time, for an archive
// whose entries are learnt as they are written (the manifest then goes last,
// see the package doc). Its bytes are those [Manifest.Marshal] gives for the
// same header and entries, and it holds no entry once written, so a manifest
// of any length costs the memory of one entry.
type ManifestWriter struct {
	w   io.Writer
	n   int
	err error
	buf []byte
}

// NewManifestWriter writes the header's fields (its Entries are ignored) and
// the opening of the entries to w.
func NewManifestWriter(w io.Writer, header Manifest) (*ManifestWriter, error) {
	header.Entries = []ManifestEntry{}
	head, err := header.Marshal()
	if err != nil {
		return nil, err
	}
	// Marshal ends with `"entries": []` and the closing brace: keep the
	// opening bracket, the rest comes with the entries and Close.
	const tail = "[]\n}\n"
	if !bytes.HasSuffix(head, []byte(tail)) {
		return nil, fmt.Errorf("zipstream: unexpected manifest layout %q", head[max(0, len(head)-16):])
	}
	m := &ManifestWriter{w: w}
	m.write(head[:len(head)-len(tail)+1])
	return m, m.err
}

func (m *ManifestWriter) write(b []byte) {
	if m.err == nil {
		if _, err := m.w.Write(b); err != nil {
			m.err = fmt.Errorf("zipstream: write manifest: %w", err)
		}
	}
}

// Add writes one entry.
func (m *ManifestWriter) Add(e ManifestEntry) error {
	if m.err != nil {
		return m.err
	}
	b, err := json.MarshalIndent(&e, "    ", "  ")
	if err != nil {
		return fmt.Errorf("zipstream: marshal manifest entry %s: %w", e.Path, err)
	}
	m.buf = m.buf[:0]
	if m.n > 0 {
		m.buf = append(m.buf, ',')
	}
	m.buf = append(m.buf, "\n    "...)
	m.buf = append(m.buf, b...)
	m.n++
	m.write(m.buf)
	return m.err
}

// Entries is the number of entries written.
func (m *ManifestWriter) Entries() int { return m.n }

// Close writes the end of the manifest. It does not close the destination.
func (m *ManifestWriter) Close() error {
	if m.n > 0 {
		m.write([]byte("\n  ]\n}\n"))
	} else {
		m.write([]byte("]\n}\n"))
	}
	return m.err
}

// IndexRow is one line of index.csv.
type IndexRow struct {
	Path          string
	FileID        int64
	FileName      string // the name as uploaded, before sanitising
	VersionID     int64
	VersionNumber int32
	SHA256        string
	Size          int64
	MIMEType      string
}

// indexHeader is the first line of index.csv; columns never move, so
// spreadsheets built on the file keep working across exports.
var indexHeader = []string{"path", "file_id", "file_name", "version_id", "version_number", "sha256", "size", "mime_type"}

// IndexCSV returns index.csv: a header and one row per file, RFC 4180 with
// CRLF line ends. It starts with a UTF-8 byte order mark because the file
// is for spreadsheet users and Excel reads BOM-less CSV as the local code
// page, mangling non-ASCII file names; manifest.json is the file for
// programs. Cells are neutralised against formula injection (see
// [CSVSafe]).
func IndexCSV(rows []IndexRow) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("\ufeff")
	cw := csv.NewWriter(&buf)
	cw.UseCRLF = true
	if err := cw.Write(indexHeader); err != nil {
		return nil, fmt.Errorf("zipstream: write index: %w", err)
	}
	rec := make([]string, len(indexHeader))
	for _, r := range rows {
		rec[0] = CSVSafe(r.Path)
		rec[1] = strconv.FormatInt(r.FileID, 10)
		rec[2] = CSVSafe(r.FileName)
		rec[3] = strconv.FormatInt(r.VersionID, 10)
		rec[4] = strconv.FormatInt(int64(r.VersionNumber), 10)
		rec[5] = CSVSafe(r.SHA256)
		rec[6] = strconv.FormatInt(r.Size, 10)
		rec[7] = CSVSafe(r.MIMEType)
		if err := cw.Write(rec); err != nil {
			return nil, fmt.Errorf("zipstream: write index: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return nil, fmt.Errorf("zipstream: write index: %w", err)
	}
	return buf.Bytes(), nil
}

// CSVSafe prefixes a cell with a single quote when a spreadsheet would read
// it as a formula: it starts with = + - @, or with a tab or carriage return
// (OWASP's list). Numbers are written by IndexCSV directly, so a legitimate
// "-1" never passes through here.
func CSVSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
