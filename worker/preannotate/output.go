package preannotate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/publicerr"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/webhook"
)

// storeTimeout bounds storing and linking an output once the model has answered.
// It runs on a context detached from the task's, so that a reply already paid for
// is not thrown away because the worker began to shut down.
const storeTimeout = time.Minute

// maxNameLen is files.name's limit, in characters.
const maxNameLen = 1024

// output is a stored reply, ready to become a version.
type output struct {
	key      string
	checksum string
	size     int64
	mime     string
	params   json.RawMessage
	// unwrapped: the reply held its JSON in a code fence or a sentence.
	unwrapped bool
	// counts, for a prediction: its regions, and the spans repaired or
	// dropped on the way.
	counts *regionCounts
}

// answer is what of a paid reply is stored.
type answer struct {
	// body is the output object: the reply's JSON (unwrapped) or text, or the
	// Label Studio prediction built from it.
	body  []byte
	reply llm.Reply
	// counts is set for a prediction.
	counts *regionCounts
}

// format is the output's extension and MIME type: JSON when the project asked for
// structured output, plain text otherwise.
func format(j *job) (ext, mime string) {
	if len(j.req.Schema) > 0 {
		return "json", "application/json"
	}
	return "txt", "text/plain; charset=utf-8"
}

// objectKey is where the output of a version under one set of settings lives. It
// is deterministic, so a task that dies after the upload and runs again overwrites
// the same object instead of leaving an orphan behind.
func objectKey(j *job, ext string) string {
	return fmt.Sprintf("orgs/%d/projects/%d/llm/%d/%s.%s", j.version.OrgID, j.version.ProjectID, j.version.ID, keyHash(j.key), ext)
}

// outputName is the llm_output file's name for a source file: "<name>.llm.json" or
// "<name>.llm.txt", or with the source file's id inserted when a file of another
// type already has that name. The source name is cut (on a character boundary)
// when the result would be too long.
func outputName(src, ext string, fileID int64) string {
	suffix := ".llm." + ext
	if fileID != 0 {
		suffix = fmt.Sprintf(".%d.llm.%s", fileID, ext)
	}
	if room := maxNameLen - utf8.RuneCountInString(suffix); utf8.RuneCountInString(src) > room {
		src = string([]rune(src)[:room])
	}
	return src + suffix
}

// llmParams is file_versions.llm_params of an output: what produced it.
type llmParams struct {
	Temperature          float64 `json:"temperature"`
	MaxTokens            int     `json:"max_tokens"`
	PromptHash           string  `json:"prompt_hash"`
	SchemaHash           string  `json:"schema_hash"`
	PromptBuilderVersion int     `json:"prompt_builder_version"`
	ProviderModel        string  `json:"provider_model,omitempty"`
	FinishReason         string  `json:"finish_reason,omitempty"`
	InputTruncated       bool    `json:"input_truncated,omitempty"`
	CachedFromRunID      int64   `json:"cached_from_run_id,omitempty"`
	// Unwrapped is where the reply held the stored JSON ("code_fence",
	// "prose") when it was not the reply itself.
	Unwrapped string `json:"unwrapped,omitempty"`
	// OutputFormat is OutputFormatPrediction when the output is a Label
	// Studio prediction built from the project's label config; absent when it
	// is the model's reply as it came.
	OutputFormat string `json:"output_format,omitempty"`
	// Regions, RegionsRepaired and RegionsDropped count, for a prediction,
	// its regions, the spans whose offsets were repaired from their quoted
	// text, and the items left out (a quote not in the text, a box past the
	// edge).
	Regions         *int `json:"regions,omitempty"`
	RegionsRepaired *int `json:"regions_repaired,omitempty"`
	RegionsDropped  *int `json:"regions_dropped,omitempty"`
}

func (p llmParams) counts() *regionCounts {
	if p.Regions == nil || p.RegionsRepaired == nil || p.RegionsDropped == nil {
		return nil
	}
	return &regionCounts{regions: *p.Regions, repaired: *p.RegionsRepaired, dropped: *p.RegionsDropped}
}

