package validate_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/minio/minio-go/v7"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/validate"
)

// Short missing-object retries, so the missing cases run in milliseconds.
var testOptions = validate.Options{MissingAttempts: 3, MissingDelay: 10 * time.Millisecond, MissingMaxDelay: 40 * time.Millisecond}

// result is the kind of error a task run ends with.
type result int

const (
	succeeded  result = iota // nil: done, not retried
	archived                 // wraps asynq.SkipRetry: archived, not retried
	retryLater               // a queue.RetryAfterError: retried after the delay it names
)

func requireResult(t *testing.T, want result, err error) {
	t.Helper()
	switch want {
	case succeeded:
		require.NoError(t, err)
	case archived:
		require.Error(t, err)
		require.ErrorIs(t, err, asynq.SkipRetry, "the task must be archived, not retried")
	case retryLater:
		var ra *queue.RetryAfterError
		require.ErrorAs(t, err, &ra)
		require.Positive(t, ra.After)
		require.NotErrorIs(t, err, asynq.SkipRetry)
	}
}

// caseCtx is one case's organization, project and file on the shared services.
type caseCtx struct {
	hs      *fixture
	org     db.Organization
	project db.Project
	file    db.File
}

// upload stores content under a fresh key and registers it as the file's next version.
func (c *caseCtx) upload(t *testing.T, f db.File, content []byte, decl testenv.Declared, opts minio.PutObjectOptions) db.FileVersion {
	t.Helper()
	key := c.key(f)
	c.hs.put(t, key, content, opts)
	return c.hs.env.PG.RegisterVersion(t, f, key, decl)
}

func (c *caseCtx) key(f db.File) string {
	return fmt.Sprintf("orgs/%d/projects/%d/files/%d/%d", f.OrgID, f.ProjectID, f.ID, time.Now().UnixNano())
}

func (c *caseCtx) newFile(t *testing.T, ft db.FileType) db.File {
	t.Helper()
	f, err := c.hs.env.PG.Q.FileCreate(context.Background(), db.FileCreateParams{
		OrgID: c.org.ID, ProjectID: c.project.ID, Name: fmt.Sprintf("file-%d", time.Now().UnixNano()), FileType: ft,
	})
	require.NoError(t, err)
	return f
}

func declared(content []byte, mime string) testenv.Declared {
	d := testenv.Declared{SHA256: ptr(testenv.SHA256Hex(content)), Size: ptr(int64(len(content)))}
	if mime != "" {
		d.MIME = &mime
	}
	return d
}

// want is what a case must leave behind.
type want struct {
	result result
	status db.ValidationStatus
	errHas []string // substrings of validation_error; none: NULL
	sha256 string   // measured checksum; "": NULL
	size   *int64   // size_bytes; nil: NULL
	mime   string   // mime_type; "": NULL
	event  string   // the one event; "": none
	queued []string // task types queued next, in order
	active bool     // the file's active version, with an annotation job
}

