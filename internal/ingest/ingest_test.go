package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/ingest"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

func TestCompileNamesTheFieldAtFault(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, filter, kind, rules, field string
	}{
		{"bad glob", "a/[", "glob", `[]`, "key_filter"},
		{"bad regex", "a(", "regex", `[]`, "key_filter"},
		{"bad filter kind", "*.txt", "fuzzy", `[]`, "key_filter"},
		{"rules not an array", "", "glob", `{"match": "*"}`, "rules"},
		{"unknown rule field", "", "glob", `[{"match": "*", "lang": "zh"}]`, "rules"},
		{"rule without match", "", "glob", `[{"language": "zh"}]`, "rules[0].match"},
		{"rule match kind", "", "glob", `[{"match": "*", "match_kind": "exact"}]`, "rules[0].match_kind"},
		{"rule file type", "", "glob", `[{"match": "*"}, {"match": "*", "file_type": "llm_output"}]`, "rules[1].file_type"},
		{"rule language", "", "glob", `[{"match": "*", "language": "Chinese"}]`, "rules[0].language"},
		{"rule priority", "", "glob", `[{"match": "*", "priority": "urgent"}]`, "rules[0].priority"},
		{"rule due in", "", "glob", `[{"match": "*", "due_in": "3 days"}]`, "rules[0].due_in"},
		{"rule negative due in", "", "glob", `[{"match": "*", "due_in": "-1h"}]`, "rules[0].due_in"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ingest.Compile(db.Storage{KeyFilter: tc.filter, KeyFilterKind: tc.kind, Rules: json.RawMessage(tc.rules)})
			var fe *ingest.FieldError
			require.True(t, errors.As(err, &fe), "%v", err)
			require.Equal(t, tc.field, fe.Field, "%v", err)
		})
	}
	_, err := ingest.Compile(db.Storage{KeyFilter: "**/*.jpg", KeyFilterKind: "glob",
		Rules: json.RawMessage(`[{"match": "^zh/", "match_kind": "regex", "language": "zh-Hans", "priority": "low", "due_in": "30m"}]`)})
	require.NoError(t, err)
	require.NoError(t, ingest.ValidateRules([]ingest.Rule{{Match: "*.json", FileType: db.FileTypeAnnotationResults}}))
	require.Error(t, ingest.ValidateFilter("[", "glob"))
}

// env is a project with an own storage under its organization's namespace.
type env struct {
	pg *testenv.PG
	pr db.Project
	st db.Storage
}

func newEnv(t *testing.T, archiveGone bool, rules string) *env {
	t.Helper()
	pg := testenv.Postgres(t)
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	var id int64
	require.NoError(t, pg.Pool.QueryRow(context.Background(),
		`INSERT INTO storages (org_id, project_id, name, prefix, rules, archive_gone) VALUES ($1, $2, 'in', $3, $4::jsonb, $5) RETURNING id`,
		org.ID, pr.ID, storage.OwnPrefix(org.ID)+"in/", rules, archiveGone).Scan(&id))
	st, err := pg.Q.StorageGetByID(context.Background(), id)
	require.NoError(t, err)
	return &env{pg: pg, pr: pr, st: st}
}

func (e *env) page(t *testing.T, after string, objs []ingest.Object, last bool) (ingest.Counts, error) {
	t.Helper()
	p, err := ingest.Compile(e.st)
	require.NoError(t, err)
	var c ingest.Counts
	err = database.Tx(context.Background(), e.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		var err error
		c, err = ingest.Page(context.Background(), q, e.st, p, after, objs, last)
		return err
	})
	return c, err
}

func (e *env) events(t *testing.T, created []ingest.Object, removed []string) ingest.Counts {
	t.Helper()
	p, err := ingest.Compile(e.st)
	require.NoError(t, err)
	var c ingest.Counts
	require.NoError(t, database.Tx(context.Background(), e.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		var err error
		c, err = ingest.Events(context.Background(), q, e.st, p, created, removed)
		return err
	}))
	return c
}

func (e *env) count(t *testing.T, sql string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, e.pg.Pool.QueryRow(context.Background(), sql, e.pr.ID).Scan(&n))
	return n
}

func TestPageSkipsKeysThatCannotBeNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, `[]`)
	pre := e.st.Prefix
	long := pre + strings.Repeat("a", ingest.MaxKeyBytes)
	objs := []ingest.Object{ // in byte order
		{Key: pre, Size: 0},                 // the prefix itself: a folder marker
		{Key: pre + "a\x1fb.txt", Size: 1},  // control character
		{Key: long, Size: 1},                // too long
		{Key: pre + "bad\xff.txt", Size: 1}, // not UTF-8
		{Key: pre + "ok.txt", ETag: `"e1"`, Size: 2},
	}
	c, err := e.page(t, "", objs, true)
	require.NoError(t, err)
	require.Equal(t, ingest.Counts{Listed: 5, New: 1, Filtered: 1, Skipped: 3, Skips: c.Skips}, c)
	reasons := map[string]string{}
	for _, s := range c.Skips {
		reasons[s.Key] = s.Reason
	}
	require.Contains(t, reasons[pre+"a\x1fb.txt"], "control character (U+001F)")
	require.Contains(t, reasons[pre+"bad\xff.txt"], "not valid UTF-8")
	require.Contains(t, reasons[long], "at most 1024")
	require.EqualValues(t, 1, e.count(t, `SELECT count(*) FROM files WHERE project_id = $1`))
	var etag string
	require.NoError(t, e.pg.Pool.QueryRow(context.Background(), `SELECT etag FROM storage_links WHERE storage_id = $1`, e.st.ID).Scan(&etag))
	require.Equal(t, "e1", etag, "quotes are not part of the ETag")

	_, err = e.page(t, pre+"z", []ingest.Object{{Key: pre + "a", Size: 1}}, false)
	require.ErrorIs(t, err, ingest.ErrUnordered)
}

