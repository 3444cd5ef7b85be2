package export

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
)

func TestEmptyReason(t *testing.T) {
	t.Parallel()
	opts := func(files, annotations, llm bool) Selection {
		return Selection{IncludeFiles: &files, IncludeAnnotations: &annotations, IncludeLLM: &llm}
	}
	withConsensus := func(s Selection) Selection {
		yes := true
		s.IncludeConsensus = &yes
		return s
	}
	cases := []struct {
		name      string
		sel       Selection
		facts     emptyFacts
		consensus bool // the project has a consensus result
		skipped   []skipped
		want      string
	}{
		{"consensus only, none computed", withConsensus(opts(false, false, false)), emptyFacts{Jobs: 2, ApprovedJobs: 2}, false,
			nil, "0 consensus results: include_consensus packs each job's consensus result, which a consensus run (project:consensus) writes for the jobs with two or more submitted copies; run consensus on the project first (POST /v1/projects/{project_id}/consensus)"},
		{"consensus only, of deleted jobs", withConsensus(opts(false, false, false)), emptyFacts{}, true,
			nil, "the project's consensus results belong to jobs or files deleted since; nothing of them is left to pack"},
		{"defaults and consensus, nothing approved or computed", withConsensus(opts(true, true, false)), emptyFacts{Jobs: 3, DatasetFiles: 3, ActiveDatasetFiles: 3}, false,
			nil, "0 approved jobs: with include_annotations, files travel with approved results; approve jobs or set include_annotations=false (the project has 3 jobs, none approved with a result); and 0 consensus results: include_consensus packs each job's consensus result, which a consensus run (project:consensus) writes for the jobs with two or more submitted copies; run consensus on the project first (POST /v1/projects/{project_id}/consensus)"},
		{"consensus version not valid", withConsensus(opts(false, false, false)), emptyFacts{}, true,
			[]skipped{{1, db.ValidationStatusPending}},
			"1 version was selected but none is valid (1 pending): only valid versions are packed; wait for validation to finish, or upload the files again and revalidate them"},
		{"consensus asked false is not mentioned", func() Selection { s := opts(false, true, false); no := false; s.IncludeConsensus = &no; return s }(),
			emptyFacts{Jobs: 1, DatasetFiles: 1, ActiveDatasetFiles: 1}, true,
			nil, "0 approved jobs: include_annotations packs approved results only; approve jobs first (the project has 1 job, none approved with a result)"},
		{"defaults, jobs but none approved", opts(true, true, false), emptyFacts{Jobs: 3, DatasetFiles: 3, ActiveDatasetFiles: 3}, false,
			nil, "0 approved jobs: with include_annotations, files travel with approved results; approve jobs or set include_annotations=false (the project has 3 jobs, none approved with a result)"},
		{"annotations only, one job", opts(false, true, false), emptyFacts{Jobs: 1, DatasetFiles: 1, ActiveDatasetFiles: 1}, false,
			nil, "0 approved jobs: include_annotations packs approved results only; approve jobs first (the project has 1 job, none approved with a result)"},
		{"defaults, no jobs, files waiting for validation", opts(true, true, true), emptyFacts{DatasetFiles: 2, PendingDatasetVersions: 2}, false,
			nil, "0 approved jobs: with include_annotations, files travel with approved results; approve jobs or set include_annotations=false (the project has no jobs: a job is made when a dataset file's version is validated; none of the project's 2 dataset files has a valid version yet (2 versions are waiting for validation); wait for validation to finish)"},
		{"defaults, empty project", opts(true, true, false), emptyFacts{}, false,
			nil, "0 approved jobs: with include_annotations, files travel with approved results; approve jobs or set include_annotations=false (the project has no jobs: a job is made when a dataset file's version is validated; the project has no dataset file; upload files first)"},
		{"selected versions all invalid", opts(true, false, false), emptyFacts{DatasetFiles: 3, ActiveDatasetFiles: 3}, false,
			[]skipped{{1, db.ValidationStatusCorrupt}, {2, db.ValidationStatusPending}, {3, db.ValidationStatusCorrupt}},
			"3 versions were selected but none is valid (1 pending, 2 corrupt): only valid versions are packed; wait for validation to finish, or upload the files again and revalidate them"},
		{"one selected version, never measured", opts(true, true, false), emptyFacts{ApprovedJobs: 1}, false,
			[]skipped{{1, db.ValidationStatusValid}},
			"1 version was selected but none is valid (1 valid but never measured): only valid versions are packed; wait for validation to finish, or upload the files again and revalidate them"},
		{"files only, every version refused", opts(true, false, false), emptyFacts{DatasetFiles: 1}, false,
			nil, "include_files packs each dataset file's valid active version, and none of the project's 1 dataset file has a valid version: validation refused them (see each version's validation_error); upload the files again"},
		{"model outputs only, no active version", opts(false, false, true), emptyFacts{DatasetFiles: 4, PendingDatasetVersions: 1}, false,
			nil, "include_llm packs the model outputs of each dataset file's valid active version, and none of the project's 4 dataset files has a valid version yet (1 version is waiting for validation); wait for validation to finish"},
		{"model outputs only, none made", opts(false, false, true), emptyFacts{DatasetFiles: 2, ActiveDatasetFiles: 2}, false,
			nil, "0 model outputs: include_llm packs the latest valid model output of each dataset file's active version, and pre-annotation has made none (the project's llm_enabled is off, or its runs have not finished or failed); enable it, or set include_files=true"},
		{"model outputs only, all of older versions", opts(false, false, true), emptyFacts{DatasetFiles: 2, ActiveDatasetFiles: 2, LlmOutputs: 2}, false,
			nil, "none of the project's 2 model outputs was made from a dataset file's active version (they describe older versions); pre-annotate the current versions, or set include_files=true"},
		{"approved jobs whose files were deleted", opts(true, true, false), emptyFacts{Jobs: 2, ApprovedJobs: 2}, false,
			nil, "the files of the project's 2 approved jobs were deleted; nothing is left to pack"},
	}
	for _, c := range cases {
		require.Equal(t, c.want, emptyReason(c.sel, c.facts, c.consensus, c.skipped), c.name)
	}
}