type validateCase struct {
	name     string
	llm      bool
	allow    string // the project's allowed_content_types
	fileType db.FileType
	// prepare puts the object(s) in place and registers the version under test.
	prepare func(t *testing.T, c *caseCtx) (db.FileVersion, want)
	// process runs the handler until the version is decided (default: once).
	process func(t *testing.T, c *caseCtx, v db.FileVersion) error
	check   func(t *testing.T, c *caseCtx, v db.FileVersion)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)

	csv := csvBytes(200)
	validZip := zipBytes(t,
		zipEntry{name: "images/", method: zip.Store},
		zipEntry{name: "images/labels.csv", body: csvBytes(50), method: zip.Deflate},
		zipEntry{name: "README.txt", body: []byte("sample archive\n"), method: zip.Deflate})
	damagedZip := func() []byte {
		body := csvBytes(40)
		b := zipBytes(t, zipEntry{name: "data.csv", body: body, method: zip.Store})
		i := bytes.Index(b, body)
		b[i+len(body)/2] ^= 0x20 // one flipped bit in the stored data: the CRC no longer matches
		return b
	}()
	slipZip := zipBytes(t,
		zipEntry{name: "ok.csv", body: csvBytes(5), method: zip.Deflate},
		zipEntry{name: "../../etc/passwd", body: []byte("root:x:0:0:root:/root:/bin/bash\n"), method: zip.Deflate})
	bombZip := zipBytes(t, zipEntry{name: "zeros.csv", body: make([]byte, 8<<20), method: zip.Deflate})
	big := bytes.Repeat(csvBytes(1000), 1+(11<<20)/len(csvBytes(1000))) // > 10 MiB of text

	cases := []validateCase{
		{
			name: "valid", llm: true,
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				v := c.upload(t, c.file, csv, declared(csv, "text/csv"), minio.PutObjectOptions{})
				return v, want{result: succeeded, status: db.ValidationStatusValid, sha256: testenv.SHA256Hex(csv),
					size: ptr(int64(len(csv))), mime: "text/csv", event: "validated",
					queued: []string{tasks.Preannotate{}.Kind(), tasks.Match{}.Kind()}, active: true}
			},
		},
		{
			name: "declared SHA-256 wrong", llm: true,
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				d := declared(csv, "text/csv")
				d.SHA256 = ptr(testenv.SHA256Hex([]byte("something else")))
				v := c.upload(t, c.file, csv, d, minio.PutObjectOptions{})
				return v, want{result: archived, status: db.ValidationStatusCorrupt,
					errHas: []string{"declared SHA-256 " + *d.SHA256 + " does not match", testenv.SHA256Hex(csv)},
					sha256: testenv.SHA256Hex(csv), size: ptr(int64(len(csv))), mime: "text/csv", event: "corrupt"}
			},
		},
		{
			name: "truncated object", llm: true,
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				half := csv[:len(csv)/2]
				v := c.upload(t, c.file, half, declared(csv, "text/csv"), minio.PutObjectOptions{})
				// Decided from the object's size alone: nothing is read, so no checksum.
				return v, want{result: archived, status: db.ValidationStatusCorrupt,
					errHas: []string{"were declared", "cut off"}, size: ptr(int64(len(half))), event: "corrupt"}
			},
		},
		{
			name: "object missing then appearing within the retry window",
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				v := c.hs.env.PG.RegisterVersion(t, c.file, c.key(c.file), declared(csv, "text/csv"))
				return v, want{result: succeeded, status: db.ValidationStatusValid, sha256: testenv.SHA256Hex(csv),
					size: ptr(int64(len(csv))), mime: "text/csv", event: "validated", queued: []string{tasks.Match{}.Kind()}, active: true}
			},
			process: func(t *testing.T, c *caseCtx, v db.FileVersion) error {
				requireResult(t, retryLater, c.hs.process(t, v.ID))
				row := c.hs.version(t, v.ID)
				require.Equal(t, db.ValidationStatusPending, row.ValidationStatus)
				require.EqualValues(t, 1, row.ValidationAttempts)
				require.Empty(t, c.hs.events(t, v), "no event while the object may still come")
				c.hs.put(t, v.StoragePath, csv, minio.PutObjectOptions{})
				return c.hs.process(t, v.ID)
			},
		},
		{
			name: "object missing for good",
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				v := c.hs.env.PG.RegisterVersion(t, c.file, c.key(c.file), declared(csv, "text/csv"))
				return v, want{result: archived, status: db.ValidationStatusMissing,
					errHas: []string{"no object at " + fmt.Sprintf("%q", v.StoragePath), "looked 3 times", "upload the file"},
					event:  "missing"}
			},
			process: func(t *testing.T, c *caseCtx, v db.FileVersion) error {
				for i := 1; i < testOptions.MissingAttempts; i++ {
					requireResult(t, retryLater, c.hs.process(t, v.ID))
					row := c.hs.version(t, v.ID)
					require.Equal(t, db.ValidationStatusPending, row.ValidationStatus)
					require.EqualValues(t, i, row.ValidationAttempts)
				}
				return c.hs.process(t, v.ID)
			},
			check: func(t *testing.T, c *caseCtx, v db.FileVersion) {
				require.EqualValues(t, testOptions.MissingAttempts, c.hs.version(t, v.ID).ValidationAttempts)
			},
		},
		{
			name: "declared image/jpeg that is really an ELF executable",
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				elf := elfBytes()
				v := c.upload(t, c.file, elf, declared(elf, "image/jpeg"), minio.PutObjectOptions{})
				return v, want{result: archived, status: db.ValidationStatusRejected,
					errHas: []string{"application/x-", "a program or installer", "never accepted"},
					sha256: testenv.SHA256Hex(elf), size: ptr(int64(len(elf))), mime: "application/x-executable", event: "rejected"}
			},
		},
		{
			name: "valid ZIP",
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				v := c.upload(t, c.file, validZip, declared(validZip, "application/zip"), minio.PutObjectOptions{})
				return v, want{result: succeeded, status: db.ValidationStatusValid, sha256: testenv.SHA256Hex(validZip),
					size: ptr(int64(len(validZip))), mime: "application/zip", event: "validated",
					queued: []string{tasks.Match{}.Kind()}, active: true}
			},
			check: func(t *testing.T, c *caseCtx, v db.FileVersion) {
				var meta struct {
					Archive struct{ Entries, Files int } `json:"archive"`
				}
				require.NoError(t, json.Unmarshal(c.hs.events(t, v)[0].Metadata, &meta))
				require.Equal(t, 3, meta.Archive.Entries)
				require.Equal(t, 2, meta.Archive.Files)
			},
		},
		{
			name: "ZIP with a corrupted entry",
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				v := c.upload(t, c.file, damagedZip, declared(damagedZip, "application/zip"), minio.PutObjectOptions{})
				return v, want{result: archived, status: db.ValidationStatusCorrupt,
					errHas: []string{`entry "data.csv" is damaged`, "CRC-32"},
					sha256: testenv.SHA256Hex(damagedZip), size: ptr(int64(len(damagedZip))), mime: "application/zip", event: "corrupt"}
			},
		},
		{
			name: "ZIP with ../../etc/passwd",
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				v := c.upload(t, c.file, slipZip, declared(slipZip, "application/zip"), minio.PutObjectOptions{})
				return v, want{result: archived, status: db.ValidationStatusRejected,
					errHas: []string{`"../../etc/passwd" (".." component)`, "outside the folder"},
					sha256: testenv.SHA256Hex(slipZip), size: ptr(int64(len(slipZip))), mime: "application/zip", event: "rejected"}
			},
		},
		{
			name: "zip bomb",
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				v := c.upload(t, c.file, bombZip, declared(bombZip, "application/zip"), minio.PutObjectOptions{})
				return v, want{result: archived, status: db.ValidationStatusRejected,
					errHas: []string{`entry "zeros.csv" expands more than 100 times`, "zip bomb"},
					sha256: testenv.SHA256Hex(bombZip), size: ptr(int64(len(bombZip))), mime: "application/zip", event: "rejected"}
			},
		},
		{
			name: "empty file",
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				v := c.upload(t, c.file, nil, testenv.Declared{}, minio.PutObjectOptions{})
				return v, want{result: archived, status: db.ValidationStatusRejected,
					errHas: []string{"file is empty (0 bytes)"}, size: ptr(int64(0)), event: "rejected"}
			},
		},
		{
			name: "duplicate of an earlier version", llm: true,
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				first := c.upload(t, c.newFile(t, db.FileTypeDataset), csv, declared(csv, "text/csv"), minio.PutObjectOptions{})
				require.NoError(t, c.hs.process(t, first.ID))
				v := c.upload(t, c.file, csv, declared(csv, "text/csv"), minio.PutObjectOptions{})
				return v, want{result: succeeded, status: db.ValidationStatusValid, sha256: testenv.SHA256Hex(csv),
					size: ptr(int64(len(csv))), mime: "text/csv", event: "validated",
					queued: []string{tasks.Preannotate{}.Kind(), tasks.Match{}.Kind()}, active: true}
			},
			check: func(t *testing.T, c *caseCtx, v db.FileVersion) {
				row := c.hs.version(t, v.ID)
				require.NotNil(t, row.DuplicateOf)
				first := c.hs.version(t, *row.DuplicateOf)
				require.Equal(t, v.ProjectID, first.ProjectID)
				require.Less(t, first.ID, v.ID)
				require.Nil(t, first.DuplicateOf, "the original is not a duplicate")
			},
		},
		{
			name: "object uploaded in several parts with a correct declared SHA-256",
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				key := c.key(c.file)
				info := c.hs.put(t, key, big, minio.PutObjectOptions{PartSize: 5 << 20})
				require.Contains(t, info.ETag, "-", "a multipart ETag, which is no MD5 of the content")
				v := c.hs.env.PG.RegisterVersion(t, c.file, key, declared(big, "text/csv"))
				return v, want{result: succeeded, status: db.ValidationStatusValid, sha256: testenv.SHA256Hex(big),
					size: ptr(int64(len(big))), mime: "text/csv", event: "validated", queued: []string{tasks.Match{}.Kind()}, active: true}
			},
		},
		{
			name: "S3 SHA-256 checksum that matches",
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				key := c.key(c.file)
				info := c.hs.put(t, key, csv, minio.PutObjectOptions{Checksum: minio.ChecksumSHA256})
				require.NotEmpty(t, info.ChecksumSHA256)
				// Nothing declared: the storage checksum is the only reference.
				v := c.hs.env.PG.RegisterVersion(t, c.file, key, testenv.Declared{})
				return v, want{result: succeeded, status: db.ValidationStatusValid, sha256: testenv.SHA256Hex(csv),
					size: ptr(int64(len(csv))), mime: "text/csv", event: "validated", queued: []string{tasks.Match{}.Kind()}, active: true}
			},
			check: func(t *testing.T, c *caseCtx, v db.FileVersion) {
				st, err := c.hs.env.S3.Store.Client.StatObject(context.Background(), c.hs.env.S3.Store.Bucket, v.StoragePath,
					minio.StatObjectOptions{Checksum: true})
				require.NoError(t, err)
				require.NotEmpty(t, st.ChecksumSHA256, "storage reports the checksum the handler compared")
				var meta map[string]any
				require.NoError(t, json.Unmarshal(c.hs.events(t, v)[0].Metadata, &meta))
				require.NotContains(t, meta, "notes", "the storage checksum was compared, nothing was skipped")
			},
		},
		{
			name: "declared SHA-256 disagreeing with the S3 checksum",
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				key := c.key(c.file)
				c.hs.put(t, key, csv, minio.PutObjectOptions{Checksum: minio.ChecksumSHA256})
				other := bytes.ToUpper(csv)
				v := c.hs.env.PG.RegisterVersion(t, c.file, key, declared(other, "text/csv"))
				return v, want{result: archived, status: db.ValidationStatusCorrupt,
					errHas: []string{"declared SHA-256 " + testenv.SHA256Hex(other) + " does not match"},
					sha256: testenv.SHA256Hex(csv), size: ptr(int64(len(csv))), mime: "text/csv", event: "corrupt"}
			},
		},
		{
			name: "project allow-list refuses the type", allow: `{"dataset": ["image/png", "image/jpeg"]}`,
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				v := c.upload(t, c.file, csv, declared(csv, "text/csv"), minio.PutObjectOptions{})
				return v, want{result: archived, status: db.ValidationStatusRejected,
					errHas: []string{"text/csv is not accepted for dataset files (accepted: image/png, image/jpeg)"},
					sha256: testenv.SHA256Hex(csv), size: ptr(int64(len(csv))), mime: "text/csv", event: "rejected"}
			},
		},
		{
			name: "requirement file becomes active without a job", llm: true, fileType: db.FileTypeRequirement,
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				md := []byte("# Labelling guide\n\nDraw a box around every cat.\n")
				v := c.upload(t, c.file, md, declared(md, "text/markdown"), minio.PutObjectOptions{})
				return v, want{result: succeeded, status: db.ValidationStatusValid, sha256: testenv.SHA256Hex(md),
					size: ptr(int64(len(md))), mime: "text/markdown", event: "validated"}
			},
			check: func(t *testing.T, c *caseCtx, v db.FileVersion) {
				f := c.hs.file(t, v.OrgID, v.FileID)
				require.Equal(t, &v.ID, f.ActiveVersionID)
				require.Equal(t, db.FileStatusPending, f.Status, "only dataset files become ready for annotation")
				require.Empty(t, c.hs.jobsFor(t, v))
			},
		},
		{
			name: "version superseded before it was validated", llm: true,
			prepare: func(t *testing.T, c *caseCtx) (db.FileVersion, want) {
				v1 := c.upload(t, c.file, csv, declared(csv, "text/csv"), minio.PutObjectOptions{})
				newer := csvBytes(3)
				v2 := c.upload(t, c.file, newer, declared(newer, "text/csv"), minio.PutObjectOptions{})
				require.NoError(t, c.hs.process(t, v2.ID))
				// v1 is valid, but v2 is the file's content now: no job, nothing queued.
				return v1, want{result: succeeded, status: db.ValidationStatusValid, sha256: testenv.SHA256Hex(csv),
					size: ptr(int64(len(csv))), mime: "text/csv", event: "validated"}
			},
			check: func(t *testing.T, c *caseCtx, v db.FileVersion) {
				f := c.hs.file(t, v.OrgID, v.FileID)
				require.NotNil(t, f.ActiveVersionID)
				require.Greater(t, *f.ActiveVersionID, v.ID)
				require.Equal(t, db.FileStatusReadyForAnnotation, f.Status)
			},
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCase(t, hs, tc)
			v, w := tc.prepare(t, c)
			before := hs.lastQueuedID(t, c.org.ID)

			process := tc.process
			if process == nil {
				process = func(t *testing.T, c *caseCtx, v db.FileVersion) error { return c.hs.process(t, v.ID) }
			}
			requireResult(t, w.result, process(t, c, v))

			row := hs.version(t, v.ID)
			require.Equal(t, w.status, row.ValidationStatus)
			if len(w.errHas) == 0 {
				require.Nil(t, row.ValidationError)
			} else {
				require.NotNil(t, row.ValidationError)
				for _, s := range w.errHas {
					require.Contains(t, *row.ValidationError, s)
				}
			}
			requireOptional(t, w.sha256, row.Checksum, "checksum")
			require.Equal(t, w.size, row.SizeBytes, "size_bytes")
			requireOptional(t, w.mime, row.MimeType, "mime_type")
			require.NotNil(t, row.ValidatedAt)

			events := hs.events(t, v)
			require.Len(t, events, 1, "exactly one event per outcome")
			require.Equal(t, w.event, events[0].EventType)
			require.NotNil(t, events[0].DedupKey)

			queued := hs.queuedAfter(t, c.org.ID, before)
			require.Equal(t, w.queued, testenv.Kinds(queued), "tasks queued next")
			for _, q := range queued {
				switch q.TaskType {
				case tasks.Preannotate{}.Kind():
					testenv.RequireQueued(t, hs.env.PG.Pool, c.org.ID, tasks.Preannotate{VersionID: v.ID})
				case tasks.Match{}.Kind():
					testenv.RequireQueued(t, hs.env.PG.Pool, c.org.ID, tasks.MatchTrigger{ProjectID: v.ProjectID, Run: fmt.Sprint(v.ID)})
				}
			}

			f := hs.file(t, v.OrgID, v.FileID)
			jobs := hs.jobsFor(t, v)
			if w.active && tc.fileType == "" {
				require.Equal(t, &v.ID, f.ActiveVersionID)
				require.Equal(t, db.FileStatusReadyForAnnotation, f.Status)
				require.Len(t, jobs, 1)
				require.Equal(t, db.JobPriorityMedium, jobs[0].Priority)
				require.Nil(t, jobs[0].Language)
			}
			if w.status != db.ValidationStatusValid {
				require.Nil(t, f.ActiveVersionID)
				require.Equal(t, db.FileStatusPending, f.Status)
				require.Empty(t, jobs)
			}
			if tc.check != nil {
				tc.check(t, c, v)
			}

			// At-least-once delivery: the same task again changes nothing.
			require.NoError(t, hs.process(t, v.ID), "a second run of a decided version is a no-op")
			require.Equal(t, row, hs.version(t, v.ID))
			require.Equal(t, events, hs.events(t, v))
			require.Equal(t, queued, hs.queuedAfter(t, c.org.ID, before))
			require.Equal(t, f, hs.file(t, v.OrgID, v.FileID))
			require.Equal(t, jobs, hs.jobsFor(t, v))
		})
	}
}

