package export_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
)

// bulkFile describes one generated file of a large fixture.
type bulkFile struct {
	name string
	typ  db.FileType
	mime string
	gen  func() []byte
	// resultOf, for an annotation_results file, is the index of the dataset
	// file whose approved job it is the result of; -1 otherwise.
	resultOf int
}

// seedBulk uploads files concurrently and registers them in a few statements
// (the one-row fixtures would take minutes for thousands): each becomes
// version 1 of its file, valid with its measured checksum, and active; every
// result gets an approved job on its dataset file. When dir is not empty each
// file is also written to dir/<folder>/<name>, where folder is the one the
// export puts it in, so that a baseline can zip the same tree.
func (f *fixture) seedBulk(files []bulkFile, dir string) (totalBytes int64) {
	f.t.Helper()
	return f.seedBulkFiles(files, dir, bulkOptions{})
}

// bulkOptions vary seedBulkFiles.
type bulkOptions struct {
	// skipDatasets registers the dataset files (with the checksum and size
	// of their content) but neither uploads them nor writes them to dir: for
	// exports that do not read them.
	skipDatasets bool
	// snowball uploads the files in batches, each one (compressed) tar that
	// MinIO unpacks into its objects (minio-go's PutObjectsSnowball): many
	// times faster than a PUT per file for hundreds of thousands of small
	// files. The objects are the same.
	snowball bool
}