// storeNew stores a reply the run paid for (ans: what of it is stored) and links
// it.
func (h *Handler) storeNew(ctx context.Context, j *job, u usage, resp llm.Response, ans answer) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	ext, mime := format(j)
	body, reply := ans.body, ans.reply
	key := objectKey(j, ext)
	if _, err := h.store.Client.PutObject(wctx, h.store.Bucket, key, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: mime}); err != nil {
		reason := "could not store the output: " + publicerr.Reason(err, publicerr.Storage)
		j.log.WarnContext(ctx, "could not store the output", slog.String("key", key), slog.String("error", err.Error()))
		if _, rerr := h.record(ctx, j, db.LlmRunStatusRunning, u, &reason, nil); rerr != nil {
			return rerr
		}
		return fmt.Errorf("store output of version %d: %w", j.version.ID, err)
	}
	sum := sha256.Sum256(body)
	lp := llmParams{
		Temperature: j.req.Temperature, MaxTokens: j.req.MaxTokens,
		PromptHash: j.key.PromptHash, SchemaHash: j.key.SchemaHash, PromptBuilderVersion: llm.PromptBuilderVersion,
		ProviderModel: resp.Model, FinishReason: resp.FinishReason, InputTruncated: resp.InputTruncated,
		Unwrapped: string(reply.Unwrapped),
	}
	if c := ans.counts; c != nil {
		lp.OutputFormat = OutputFormatPrediction
		lp.Regions, lp.RegionsRepaired, lp.RegionsDropped = &c.regions, &c.repaired, &c.dropped
	}
	params, err := json.Marshal(lp)
	if err != nil {
		return fmt.Errorf("encode llm_params: %w", err)
	}
	out := output{key: key, checksum: hex.EncodeToString(sum[:]), size: int64(len(body)), mime: mime, params: params,
		unwrapped: reply.Unwrapped != llm.NotWrapped, counts: ans.counts}
	ver, err := h.commit(wctx, j, u, out, nil)
	if database.IsUniqueViolation(err, "llm_runs_paid_cache_key") {
		// Another process paid for the same key at the same time, which the cache
		// lock prevents unless Redis lost it. Only one paid run per key may exist:
		// this one becomes a cache hit of the other (its own call still counted),
		// and the other's output replaces ours at the same object key.
		src, ferr := db.New(h.pool).LLMRunFindCached(wctx, db.LLMRunFindCachedParams{OrgID: j.version.OrgID, CacheKey: j.key.String()})
		if ferr != nil {
			return fmt.Errorf("find the run that paid for the same content: %w", ferr)
		}
		j.log.WarnContext(ctx, "identical content was paid for twice (cache lock lost); keeping the first output",
			slog.Int64("cached_from_run_id", src.ID))
		return h.reuse(ctx, j, src, u)
	}
	if err != nil {
		return err
	}
	j.log.InfoContext(ctx, "pre-annotated", slog.Int64("output_version_id", ver),
		slog.Int("calls", u.calls), slog.Int("usage_in", u.promptTokens), slog.Int("usage_out", u.completionTokens),
		slog.Int("latency_ms", u.latencyMs), slog.Float64("cost_usd", u.cost))
	return nil
}

// reuse links the output of the run that paid for the same cache key to this
// version, without a model call. The object is copied (server-side) to this
// version's own key rather than shared: the paying run may belong to another
// project or organization, and each version must own its object so that deleting
// or expiring one never breaks another. What is copied is the cached output, an
// llm_output version that storeNew wrote to labelq's bucket (outputs never have
// a storage), not the version being pre-annotated: so source and destination
// are one bucket even when that version's bytes are in a tenant's storage, and
// no copy across endpoints is ever asked of S3.
func (h *Handler) reuse(ctx context.Context, j *job, src db.LlmRun, u usage) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if src.OutputVersionID == nil {
		return fmt.Errorf("cached run %d has no output version", src.ID)
	}
	sv, err := db.New(h.pool).FileVersionGetByID(wctx, *src.OutputVersionID)
	if err != nil {
		return fmt.Errorf("read output version %d of cached run %d: %w", *src.OutputVersionID, src.ID, err)
	}
	if sv.Checksum == nil || sv.SizeBytes == nil || sv.MimeType == nil {
		return fmt.Errorf("output version %d of cached run %d is not measured", sv.ID, src.ID)
	}
	if sv.StorageID != nil {
		return fmt.Errorf("output version %d of cached run %d names storage %d: outputs live in labelq's bucket", sv.ID, src.ID, *sv.StorageID)
	}
	ext, _ := format(j)
	key := objectKey(j, ext)
	if _, err := h.store.Client.CopyObject(wctx,
		minio.CopyDestOptions{Bucket: h.store.Bucket, Object: key},
		minio.CopySrcOptions{Bucket: h.store.Bucket, Object: sv.StoragePath}); err != nil {
		if storage.IsNotFound(err) {
			return fmt.Errorf("the cached output of run %d (%s) is missing from the bucket: %w", src.ID, sv.StoragePath, err)
		}
		return fmt.Errorf("copy cached output of run %d: %w", src.ID, err)
	}
	var p llmParams
	if len(sv.LlmParams) > 0 {
		if err := json.Unmarshal(sv.LlmParams, &p); err != nil {
			return fmt.Errorf("read llm_params of version %d: %w", sv.ID, err)
		}
	}
	p.CachedFromRunID = src.ID
	params, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode llm_params: %w", err)
	}
	// A cached prediction was built from the same reply, text and image facts
	// (the cache key covers the bytes, the model and the config), so its
	// counts hold for this version too.
	out := output{key: key, checksum: *sv.Checksum, size: *sv.SizeBytes, mime: *sv.MimeType, params: params, counts: p.counts()}
	ver, err := h.commit(wctx, j, u, out, &src.ID)
	if err != nil {
		return err
	}
	j.log.InfoContext(ctx, "pre-annotated from cache", slog.Int64("output_version_id", ver), slog.Int64("cached_from_run_id", src.ID))
	return nil
}