func newCase(t *testing.T, hs *fixture, tc validateCase) *caseCtx {
	t.Helper()
	pg := hs.env.PG
	org := pg.Org(t)
	project := pg.Project(t, org.ID, func(p *db.ProjectCreateParams) {
		if tc.llm {
			p.LlmEnabled, p.LlmModel = true, "gpt-4o-mini"
		}
		if tc.allow != "" {
			p.AllowedContentTypes = json.RawMessage(tc.allow)
		}
	})
	c := &caseCtx{hs: hs, org: org, project: project}
	ft := tc.fileType
	if ft == "" {
		ft = db.FileTypeDataset
	}
	c.file = c.newFile(t, ft)
	return c
}

func requireOptional(t *testing.T, want string, got *string, what string) {
	t.Helper()
	if want == "" {
		require.Nil(t, got, what)
		return
	}
	require.NotNil(t, got, what)
	require.Equal(t, want, *got, what)
}

func TestValidateRecordsBytesHashed(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)
	pg := hs.env.PG
	org := pg.Org(t)
	f := pg.File(t, pg.Project(t, org.ID), "")
	content := csvBytes(3000)
	v := pg.Upload(t, hs.env.S3, f, content, declared(content, "text/csv"))
	require.NoError(t, hs.process(t, v.ID))

	var m dto.Metric
	require.NoError(t, hs.metrics.BytesHashed.Write(&m))
	require.EqualValues(t, len(content), m.GetCounter().GetValue())
	valid := hs.logs.Messages(t, "version valid")
	require.Len(t, valid, 1, hs.logs.String())
	require.EqualValues(t, v.ID, valid[0]["version_id"])
}

