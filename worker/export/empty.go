package export

import (
	"fmt"
	"strings"

	"github.com/labelq/labelq/internal/db"
)

// emptyFacts are the counts that explain an export that selected no file
// (queries/export_logs.sql, ExportLogEmptyFacts), read only for such an export.
type emptyFacts = db.ExportLogEmptyFactsRow

// emptyReason says, for a person, why an export with these options packs no
// file, and what to do about it. It is the export's note: such an export still
// completes, since a manifest-only archive is a true answer (a schedule's tick
// on a project with nothing approved yet is not a failure, and must not page
// anyone through export.failed), but it is no longer a silent one.
//
// What decides inclusion (FileVersionListForExport): with include_annotations
// the approved jobs' results are packed, and their raw versions travel with
// them (include_files) and so do the model outputs made from those
// (include_llm); without it, every dataset file's active version is packed
// (include_files), and the model outputs made from those (include_llm). With
// include_consensus, the consensus results of the project's live jobs are
// packed too, and the raw versions they describe travel with them like an
// approved result's. Only valid versions with a measured checksum are packed
// (buildPlan). consensusResults says whether the project has any consensus
// result at all (read only with include_consensus).
func emptyReason(sel Selection, f emptyFacts, consensusResults bool, skipped []skipped) string {
	if len(skipped) > 0 {
		return fmt.Sprintf("%s selected but none is valid (%s): only valid versions are packed; wait for validation to finish, or upload the files again and revalidate them",
			plural(len(skipped), "version was", "versions were"), statusCounts(skipped))
	}
	sel = sel.Normalized()
	files, annotations, llm := *sel.IncludeFiles, *sel.IncludeAnnotations, *sel.IncludeLLM
	if !*sel.IncludeConsensus {
		return selectionReason(files, annotations, llm, f)
	}
	why := consensusReason(consensusResults)
	if !files && !annotations && !llm {
		return why
	}
	// Nothing came back for the other options either.
	return selectionReason(files, annotations, llm, f) + "; and " + why
}

// consensusReason says why include_consensus packed nothing.
func consensusReason(consensusResults bool) string {
	if consensusResults {
		// A consensus result's version is valid at birth, so what left it out
		// is its job or its file.
		return "the project's consensus results belong to jobs or files deleted since; nothing of them is left to pack"
	}
	return "0 consensus results: include_consensus packs each job's consensus result, which a consensus run (project:consensus) writes for the jobs with two or more submitted copies; run consensus on the project first (POST /v1/projects/{project_id}/consensus)"
}

// selectionReason says why include_files, include_annotations and include_llm
// packed nothing, at least one of them being set.
func selectionReason(files, annotations, llm bool, f emptyFacts) string {
	if annotations && f.ApprovedJobs == 0 {
		why := "0 approved jobs: with include_annotations, files travel with approved results; approve jobs or set include_annotations=false"
		if !files && !llm {
			why = "0 approved jobs: include_annotations packs approved results only; approve jobs first"
		}
		return why + " (" + jobsContext(f) + ")"
	}
	if annotations {
		// Approved jobs exist, yet nothing came back: their files were deleted
		// since.
		return fmt.Sprintf("the files of the project's %s were deleted; nothing is left to pack",
			plural(int(f.ApprovedJobs), "approved job", "approved jobs"))
	}
	if f.ActiveDatasetFiles == 0 {
		what := "include_files packs each dataset file's valid active version"
		if !files {
			what = "include_llm packs the model outputs of each dataset file's valid active version"
		}
		return fmt.Sprintf("%s, and %s", what, datasetContext(f))
	}
	// Only model outputs were asked for (files come back whenever a dataset
	// file has an active version), and none matches a file's active version.
	if f.LlmOutputs == 0 {
		return "0 model outputs: include_llm packs the latest valid model output of each dataset file's active version, and pre-annotation has made none (the project's llm_enabled is off, or its runs have not finished or failed); enable it, or set include_files=true"
	}
	return fmt.Sprintf("none of the project's %s was made from a dataset file's active version (they describe older versions); pre-annotate the current versions, or set include_files=true",
		plural(int(f.LlmOutputs), "model output", "model outputs"))
}

// jobsContext says where the project's jobs stand when none is approved.
func jobsContext(f emptyFacts) string {
	if f.Jobs > 0 {
		return fmt.Sprintf("the project has %s, none approved with a result", plural(int(f.Jobs), "job", "jobs"))
	}
	return "the project has no jobs: a job is made when a dataset file's version is validated; " + datasetContext(f)
}

// datasetContext says why no dataset file has a valid active version.
func datasetContext(f emptyFacts) string {
	switch {
	case f.DatasetFiles == 0:
		return "the project has no dataset file; upload files first"
	case f.ActiveDatasetFiles > 0:
		return fmt.Sprintf("%s of the project's %d have a valid version", plural(int(f.ActiveDatasetFiles), "dataset file", "dataset files"), f.DatasetFiles)
	case f.PendingDatasetVersions > 0:
		return fmt.Sprintf("none of the project's %s has a valid version yet (%s waiting for validation); wait for validation to finish",
			plural(int(f.DatasetFiles), "dataset file", "dataset files"), plural(int(f.PendingDatasetVersions), "version is", "versions are"))
	}
	return fmt.Sprintf("none of the project's %s has a valid version: validation refused them (see each version's validation_error); upload the files again",
		plural(int(f.DatasetFiles), "dataset file", "dataset files"))
}

// statusCounts is "2 pending, 1 corrupt", in the order of the statuses' enum.
func statusCounts(skipped []skipped) string {
	order := []db.ValidationStatus{
		db.ValidationStatusPending, db.ValidationStatusCorrupt, db.ValidationStatusRejected,
		db.ValidationStatusMissing, db.ValidationStatusValid,
	}
	n := make(map[db.ValidationStatus]int, len(order))
	for _, s := range skipped {
		n[s.status]++
	}
	parts := make([]string, 0, len(order))
	for _, st := range order {
		if n[st] == 0 {
			continue
		}
		label := string(st)
		if st == db.ValidationStatusValid {
			label = "valid but never measured"
		}
		parts = append(parts, fmt.Sprintf("%d %s", n[st], label))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