func TestPageCapsSkips(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, `[]`)
	var objs []ingest.Object
	for i := range ingest.MaxSkips + 20 {
		objs = append(objs, ingest.Object{Key: e.st.Prefix + string(rune('a'+i/26)) + string(rune('a'+i%26)) + "\x01", Size: 1})
	}
	c, err := e.page(t, "", objs, true)
	require.NoError(t, err)
	require.EqualValues(t, ingest.MaxSkips+20, c.Skipped)
	require.Len(t, c.Skips, ingest.MaxSkips)
	var total ingest.Counts
	total.Add(c)
	total.Add(c)
	require.EqualValues(t, 2*(ingest.MaxSkips+20), total.Skipped)
	require.Len(t, total.Skips, ingest.MaxSkips)
}

func TestEventsAreIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, `[{"match": "zh/**", "language": "zh"}]`)
	a := ingest.Object{Key: e.st.Prefix + "zh/a.txt", ETag: "e1", Size: 3}
	b := ingest.Object{Key: e.st.Prefix + "b.txt", ETag: "e2", Size: 4}
	outside := ingest.Object{Key: "other/c.txt", ETag: "e3", Size: 5}

	c := e.events(t, []ingest.Object{a, b, outside}, nil)
	require.Equal(t, ingest.Counts{Listed: 3, New: 2, Filtered: 1}, c)
	require.EqualValues(t, 2, e.count(t, `SELECT count(*) FROM file_versions WHERE project_id = $1`))
	require.EqualValues(t, 1, e.count(t, `SELECT count(*) FROM file_versions WHERE project_id = $1 AND job_language = 'zh'`))
	var vid int64
	require.NoError(t, e.pg.Pool.QueryRow(context.Background(), `SELECT version_id FROM storage_links WHERE key = $1`, a.Key).Scan(&vid))
	testenv.RequireQueued(t, e.pg.Pool, e.st.OrgID, tasks.Validate{VersionID: vid})

	// The same notification again: nothing new.
	c = e.events(t, []ingest.Object{a, b}, nil)
	require.Equal(t, ingest.Counts{Listed: 2, Unchanged: 2}, c)
	require.EqualValues(t, 2, e.count(t, `SELECT count(*) FROM file_versions WHERE project_id = $1`))

	// b overwritten: its next version.
	b.ETag = "e2b"
	c = e.events(t, []ingest.Object{b}, nil)
	require.Equal(t, ingest.Counts{Listed: 1, Changed: 1}, c)

	// a removed, twice: gone once, its file archived.
	require.Equal(t, ingest.Counts{Gone: 1}, e.events(t, nil, []string{a.Key, "never/seen"}))
	require.Equal(t, ingest.Counts{}, e.events(t, nil, []string{a.Key}))
	require.EqualValues(t, 1, e.count(t, `SELECT count(*) FROM files WHERE project_id = $1 AND deleted_at IS NOT NULL`))

	// a back with the same bytes: its file is restored, nothing new made.
	require.Equal(t, ingest.Counts{Listed: 1, Unchanged: 1}, e.events(t, []ingest.Object{a}, nil))
	require.Zero(t, e.count(t, `SELECT count(*) FROM files WHERE project_id = $1 AND deleted_at IS NOT NULL`))
	require.EqualValues(t, 3, e.count(t, `SELECT count(*) FROM file_versions WHERE project_id = $1`))
}

func TestCreateVersionsNumbersConsecutively(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, `[]`)
	f := e.pg.File(t, e.pr, "x.txt")
	e.pg.RegisterVersion(t, f, "k/x1", testenv.Declared{})
	var made []ingest.Created
	require.NoError(t, database.Tx(context.Background(), e.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		ids, err := ingest.CreateFiles(context.Background(), q, e.pr.OrgID, e.pr.ID,
			[]ingest.NewFile{{Name: "y.txt"}, {Name: "x.txt"}})
		if err != nil {
			return err
		}
		require.Len(t, ids, 1, "x.txt is taken")
		if _, err := q.FilesLockMany(context.Background(), []int64{f.ID}); err != nil {
			return err
		}
		base := ingest.NewVersion{OrgID: e.pr.OrgID, ProjectID: e.pr.ID}
		v1, v2, v3 := base, base, base
		v1.FileID, v1.StoragePath = f.ID, "k/x2"
		v2.FileID, v2.StoragePath = ids["y.txt"], "k/y1"
		v3.FileID, v3.StoragePath = f.ID, "k/x3"
		made, err = ingest.CreateVersions(context.Background(), q, []ingest.NewVersion{v1, v2, v3})
		return err
	}))
	require.Len(t, made, 3)
	require.EqualValues(t, []int32{2, 1, 3}, []int32{made[0].VersionNumber, made[1].VersionNumber, made[2].VersionNumber})
	require.Equal(t, "k/y1", made[1].StoragePath)
	for _, m := range made {
		testenv.RequireQueued(t, e.pg.Pool, e.pr.OrgID, tasks.Validate{VersionID: m.ID})
	}
}
