package export

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/zipstream"
)

// Selection is what an export packs: export_logs.options, whose contract the API
// and this worker share (tasks.ExportOptions).
type Selection = tasks.ExportOptions

// parseSelection reads export_logs.options and fills the defaults.
func parseSelection(raw json.RawMessage) (Selection, error) { return tasks.ParseExportOptions(raw) }

// Archive folders, one per kind of content. The query returns the kind names;
// the order here (alphabetical, like the paths) is the order in the archive.
var prefixes = map[string]string{
	"annotations": "annotations/",
	"consensus":   "consensus/", // include_consensus: each job's consensus result
	"files":       "files/",
	"llm":         "llm/",
}

// item is one file version in the archive.
type item struct {
	kind          string
	path          string
	fileID        int64
	fileName      string
	versionID     int64
	versionNumber int32
	storageID     *int64 // the version's storage; nil: labelq's bucket
	key           string
	sha256        string
	size          int64
	mime          string
}

// skipped is a version the selection named but the export cannot vouch for:
// not (or no longer) valid, or without a measured checksum and size.
type skipped struct {
	versionID int64
	status    db.ValidationStatus
}

// plan is everything a run packs, decided before the first byte is read.
type plan struct {
	items   []item
	skipped []skipped
	bytes   int64 // sum of the items' sizes

	// header is manifest.json without its entries, which come from items.
	header zipstream.Manifest
	// manifest and index describe the generated files. Their bytes grow with
	// the number of files (about 400 bytes a file together), so they are
	// built once to learn their size and checksum and again when the archive
	// reaches them, rather than held for the whole pack. Building is
	// deterministic, and zipstream checks the rebuilt bytes against the
	// recorded checksum like any other entry's.
	manifest, index generated
}

// generated is a file labelq writes into the archive.
type generated struct {
	path, mime string
	size       int64
	sha256     string
	build      func() ([]byte, error)
}

func newGenerated(path, mime string, build func() ([]byte, error)) (generated, error) {
	b, err := build()
	if err != nil {
		return generated{}, err
	}
	return generated{path: path, mime: mime, size: int64(len(b)), sha256: sha256Hex(b), build: build}, nil
}

func (g generated) entry() zipstream.Entry {
	return zipstream.Entry{
		Path: g.path, Size: g.size, SHA256: g.sha256, MIMEType: g.mime,
		Open: func(context.Context) (io.ReadCloser, error) {
			b, err := g.build()
			if err != nil {
				return nil, err
			}
			return io.NopCloser(bytes.NewReader(b)), nil
		},
	}
}

// buildPlan orders the selected versions, names them and builds manifest.json
// and index.csv. Only valid versions with a recorded checksum and size are
// packed: those are the bytes labelq vouches for, and the recorded checksum is
// what every packed byte is compared with. The order is by folder, then file
// name (bytewise, not by the database's collation), then version id, so that
// the same rows always give the same paths, including the " (2)" suffixes the
// Namer hands out to duplicates.
func buildPlan(e db.ExportLog, pr db.Project, sel Selection, rows []db.FileVersionListForExportRow, labelqVersion string) (*plan, error) {
	p := &plan{}
	seen := make(map[int64]bool, len(rows))
	for _, r := range rows {
		if _, ok := prefixes[r.Kind]; !ok {
			return nil, fmt.Errorf("version %d: unknown export kind %q", r.ID, r.Kind)
		}
		if r.ValidationStatus != db.ValidationStatusValid || r.Checksum == nil || r.SizeBytes == nil {
			p.skipped = append(p.skipped, skipped{versionID: r.ID, status: r.ValidationStatus})
			continue
		}
		p.items = append(p.items, item{
			kind: r.Kind, fileID: r.FileID, fileName: r.FileName, versionID: r.ID, versionNumber: r.VersionNumber,
			storageID: r.StorageID, key: r.StoragePath, sha256: strings.ToLower(*r.Checksum), size: *r.SizeBytes, mime: deref(r.MimeType),
		})
	}
	slices.SortFunc(p.items, func(a, b item) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), strings.Compare(a.fileName, b.fileName), cmp.Compare(a.versionID, b.versionID))
	})
	// A version lands in the archive once, under its first kind: exported_files
	// is keyed by (export, version). The kinds come from different file types,
	// so this only matters for rows that break that rule.
	kept := p.items[:0]
	for _, it := range p.items {
		if !seen[it.versionID] {
			seen[it.versionID] = true
			kept = append(kept, it)
		}
	}
	p.items = kept

	namer := zipstream.NewNamer()
	namer.Name("", zipstream.ManifestPath) // reserve the fixed names first
	namer.Name("", zipstream.IndexPath)
	opts, err := json.Marshal(sel)
	if err != nil {
		return nil, fmt.Errorf("encode options: %w", err)
	}
	p.header = zipstream.Manifest{
		ExportID: e.ID, ProjectID: pr.ID, ProjectName: pr.Name, Options: opts,
		CreatedAt: e.RequestedAt, LabelqVersion: labelqVersion,
	}
	for i := range p.items {
		it := &p.items[i]
		it.path = namer.Name(prefixes[it.kind], it.fileName)
		p.bytes += it.size
	}
	if p.manifest, err = newGenerated(zipstream.ManifestPath, zipstream.ManifestMIME, p.manifestBytes); err != nil {
		return nil, err
	}
	if p.index, err = newGenerated(zipstream.IndexPath, zipstream.IndexMIME, p.indexBytes); err != nil {
		return nil, err
	}
	return p, nil
}

