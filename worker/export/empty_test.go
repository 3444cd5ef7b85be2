package export_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/export"
)

// An export that packs nothing completes with a manifest-only archive and says
// why on its row (issue 19, item 7), from the options it was asked with and
// what the project holds.
func TestExportThatPacksNothingSaysWhy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name    string
		prepare func(f *fixture)
		options string
		note    string
	}{
		{
			name: "no approved job, defaults",
			prepare: func(f *fixture) {
				f.job(f.dataset("waiting.txt", []byte("not reviewed"), "text/plain"), db.ReviewStatusPending, nil)
			},
			options: `{}`,
			note:    "0 approved jobs: with include_annotations, files travel with approved results; approve jobs or set include_annotations=false (the project has 1 job, none approved with a result)",
		},
		{
			name: "every selected version invalid",
			prepare: func(f *fixture) {
				bad := f.dataset("bad.txt", []byte("corrupt"), "text/plain")
				_, err := f.pg.Pool.Exec(ctx,
					`UPDATE file_versions SET validation_status = 'corrupt', validation_error = 'checksum mismatch' WHERE id = $1`, bad.ID)
				require.NoError(f.t, err)
			},
			options: `{"include_files":true,"include_annotations":false}`,
			note:    "1 version was selected but none is valid (1 corrupt): only valid versions are packed; wait for validation to finish, or upload the files again and revalidate them",
		},
		{
			name: "files still waiting for validation",
			prepare: func(f *fixture) {
				f.pg.RegisterVersion(f.t, f.file("new.txt", db.FileTypeDataset), f.put([]byte("new")), testenv.Declared{})
			},
			options: `{"include_annotations":false}`,
			note:    "include_files packs each dataset file's valid active version, and none of the project's 1 dataset file has a valid version yet (1 version is waiting for validation); wait for validation to finish",
		},
		{
			name: "model outputs only, none made",
			prepare: func(f *fixture) {
				f.dataset("a.txt", []byte("raw a"), "text/plain")
			},
			options: `{"include_files":false,"include_annotations":false,"include_llm":true}`,
			note:    "0 model outputs: include_llm packs the latest valid model output of each dataset file's active version, and pre-annotation has made none (the project's llm_enabled is off, or its runs have not finished or failed); enable it, or set include_files=true",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tc.prepare(f)
			e := f.newExport(tc.options)
			require.NoError(t, f.run(ctx, f.handler(export.Options{}), e.ID))
			a := f.completedArchive(e.ID)
			require.Equal(t, []string{"manifest.json", "index.csv"}, a.names())
			row := f.row(e.ID)
			require.Equal(t, db.ExportStatusCompleted, row.Status, "an empty archive is an answer, not a failure")
			require.NotNil(t, row.Note)
			require.Equal(t, tc.note, *row.Note)
			require.Equal(t, tc.note, exportedNote(t, f, e.ID), "the exported event says it too")
		})
	}

	t.Run("an export that packs files has no note", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		raw := f.dataset("a.txt", []byte("raw a"), "text/plain")
		f.approved(raw, "a.json", []byte(`{"a":1}`))
		e := f.newExport(`{}`)
		require.NoError(t, f.run(ctx, f.handler(export.Options{}), e.ID))
		require.Len(t, f.completedArchive(e.ID).manifest.Entries, 2)
		require.Nil(t, f.row(e.ID).Note)
		require.Empty(t, exportedNote(t, f, e.ID))
	})
}

// exportedNote is the note of the export's exported event ("": none).
func exportedNote(t *testing.T, f *fixture, id int64) string {
	t.Helper()
	evs, err := f.pg.Q.EventLogListByEntity(context.Background(), db.EventLogListByEntityParams{
		OrgID: f.org.ID, EntityType: db.EntityTypeExport, EntityID: id, MaxRows: 100,
	})
	require.NoError(t, err)
	for _, e := range evs {
		if e.EventType == export.EventExported {
			var meta struct {
				Note string `json:"note"`
			}
			require.NoError(t, json.Unmarshal(e.Metadata, &meta))
			return meta.Note
		}
	}
	t.Fatalf("export %d has no %s event", id, export.EventExported)
	return ""
}
