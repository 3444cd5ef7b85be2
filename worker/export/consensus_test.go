package export_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/export"
)

// consensusJob gives raw an annotation job with the given review and result,
// and returns it.
func (f *fixture) consensusJob(raw version, review db.ReviewStatus, result *int64) db.AnnotationJob {
	f.t.Helper()
	ctx := context.Background()
	j, err := f.pg.Q.AnnotationJobCreate(ctx, db.AnnotationJobCreateParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, FileID: raw.File.ID, FileVersionID: raw.ID, Priority: db.JobPriorityMedium,
	})
	require.NoError(f.t, err)
	status := db.JobStatusReviewed
	j, err = f.pg.Q.AnnotationJobUpdate(ctx, db.AnnotationJobUpdateParams{
		ID: j.ID, OrgID: f.org.ID, Status: &status, ReviewStatus: &review, ResultVersionID: result,
	})
	require.NoError(f.t, err)
	return j
}

// consensus stores content in labelq's bucket as the job's consensus result,
// as project:consensus does: a valid 'consensus' version of the job's
// "<file>.consensus.json" annotation_results file, made from the job's
// dataset version, and the job's consensus_results row.
func (f *fixture) consensus(j db.AnnotationJob, raw version, content []byte) version {
	f.t.Helper()
	ctx := context.Background()
	fl := f.file(raw.File.Name+".consensus.json", db.FileTypeAnnotationResults)
	sum, size := testenv.SHA256Hex(content), int64(len(content))
	v, err := f.pg.Q.FileVersionCreateConsensus(ctx, db.FileVersionCreateConsensusParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, FileID: fl.ID, StoragePath: f.put(content),
		Checksum: &sum, SizeBytes: &size, SourceFileVersionID: &j.FileVersionID,
	})
	require.NoError(f.t, err)
	require.Equal(f.t, db.GenerationMethodConsensus, v.GenerationMethod)
	require.NoError(f.t, f.pg.Q.ConsensusResultUpsert(ctx, db.ConsensusResultUpsertParams{
		JobID: j.ID, OrgID: f.org.ID, ProjectID: f.pr.ID, VersionID: v.ID, Copies: 2, Agreement: 0.75,
		Detail: json.RawMessage(`{"controls":{}}`), RunID: "test-run",
	}))
	return version{FileVersion: v, File: fl, Content: content}
}