// seedBulkFiles is seedBulk with options.
func (f *fixture) seedBulkFiles(files []bulkFile, dir string, opts bulkOptions) (totalBytes int64) {
	f.t.Helper()
	ctx := context.Background()
	keys := make([]string, len(files))
	sums := make([]string, len(files))
	sizes := make([]int64, len(files))
	var total atomic.Int64
	var mkdir sync.Mutex
	var batch snowballBatch
	err := parallel(len(files), 16, func(i int) error {
		bf := files[i]
		b := bf.gen()
		keys[i] = fmt.Sprintf("uploads/%d/bulk/%06d", f.pr.ID, i)
		sums[i], sizes[i] = sha256Hex(b), int64(len(b))
		if opts.skipDatasets && bf.typ == db.FileTypeDataset {
			return nil
		}
		total.Add(int64(len(b)))
		if dir != "" {
			folder := "files"
			if bf.typ == db.FileTypeAnnotationResults {
				folder = "annotations"
			}
			path := filepath.Join(dir, folder, bf.name)
			mkdir.Lock()
			err := os.MkdirAll(filepath.Dir(path), 0o755)
			mkdir.Unlock()
			if err != nil {
				return err
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				return err
			}
		}
		if opts.snowball {
			return batch.add(ctx, f.s3, minio.SnowballObject{Key: keys[i], Size: int64(len(b)), ModTime: time.Now(), Content: bytes.NewReader(b)})
		}
		_, err := f.s3.Store.Client.PutObject(ctx, f.s3.Store.Bucket, keys[i], bytes.NewReader(b), int64(len(b)),
			minio.PutObjectOptions{ContentType: bf.mime, DisableContentSha256: true})
		return err
	})
	if err == nil {
		err = batch.flush(ctx, f.s3)
	}
	if err != nil {
		f.t.Fatalf("upload bulk fixture: %v", err)
	}

	names := make([]string, len(files))
	types := make([]string, len(files))
	mimes := make([]string, len(files))
	for i, bf := range files {
		names[i], types[i], mimes[i] = bf.name, string(bf.typ), bf.mime
	}
	fileIDs := make([]int64, len(files))
	versionIDs := make([]int64, len(files))
	tx, err := f.pg.Pool.Begin(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// WITH ORDINALITY keeps the input order, so row i belongs to files[i].
	rows, err := tx.Query(ctx, `
		INSERT INTO files (org_id, project_id, name, file_type, status)
		SELECT $1, $2, u.name, u.typ::file_type, 'ready_for_annotation'
		FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS u(name, typ, ord)
		ORDER BY u.ord
		RETURNING id`, f.org.ID, f.pr.ID, names, types)
	if err == nil {
		i := 0
		for rows.Next() {
			err = rows.Scan(&fileIDs[i])
			i++
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		f.t.Fatalf("insert bulk files: %v", err)
	}
	rows, err = tx.Query(ctx, `
		INSERT INTO file_versions (org_id, project_id, file_id, version_number, storage_path, checksum, size_bytes,
		                           mime_type, validation_status, validated_at)
		SELECT $1, $2, u.file_id, 1, u.key, u.sum, u.size, u.mime, 'valid', now()
		FROM unnest($3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[]) WITH ORDINALITY AS u(file_id, key, sum, size, mime, ord)
		ORDER BY u.ord
		RETURNING id`, f.org.ID, f.pr.ID, fileIDs, keys, sums, sizes, mimes)
	if err == nil {
		i := 0
		for rows.Next() {
			err = rows.Scan(&versionIDs[i])
			i++
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		f.t.Fatalf("insert bulk versions: %v", err)
	}
	if _, err := tx.Exec(ctx, `
		UPDATE files f SET active_version_id = v.id
		FROM file_versions v WHERE v.file_id = f.id AND f.id = ANY($1::bigint[])`, fileIDs); err != nil {
		f.t.Fatalf("activate bulk versions: %v", err)
	}
	var jobFiles, jobVersions, jobResults []int64
	for i, bf := range files {
		if bf.resultOf >= 0 {
			jobFiles = append(jobFiles, fileIDs[bf.resultOf])
			jobVersions = append(jobVersions, versionIDs[bf.resultOf])
			jobResults = append(jobResults, versionIDs[i])
		}
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO annotation_jobs (org_id, project_id, file_id, file_version_id, status, review_status, result_version_id)
		SELECT $1, $2, u.file_id, u.version_id, 'reviewed', 'approved', u.result_id
		FROM unnest($3::bigint[], $4::bigint[], $5::bigint[]) AS u(file_id, version_id, result_id)`,
		f.org.ID, f.pr.ID, jobFiles, jobVersions, jobResults); err != nil {
		f.t.Fatalf("insert bulk jobs: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		f.t.Fatal(err)
	}
	return total.Load()
}

// snowballBatch collects objects for one PutObjectsSnowball call.
type snowballBatch struct {
	mu   sync.Mutex
	objs []minio.SnowballObject
}

// snowballSize is how many objects one tar carries.
const snowballSize = 10_000

func (s *snowballBatch) add(ctx context.Context, s3 *testenv.S3, o minio.SnowballObject) error {
	s.mu.Lock()
	s.objs = append(s.objs, o)
	var full []minio.SnowballObject
	if len(s.objs) >= snowballSize {
		full, s.objs = s.objs, nil
	}
	s.mu.Unlock()
	return putSnowball(ctx, s3, full)
}

func (s *snowballBatch) flush(ctx context.Context, s3 *testenv.S3) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := putSnowball(ctx, s3, s.objs)
	s.objs = nil
	return err
}

func putSnowball(ctx context.Context, s3 *testenv.S3, objs []minio.SnowballObject) error {
	if len(objs) == 0 {
		return nil
	}
	ch := make(chan minio.SnowballObject, len(objs))
	for _, o := range objs {
		ch <- o
	}
	close(ch)
	return s3.Store.Client.PutObjectsSnowball(ctx, s3.Store.Bucket, minio.SnowballOptions{InMemory: true, Compress: true}, ch)
}

// pairs builds n dataset files with random content (images, say) and, for
// each, an approved result of generated CSV text: the shape of the default
// export, half incompressible and half text. Contents are deterministic.
func pairs(n, size int) []bulkFile {
	out := make([]bulkFile, 0, 2*n)
	for i := range n {
		out = append(out, bulkFile{
			name: fmt.Sprintf("item-%05d.bin", i), typ: db.FileTypeDataset, mime: "application/octet-stream",
			gen: func() []byte { return testenv.RandomBytes(uint64(i), size) }, resultOf: -1,
		})
	}
	for i := range n {
		out = append(out, bulkFile{
			name: fmt.Sprintf("item-%05d.csv", i), typ: db.FileTypeAnnotationResults, mime: "text/csv",
			gen: func() []byte { return testenv.TextBytes(uint64(i), size) }, resultOf: i,
		})
	}
	return out
}

// parallel runs fn(0..n-1) on up to limit goroutines and returns the first error.
func parallel(n, limit int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  atomic.Int64
	)
	for range min(limit, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