// commit makes the output a new version of the source file's llm_output file,
// marks the run succeeded and writes the event, in one transaction. It returns the
// new version's id (0 when the run had already succeeded).
func (h *Handler) commit(ctx context.Context, j *job, u usage, out output, cachedFrom *int64) (int64, error) {
	var id int64
	err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		cur, err := q.LLMRunGetForUpdate(ctx, j.run.ID)
		if err != nil {
			return fmt.Errorf("lock run %d: %w", j.run.ID, err)
		}
		if cur.Status == db.LlmRunStatusSucceeded {
			return nil // a concurrent task for the same version got there first
		}
		ext, _ := format(j)
		f, err := outputFile(ctx, q, j, ext)
		if err != nil {
			return err
		}
		model := j.req.Model
		ver, err := q.FileVersionCreateLLMOutput(ctx, db.FileVersionCreateLLMOutputParams{
			OrgID: f.OrgID, ProjectID: f.ProjectID, FileID: f.ID, StoragePath: out.key,
			Checksum: &out.checksum, SizeBytes: &out.size, MimeType: &out.mime,
			SourceFileVersionID: &j.version.ID, LlmModel: &model, LlmParams: out.params,
		})
		if err != nil {
			return fmt.Errorf("create output version: %w", err)
		}
		// The output is what annotators see next to the raw file: ready, like a
		// valid dataset file (a new llm_output file would otherwise stay pending).
		if _, err := q.FileActivateVersion(ctx, db.FileActivateVersionParams{
			VersionID: ver.ID, FileID: f.ID, VersionNumber: ver.VersionNumber, MarkReady: true,
		}); err != nil {
			return fmt.Errorf("activate output version: %w", err)
		}
		p := recordParams(j.run.ID, db.LlmRunStatusSucceeded, u, nil, nil, &ver.ID, cachedFrom)
		p.OutputUnwrapped = out.unwrapped
		run, err := recordRun(ctx, q, p)
		if err != nil {
			return fmt.Errorf("mark run %d succeeded: %w", j.run.ID, err)
		}
		meta := map[string]any{
			"run_id": run.ID, "output_file_id": f.ID, "output_version_id": ver.ID, "model": model,
			"prompt_tokens": run.PromptTokens, "completion_tokens": run.CompletionTokens,
			"cost_usd": run.CostUsd, "cached": cachedFrom != nil,
		}
		if cachedFrom != nil {
			meta["cached_from_run_id"] = *cachedFrom
		}
		data := runData(run, db.LlmRunStatusSucceeded, nil)
		if c := out.counts; c != nil {
			meta["regions"], meta["regions_repaired"], meta["regions_dropped"] = c.regions, c.repaired, c.dropped
			data.RegionsRepaired, data.RegionsDropped = &c.repaired, &c.dropped
		}
		id = ver.ID
		key := fmt.Sprintf("preannotate:run:%d:succeeded", run.ID)
		if err := event(ctx, q, j.version, "preannotated", key, meta); err != nil {
			return err
		}
		return notify(ctx, q, j.version, webhook.PreannotationSucceeded, key, data)
	})
	return id, err
}

// outputFile finds or creates the llm_output file for the source file, locked for
// the caller's transaction (version numbers are allocated under that lock).
func outputFile(ctx context.Context, q *db.Queries, j *job, ext string) (db.File, error) {
	for _, alt := range []int64{0, j.file.ID} {
		name := outputName(j.file.Name, ext, alt)
		if err := q.FileCreateLLMOutput(ctx, db.FileCreateLLMOutputParams{
			OrgID: j.file.OrgID, ProjectID: j.file.ProjectID, Name: name,
			Description: "Model pre-annotations of " + j.file.Name,
		}); err != nil {
			return db.File{}, fmt.Errorf("create output file %q: %w", name, err)
		}
		f, err := q.FileGetByNameForUpdate(ctx, db.FileGetByNameForUpdateParams{ProjectID: j.file.ProjectID, Name: name})
		if err != nil {
			return db.File{}, fmt.Errorf("read output file %q: %w", name, err)
		}
		if f.FileType == db.FileTypeLlmOutput {
			return f, nil
		}
	}
	return db.File{}, errors.New("no free name for the output file: the names it would take belong to other files")
}