func TestValidateBadPayloads(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)
	pg := hs.env.PG
	org := pg.Org(t)
	f := pg.File(t, pg.Project(t, org.ID), "")
	v := pg.Upload(t, hs.env.S3, f, csvBytes(3), testenv.Declared{})

	for _, tc := range []struct {
		name, payload, why string
	}{
		{"not JSON", `version 42 please`, "not a JSON object"},
		{"empty", ``, "not a JSON object"},
		{"a JSON array", `[42]`, "not a JSON object"},
		{"version_id as a string", fmt.Sprintf(`{"version_id": "%d"}`, v.ID), "cannot unmarshal string"},
		{"version_id as a fraction", `{"version_id": 4.5}`, "cannot unmarshal number"},
		{"version_id missing", `{"id": 42}`, "version_id is missing"},
		{"version_id zero", `{"version_id": 0}`, "version_id is missing"},
		{"version_id negative", `{"version_id": -7}`, "version_id is missing"},
		{"null", `null`, "version_id is missing"},
		{"unknown version", `{"version_id": 987654321}`, "file version not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tasks.Handle(hs.h.Work).ProcessTask(context.Background(), asynq.NewTask(tasks.Validate{}.Kind(), []byte(tc.payload)))
			requireResult(t, archived, err)
			require.ErrorContains(t, err, tc.why, "the error says why")
		})
	}
	require.ErrorIs(t, tasks.Handle(hs.h.Work).ProcessTask(context.Background(), asynq.NewTask(tasks.Validate{}.Kind(), []byte(`{"version_id": 987654321}`))),
		validate.ErrVersionNotFound)
	require.ErrorIs(t, tasks.Handle(hs.h.Work).ProcessTask(context.Background(), asynq.NewTask(tasks.Validate{}.Kind(), []byte(`{}`))),
		tasks.ErrBadPayload)

	row := hs.version(t, v.ID)
	require.Equal(t, v, row, "no row changed")
	require.Empty(t, hs.events(t, v))
	require.Empty(t, testenv.OutboxRows(t, hs.env.PG.Pool, org.ID))
}

