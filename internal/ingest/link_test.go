package ingest_test

import (
	"context"
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

func (e *env) link(t *testing.T, keys ...string) map[string]ingest.Linked {
	t.Helper()
	p, err := ingest.Compile(e.st)
	require.NoError(t, err)
	var out map[string]ingest.Linked
	require.NoError(t, database.Tx(context.Background(), e.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		var err error
		out, err = ingest.Link(context.Background(), q, e.st, p, keys)
		return err
	}))
	return out
}

// An import names keys without listing them (issue 19, item 6): new keys become
// dataset files and versions with their validation queued and an unlisted link;
// keys that cannot be imported say why and write nothing.
func TestLinkRegistersNamedKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, `[{"match": "*.json", "file_type": "annotation_results"}, {"match": "zh/**", "language": "zh", "priority": "high"}]`)
	pre := e.st.Prefix
	_, err := e.page(t, "", []ingest.Object{{Key: pre + "synced.jpg", ETag: "s1", Size: 5}}, false)
	require.NoError(t, err)
	other := storage.OwnPrefix(e.st.OrgID) + "elsewhere/a.jpg"

	got := e.link(t, pre+"a.jpg", pre+"zh/b.jpg", pre+"synced.jpg", pre+"labels.json", other, pre)
	require.Len(t, got, 6)
	for _, k := range []string{pre + "a.jpg", pre + "zh/b.jpg"} {
		require.Empty(t, got[k].Reason, k)
		require.Positive(t, got[k].VersionID)
		testenv.RequireQueued(t, e.pg.Pool, e.st.OrgID, tasks.Validate{VersionID: got[k].VersionID})
		f, err := e.pg.Q.FileGet(context.Background(), db.FileGetParams{ID: got[k].FileID, OrgID: e.st.OrgID})
		require.NoError(t, err)
		require.Equal(t, k[len(pre):], f.Name, "named by the key relative to the prefix, as a sync names it")
		v, err := e.pg.Q.FileVersionGetByID(context.Background(), got[k].VersionID)
		require.NoError(t, err)
		require.Equal(t, e.st.ID, *v.StorageID)
		require.Nil(t, v.ExpectedSize, "a named key's size is not known")
	}
	v, err := e.pg.Q.FileVersionGetByID(context.Background(), got[pre+"zh/b.jpg"].VersionID)
	require.NoError(t, err)
	require.Equal(t, "zh", *v.JobLanguage, "the storage's rules set the job's attributes")
	require.Contains(t, got[pre+"synced.jpg"].Reason, "already registered as file")
	require.Contains(t, got[pre+"labels.json"].Reason, "file type annotation_results")
	require.Contains(t, got[other].Reason, "not under the storage's prefix")
	require.Contains(t, got[pre].Reason, "the storage's prefix itself")
	require.EqualValues(t, 3, e.count(t, `SELECT count(*) FROM files WHERE project_id = $1`), "synced.jpg and the two new keys")
	require.EqualValues(t, 2, e.count(t, `SELECT count(*) FROM storage_links WHERE project_id = $1 AND unlisted`))

	// A key named again is registered already; nothing more is written.
	again := e.link(t, pre+"a.jpg")
	require.Contains(t, again[pre+"a.jpg"].Reason, "already registered")
	require.EqualValues(t, 3, e.count(t, `SELECT count(*) FROM file_versions WHERE project_id = $1`))
}

// The first listing of an imported key adopts its ETag and size: no second
// version, the key is unchanged; a later change of the object is a new version
// as for any key.
func TestListingAdoptsImportedKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, `[]`)
	pre := e.st.Prefix
	got := e.link(t, pre+"a.jpg", pre+"b.jpg")

	c, err := e.page(t, "", []ingest.Object{{Key: pre + "a.jpg", ETag: `"e1"`, Size: 10}, {Key: pre + "b.jpg", ETag: "e2", Size: 20}}, true)
	require.NoError(t, err)
	require.Equal(t, ingest.Counts{Listed: 2, Unchanged: 2}, c)
	require.EqualValues(t, 2, e.count(t, `SELECT count(*) FROM file_versions WHERE project_id = $1`), "no second version")
	var etag string
	var size int64
	var unlisted bool
	require.NoError(t, e.pg.Pool.QueryRow(context.Background(), `SELECT etag, size_bytes, unlisted FROM storage_links WHERE storage_id = $1 AND key = $2`,
		e.st.ID, pre+"a.jpg").Scan(&etag, &size, &unlisted))
	require.Equal(t, "e1", etag)
	require.EqualValues(t, 10, size)
	require.False(t, unlisted)

	// Now an ordinary link: the same listing is unchanged, another ETag a new version.
	c = e.events(t, []ingest.Object{{Key: pre + "a.jpg", ETag: "e1", Size: 10}, {Key: pre + "b.jpg", ETag: "e3", Size: 21}}, nil)
	require.Equal(t, ingest.Counts{Listed: 2, Unchanged: 1, Changed: 1}, c)
	require.EqualValues(t, 3, e.count(t, `SELECT count(*) FROM file_versions WHERE project_id = $1`))
	var newest int64
	require.NoError(t, e.pg.Pool.QueryRow(context.Background(), `SELECT version_id FROM storage_links WHERE storage_id = $1 AND key = $2`,
		e.st.ID, pre+"b.jpg").Scan(&newest))
	require.NotEqual(t, got[pre+"b.jpg"].VersionID, newest)
}

// An imported key gone from the bucket and back is a new version: the first was
// validated without its object.
func TestImportedKeyGoneAndBackIsANewVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, `[]`)
	pre := e.st.Prefix
	e.link(t, pre+"a.jpg")
	c, err := e.page(t, "", nil, true)
	require.NoError(t, err)
	require.EqualValues(t, 1, c.Gone)
	c, err = e.page(t, "", []ingest.Object{{Key: pre + "a.jpg", ETag: "e1", Size: 10}}, true)
	require.NoError(t, err)
	require.Equal(t, ingest.Counts{Listed: 1, Changed: 1}, c)
	require.EqualValues(t, 0, e.count(t, `SELECT count(*) FROM storage_links WHERE project_id = $1 AND unlisted`))
}