// TestExportIncludeConsensus: with include_consensus, each live job's
// consensus result is packed byte for byte under consensus/, with its
// manifest and index entries, and the raw version it describes travels under
// files/ like an approved result's; without it (false or absent) no consensus
// result and no raw version of a job that only has one is packed. Another
// project's consensus results and deleted jobs' are never packed.
func TestExportIncludeConsensus(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()

	// a: approved, with a consensus too. b: pending review, consensus only.
	// gone: consensus of a job deleted since. c: no consensus.
	a := f.dataset("a.txt", []byte("raw a"), "text/plain")
	resA := f.valid(f.file("a.json", db.FileTypeAnnotationResults), []byte(`[{"a":1}]`), "application/json")
	jobA := f.consensusJob(a, db.ReviewStatusApproved, &resA.ID)
	b := f.dataset("b.txt", []byte("raw b"), "text/plain")
	jobB := f.consensusJob(b, db.ReviewStatusPending, nil)
	gone := f.dataset("gone.txt", []byte("raw gone"), "text/plain")
	jobGone := f.consensusJob(gone, db.ReviewStatusPending, nil)
	c := f.dataset("c.txt", []byte("raw c"), "text/plain")
	f.consensusJob(c, db.ReviewStatusPending, nil)

	consA := f.consensus(jobA, a, []byte(`[{"from_name":"label","to_name":"text","type":"choices","value":{"choices":["yes"]}}]`))
	consB := f.consensus(jobB, b, []byte("[{\"from_name\":\"label\",\"to_name\":\"text\",\"type\":\"choices\",\"value\":{\"choices\":[\"n\u00f8\"]}}]\n"))
	f.consensus(jobGone, gone, []byte(`[{"gone":true}]`))
	_, err := f.pg.Pool.Exec(ctx, `UPDATE annotation_jobs SET deleted_at = now() WHERE id = $1`, jobGone.ID)
	require.NoError(t, err)

	// Another project of the same organization, with a consensus of its own.
	other := *f
	other.pr = f.pg.Project(t, f.org.ID)
	o := other.dataset("other.txt", []byte("raw other"), "text/plain")
	other.consensus(other.consensusJob(o, db.ReviewStatusPending, nil), o, []byte(`[{"other":true}]`))

	h := f.handler(export.Options{})
	t.Run("included", func(t *testing.T) {
		e := f.newExport(`{"include_consensus":true}`)
		require.NoError(t, f.run(ctx, h, e.ID))
		ar := f.completedArchive(e.ID)
		require.Equal(t, []string{
			"manifest.json",
			"annotations/a.json",
			"consensus/a.txt.consensus.json", "consensus/b.txt.consensus.json",
			"files/a.txt", "files/b.txt",
			"index.csv",
		}, ar.names())
		require.JSONEq(t, `{"include_files":true,"include_annotations":true,"include_llm":false,"include_consensus":true}`, string(ar.manifest.Options))
		want := map[string]version{"consensus/a.txt.consensus.json": consA, "consensus/b.txt.consensus.json": consB}
		seen := 0
		for i, m := range ar.manifest.Entries {
			v, ok := want[m.Path]
			if !ok {
				continue
			}
			seen++
			require.Equal(t, v.Content, ar.read(m.Path), "%s holds the consensus byte for byte", m.Path)
			require.Equal(t, v.ID, m.VersionID, m.Path)
			require.Equal(t, v.File.ID, m.FileID, m.Path)
			require.Equal(t, v.VersionNumber, m.VersionNumber, m.Path)
			require.Equal(t, sha256Hex(v.Content), m.SHA256, m.Path)
			require.Equal(t, int64(len(v.Content)), m.Size, m.Path)
			require.Equal(t, "application/json", m.MIMEType, m.Path)
			// index.csv row i+1 is the manifest's entry i, with the file's name.
			require.Equal(t, m.Path, ar.index[i+1][0])
			require.Equal(t, v.File.Name, ar.index[i+1][2])
		}
		require.Equal(t, len(want), seen)
		require.Equal(t, b.ID, ar.paths()["files/b.txt"], "b's raw version travels with its consensus")
		require.Nil(t, f.row(e.ID).Note)
	})

	for name, options := range map[string]string{
		"false":  `{"include_consensus":false}`,
		"absent": `{}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := f.newExport(options)
			require.NoError(t, f.run(ctx, h, e.ID))
			ar := f.completedArchive(e.ID)
			require.Equal(t, []string{"manifest.json", "annotations/a.json", "files/a.txt", "index.csv"}, ar.names())
			for _, n := range ar.names() {
				require.False(t, strings.HasPrefix(n, "consensus/"), n)
			}
			require.JSONEq(t, `{"include_files":true,"include_annotations":true,"include_llm":false,"include_consensus":false}`, string(ar.manifest.Options))
		})
	}

	t.Run("consensus only", func(t *testing.T) {
		e := f.newExport(`{"include_files":false,"include_annotations":false,"include_consensus":true}`)
		require.NoError(t, f.run(ctx, h, e.ID))
		ar := f.completedArchive(e.ID)
		require.Equal(t, []string{"manifest.json", "consensus/a.txt.consensus.json", "consensus/b.txt.consensus.json", "index.csv"}, ar.names())
		require.Equal(t, consB.Content, ar.read("consensus/b.txt.consensus.json"))
	})

	t.Run("files and consensus without annotations", func(t *testing.T) {
		e := f.newExport(`{"include_files":true,"include_annotations":false,"include_consensus":true}`)
		require.NoError(t, f.run(ctx, h, e.ID))
		got := f.completedArchive(e.ID).paths()
		require.Equal(t, map[string]int64{
			"consensus/a.txt.consensus.json": consA.ID, "consensus/b.txt.consensus.json": consB.ID,
			"files/a.txt": a.ID, "files/b.txt": b.ID, "files/c.txt": c.ID, "files/gone.txt": gone.ID,
		}, got, "every active dataset version, as without consensus, and the consensus results")
	})

	t.Run("the other project packs its own", func(t *testing.T) {
		e := other.newExport(`{"include_files":false,"include_annotations":false,"include_consensus":true}`)
		require.NoError(t, other.run(ctx, other.handler(export.Options{}), e.ID))
		require.Equal(t, []string{"manifest.json", "consensus/other.txt.consensus.json", "index.csv"}, other.completedArchive(e.ID).names())
	})
}

// TestExportConsensusNothingToPack: consensus results asked for alone, on a
// project that has none, give a manifest-only archive whose note says why.
func TestExportConsensusNothingToPack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	raw := f.dataset("a.txt", []byte("raw a"), "text/plain")
	f.approved(raw, "a.json", []byte(`[]`))
	e := f.newExport(`{"include_files":false,"include_annotations":false,"include_consensus":true}`)
	require.NoError(t, f.run(ctx, f.handler(export.Options{}), e.ID))
	require.Equal(t, []string{"manifest.json", "index.csv"}, f.completedArchive(e.ID).names())
	row := f.row(e.ID)
	require.NotNil(t, row.Note)
	require.Contains(t, *row.Note, "0 consensus results")
	require.Contains(t, *row.Note, "project:consensus")
	require.Contains(t, *row.Note, "POST /v1/projects/{project_id}/consensus")
}

// TestConvertedExportRefusesConsensus: a converted export whose row asks for
// include_consensus (the API refuses it; a row written by hand does not) fails
// for good, naming the option and the format that takes it.
func TestConvertedExportRefusesConsensus(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := f.dataset("a.txt", []byte("raw a"), "text/plain")
	f.approved(raw, "a.json", []byte(`[]`))
	e := f.newFormatExport("label_studio", `{"include_consensus":true}`)
	err := f.run(context.Background(), f.handler(export.Options{}), e.ID)
	require.ErrorIs(t, err, asynq.SkipRetry)
	row := f.row(e.ID)
	require.Equal(t, db.ExportStatusFailed, row.Status)
	require.Contains(t, *row.Error, "options.include_consensus")
	require.Contains(t, *row.Error, "only format labelq supports")
	f.requireNoArchive(e.ID)
}