// Transient failures leave the version pending and ask asynq for an ordinary retry.
func TestValidateTransientFailures(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)
	pg := hs.env.PG
	org := pg.Org(t)
	f := pg.File(t, pg.Project(t, org.ID), "")
	content := csvBytes(10)
	v := pg.Upload(t, hs.env.S3, f, content, declared(content, "text/csv"))

	requireTransient := func(t *testing.T, err error) {
		t.Helper()
		require.Error(t, err)
		require.NotErrorIs(t, err, asynq.SkipRetry)
		var ra *queue.RetryAfterError
		require.False(t, errors.As(err, &ra), "a plain error: asynq's backoff decides")
		require.Equal(t, v, hs.version(t, v.ID), "the version stays pending, untouched")
		require.Empty(t, hs.events(t, v))
	}

	t.Run("object storage unreachable", func(t *testing.T) {
		unreachable, err := storage.New(storage.Config{
			Endpoint: testenv.FreeAddr(t), AccessKey: "x", SecretKey: "y", Bucket: hs.env.S3.Store.Bucket, Region: "us-east-1",
		})
		require.NoError(t, err)
		h := validate.NewHandler(validate.Deps{Pool: pg.Pool, Store: unreachable, Options: testOptions})
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		task, _ := tasks.NewTask(tasks.Validate{VersionID: v.ID})
		requireTransient(t, tasks.Handle(h.Work).ProcessTask(ctx, task))
	})
	t.Run("bucket gone", func(t *testing.T) {
		gone := *hs.env.S3.Store
		gone.Bucket = "no-such-bucket-here"
		h := validate.NewHandler(validate.Deps{Pool: pg.Pool, Store: &gone, Options: testOptions})
		task, _ := tasks.NewTask(tasks.Validate{VersionID: v.ID})
		requireTransient(t, tasks.Handle(h.Work).ProcessTask(context.Background(), task))
	})
	t.Run("Postgres unreachable", func(t *testing.T) {
		pool, err := database.Open(context.Background(), pg.URL, 2)
		require.NoError(t, err)
		pool.Close()
		h := validate.NewHandler(validate.Deps{Pool: pool, Store: hs.env.S3.Store, Options: testOptions})
		task, _ := tasks.NewTask(tasks.Validate{VersionID: v.ID})
		requireTransient(t, tasks.Handle(h.Work).ProcessTask(context.Background(), task))
	})
	t.Run("read slower than the minimum throughput", func(t *testing.T) {
		// A budget no read can meet stands in for a stalled connection.
		opts := testOptions
		opts.BaseTimeout, opts.MinThroughput = time.Nanosecond, 1<<62
		h := validate.NewHandler(validate.Deps{Pool: pg.Pool, Store: hs.env.S3.Store, Options: opts})
		task, _ := tasks.NewTask(tasks.Validate{VersionID: v.ID})
		err := tasks.Handle(h.Work).ProcessTask(context.Background(), task)
		requireTransient(t, err)
		require.ErrorContains(t, err, "slower than the minimum throughput")
	})

	// And once the outage is over the same task succeeds.
	require.NoError(t, hs.process(t, v.ID))
	require.Equal(t, db.ValidationStatusValid, hs.version(t, v.ID).ValidationStatus)
}