// manifestBytes is manifest.json.
func (p *plan) manifestBytes() ([]byte, error) {
	m := p.header
	m.Entries = make([]zipstream.ManifestEntry, len(p.items))
	for i, it := range p.items {
		m.Entries[i] = zipstream.ManifestEntry{
			Path: it.path, FileID: it.fileID, VersionID: it.versionID, VersionNumber: it.versionNumber,
			SHA256: it.sha256, Size: it.size, MIMEType: it.mime,
		}
	}
	return m.Marshal()
}

// indexBytes is index.csv.
func (p *plan) indexBytes() ([]byte, error) {
	rows := make([]zipstream.IndexRow, len(p.items))
	for i, it := range p.items {
		rows[i] = zipstream.IndexRow{
			Path: it.path, FileID: it.fileID, FileName: it.fileName, VersionID: it.versionID,
			VersionNumber: it.versionNumber, SHA256: it.sha256, Size: it.size, MIMEType: it.mime,
		}
	}
	return zipstream.IndexCSV(rows)
}

// entries is the plan as zipstream entries: manifest.json first, the files,
// index.csv last. The manifest can go first because it is built from the
// recorded checksums and a pack never succeeds with bytes that differ from
// them (see zipstream's doc), so a reader streaming the archive meets it before
// the files it describes.
func (p *plan) entries(open func(it item) zipstream.Opener) []zipstream.Entry {
	out := make([]zipstream.Entry, 0, len(p.items)+2)
	out = append(out, p.manifest.entry())
	for _, it := range p.items {
		out = append(out, zipstream.Entry{
			Path: it.path, Size: it.size, SHA256: it.sha256, MIMEType: it.mime, VersionID: it.versionID,
			Open: open(it),
		})
	}
	return append(out, p.index.entry())
}

// filesDone maps zipstream's progress, which counts manifest.json (the first
// entry) and index.csv (the last) too, onto the row's files and bytes, which
// count file versions only.
func (p *plan) filesDone(pr zipstream.Progress) (files int32, bytes int64) {
	f := min(max(pr.FilesDone-1, 0), len(p.items))
	b := min(max(pr.BytesDone-p.manifest.size, 0), p.bytes)
	return int32(f), b
}

// openItem returns an opener reading the item's object from the storage that
// holds it (the resolver caches one client per storage, so this is a map
// lookup per entry). It uses minio's Core GetObject, which hands back the HTTP
// response body as it is: the high-level Object adds a goroutine hand-off per
// Read and a lazy first request, neither of which a front-to-back read needs.
// The body is bound to ctx, which zipstream cancels when the pack stops. A
// storage that cannot be used, or that refuses labelq, comes back as an
// *storage.UnusableError or *refusedError, which permanentReason turns into
// the export's reason.
func (h *Handler) openItem(it item) zipstream.Opener {
	return func(ctx context.Context) (io.ReadCloser, error) {
		src, err := h.storages.Resolve(ctx, it.storageID)
		if err != nil {
			return nil, err
		}
		body, _, _, err := minio.Core{Client: src.Client}.GetObject(ctx, src.Bucket, it.key, minio.GetObjectOptions{})
		if err != nil {
			if reason := src.Refusal("read", it.key, err); reason != "" {
				return nil, &refusedError{reason: reason, err: err}
			}
			return nil, err
		}
		return body, nil
	}
}

// refusedError is a tenant's storage refusing labelq (access denied, no such
// bucket), with the reason for a person.
type refusedError struct {
	reason string
	err    error
}

func (e *refusedError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// objectKey is where one run (attempt) of an export uploads its archive in
// dst. Each run has a key of its own, so a run never overwrites or deletes
// what another run of the export uploaded, and none of them needs the row lock
// while it talks to the bucket: the row records the key of the run that
// completed, and the others' objects are removed by their runs, by later runs
// of the export (exportPrefix) or, failing both (in labelq's bucket), by
// retention's orphan sweep.
func objectKey(dst *storage.Source, orgID, projectID, exportID int64, attempt int32) string {
	return fmt.Sprintf("%sattempt-%d.zip", exportPrefix(dst, orgID, projectID, exportID), attempt)
}

// exportPrefix holds the objects of every run of an export. In labelq's
// bucket it is orgs/<org>/projects/<project>/exports/<export>/; in an export
// storage it is <prefix>exports/<export>/ (a "/" is put between a prefix and
// "exports" when the prefix does not end with one): the storage belongs to
// one project of one organization already, and the export id is unique, so
// the shorter key is what the bucket's owner reads.
func exportPrefix(dst *storage.Source, orgID, projectID, exportID int64) string {
	if dst != nil && dst.StorageID != 0 {
		p := dst.Prefix
		if p != "" && !strings.HasSuffix(p, "/") {
			p += "/"
		}
		return fmt.Sprintf("%sexports/%d/", p, exportID)
	}
	return fmt.Sprintf("orgs/%d/projects/%d/exports/%d/", orgID, projectID, exportID)
}

// legacyObjectKey is where exports stored their archive before runs had keys
// of their own; completed rows may still point there.
func legacyObjectKey(orgID, projectID, exportID int64) string {
	return fmt.Sprintf("orgs/%d/projects/%d/exports/%d.zip", orgID, projectID, exportID)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