// Copies of the same task running at once (a redelivery racing the original, the
// reconciler's copy) decide the version once.
func TestValidateConcurrentRunsDecideOnce(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)
	pg := hs.env.PG
	org := pg.Org(t)
	pr := pg.Project(t, org.ID, func(p *db.ProjectCreateParams) { p.LlmEnabled, p.LlmModel = true, "gpt-4o-mini" })
	content := csvBytes(500)

	// Two files with the same bytes, validated at the same moment: one must end up
	// linked to the other.
	va := pg.Upload(t, hs.env.S3, pg.File(t, pr, ""), content, declared(content, "text/csv"))
	vb := pg.Upload(t, hs.env.S3, pg.File(t, pr, ""), content, declared(content, "text/csv"))

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		id := va.ID
		if i%2 == 1 {
			id = vb.ID
		}
		wg.Go(func() { errs <- hs.process(t, id) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, v := range []db.FileVersion{va, vb} {
		require.Len(t, hs.events(t, v), 1)
		require.Len(t, hs.jobsFor(t, v), 1)
	}
	a, b := hs.version(t, va.ID), hs.version(t, vb.ID)
	require.True(t, (a.DuplicateOf == nil) != (b.DuplicateOf == nil), "exactly one of the two is the duplicate")
	require.Len(t, testenv.OutboxRows(t, hs.env.PG.Pool, org.ID), 4, "one preannotate and one match trigger per version")
	for _, v := range []db.FileVersion{va, vb} {
		testenv.RequireQueued(t, hs.env.PG.Pool, org.ID, tasks.Preannotate{VersionID: v.ID})
		testenv.RequireQueued(t, hs.env.PG.Pool, org.ID, tasks.MatchTrigger{ProjectID: pr.ID, Run: fmt.Sprint(v.ID)})
	}
	require.Empty(t, hs.logs.Records(t, `"level":"ERROR"`), hs.logs.String())
}

// A version that was valid and active, re-validated after its bytes changed, is
// corrupt and no longer the file's active version: the previous valid version takes
// its place, and a file with none left is pending again.
func TestRevalidatedCorruptVersionStopsBeingActive(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, validate.Options{})
	ctx := context.Background()
	pg := hs.env.PG
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)

	register := func(f db.File, name string, content []byte) db.FileVersion {
		key := fmt.Sprintf("orgs/%d/%s", org.ID, name)
		hs.env.S3.Put(t, key, content, minio.PutObjectOptions{})
		v := pg.RegisterVersion(t, f, key, declared(content, "text/csv"))
		require.NoError(t, hs.process(t, v.ID))
		return v
	}
	revalidateAfterChange := func(v db.FileVersion) {
		hs.env.S3.Put(t, v.StoragePath, []byte("id,text\n1,tampered\n"), minio.PutObjectOptions{})
		_, err := pg.Q.FileVersionResetForRevalidation(ctx, db.FileVersionResetForRevalidationParams{ID: v.ID, OrgID: v.OrgID})
		require.NoError(t, err)
		err = hs.process(t, v.ID)
		require.Error(t, err)
		require.Equal(t, db.ValidationStatusCorrupt, hs.version(t, v.ID).ValidationStatus)
	}
	file := func(id int64) db.File {
		f, err := pg.Q.FileGet(ctx, db.FileGetParams{ID: id, OrgID: org.ID})
		require.NoError(t, err)
		return f
	}

	two := pg.File(t, pr, "two-versions.csv")
	v1 := register(two, "v1.csv", []byte("id,text\n1,first\n"))
	v2 := register(two, "v2.csv", []byte("id,text\n1,second\n"))
	require.Equal(t, v2.ID, *file(two.ID).ActiveVersionID)
	revalidateAfterChange(v2)
	f := file(two.ID)
	require.Equal(t, v1.ID, *f.ActiveVersionID, "the previous valid version is active again")
	require.Equal(t, db.FileStatusReadyForAnnotation, f.Status)

	one := pg.File(t, pr, "one-version.csv")
	only := register(one, "only.csv", []byte("id,text\n1,only\n"))
	require.Equal(t, db.FileStatusReadyForAnnotation, file(one.ID).Status)
	revalidateAfterChange(only)
	f = file(one.ID)
	require.Nil(t, f.ActiveVersionID, "no valid version is left to be active")
	require.Equal(t, db.FileStatusPending, f.Status)

	// A failed version that was never active changes nothing.
	bad := pg.RegisterVersion(t, two, v1.StoragePath, declared([]byte("not these bytes"), "text/csv"))
	require.Error(t, hs.process(t, bad.ID))
	require.Equal(t, v1.ID, *file(two.ID).ActiveVersionID)
}
