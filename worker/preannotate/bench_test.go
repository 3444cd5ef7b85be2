package preannotate_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/ratelimit"
	"github.com/labelq/labelq/internal/testenv"
)

// BenchmarkPreannotate1000 pre-annotates 1,000 tiny valid versions through a real
// asynq server (20 worker slots) against the test provider, which answers in 50 ms
// and enforces 1,200 requests per minute itself (as 200 per sliding 10 s, which is
// stricter than 1,200 per minute: no 10 s anywhere in the run may hold more). The
// same 1,200 per minute is configured in labelq's shared limiter.
//
// Reported: achieved_rpm (requests per minute the provider saw, first to last),
// rpm_limit, fraction = achieved/limit (target ≥ 0.95; the limiter's default 2 %
// headroom for jitter caps it near 0.98), server_429 (429s the provider had to
// send: must be 0), total_tokens (prompt + completion of the 1,000 runs) and
// span_s (first to last request). The log line gives the spacing of requests as
// the provider saw them.
func BenchmarkPreannotate1000(b *testing.B) {
	const (
		versions    = 1000
		rpmLimit    = 1200
		window      = 10 * time.Second
		perWindow   = rpmLimit * int(window/time.Second) / 60
		latency     = 50 * time.Millisecond
		concurrency = 20
	)
	for range b.N {
		b.StopTimer()
		w := newFixture(b, fixtureOpts{
			serverOpts: []llmtest.Option{
				llmtest.WithLatency(latency), llmtest.WithRPM(perWindow), llmtest.WithWindow(window),
			},
			limits: ratelimit.Config{RequestsPerMinute: rpmLimit, MaxConcurrent: concurrency},
		})
		ids := seedVersions(b, w, versions)

		b.StartTimer()
		startWorker(b, w, w.h, concurrency)
		enqueue(b, w, ids)
		waitSucceeded(b, w, versions, 5*time.Minute)
		b.StopTimer()

		st := w.srv.Stats()
		reqs := w.srv.Requests()
		require.Len(b, reqs, versions, "one call per version")
		span := reqs[len(reqs)-1].Time.Sub(reqs[0].Time)
		achieved := float64(len(reqs)-1) / span.Minutes()
		b.Logf("gaps between requests at the provider: %s", gapPercentiles(reqs))
		server429 := st.RateLimited + st.ByStatus[429]
		u, err := w.env.PG.Q.LLMUsageByProject(context.Background(), db.LLMUsageByProjectParams{ProjectID: w.project.ID, OrgID: w.org.ID})
		require.NoError(b, err)

		b.ReportMetric(achieved, "achieved_rpm")
		b.ReportMetric(rpmLimit, "rpm_limit")
		b.ReportMetric(achieved/rpmLimit, "fraction")
		b.ReportMetric(float64(server429), "server_429")
		b.ReportMetric(float64(u.PromptTokens+u.CompletionTokens), "total_tokens")
		b.ReportMetric(span.Seconds(), "span_s")
		if server429 > 0 {
			b.Fatalf("the provider answered 429 %d times: labelq's limiter let too many requests through", server429)
		}
	}
}

// seedVersions creates n files with one valid tiny text version each, in the
// state file:validate leaves them, with their objects in the bucket. The setup is
// not timed.
func seedVersions(b *testing.B, w *fixture, n int) []int64 {
	b.Helper()
	ctx := context.Background()
	names, keys, sums := make([]string, n), make([]string, n), make([]string, n)
	sizes := make([]int64, n)
	bodies := make([][]byte, n)
	for i := range n {
		bodies[i] = fmt.Appendf(nil, "Review %d: arrived on time, works as described.", i)
		names[i] = fmt.Sprintf("review-%04d.txt", i)
		keys[i] = fmt.Sprintf("uploads/bench/%04d", i)
		sums[i] = testenv.SHA256Hex(bodies[i])
		sizes[i] = int64(len(bodies[i]))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := w.env.S3.Store.Client.PutObject(ctx, w.env.S3.Store.Bucket, keys[i], bytes.NewReader(bodies[i]),
				sizes[i], minio.PutObjectOptions{})
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	rows, err := w.env.PG.Pool.Query(ctx, `
		WITH input AS (
			SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[]) AS t(name, key, checksum, size)
		), f AS (
			INSERT INTO files (org_id, project_id, name, status) SELECT $1, $2, name, 'ready_for_annotation' FROM input
			RETURNING id, name
		)
		INSERT INTO file_versions (org_id, project_id, file_id, version_number, storage_path,
			checksum, size_bytes, mime_type, validation_status, validated_at)
		SELECT $1, $2, f.id, 1, i.key, i.checksum, i.size, 'text/plain; charset=utf-8', 'valid', now()
		FROM f JOIN input i USING (name)
		RETURNING id`, w.org.ID, w.project.ID, names, keys, sums, sizes)
	require.NoError(b, err)
	var ids []int64
	for rows.Next() {
		var id int64
		require.NoError(b, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(b, rows.Err())
	require.Len(b, ids, n)
	return ids
}

// gapPercentiles describes the spacing of requests as the provider saw them; the
// limiter spaces them 50 ms / 0.98 apart, and anything later is throughput lost.
func gapPercentiles(reqs []llmtest.RecordedRequest) string {
	gaps := make([]time.Duration, 0, len(reqs))
	for i := 1; i < len(reqs); i++ {
		gaps = append(gaps, reqs[i].Time.Sub(reqs[i-1].Time))
	}
	if len(gaps) == 0 {
		return "none"
	}
	slices.Sort(gaps)
	at := func(p int) time.Duration { return gaps[min(len(gaps)-1, len(gaps)*p/100)].Round(10 * time.Microsecond) }
	return fmt.Sprintf("p1=%s p50=%s p90=%s p99=%s max=%s", at(1), at(50), at(90), at(99), gaps[len(gaps)-1].Round(10*time.Microsecond))
}

// BenchmarkPreannotateTPM is a tokens-bound run through a real asynq server (16
// worker slots) against the test provider, which answers in 20 ms and limits
// tokens per sliding window by what replies use (prompt plus completion, as
// LiteLLM's proxy counts them). Each call reserves its prompt (≈ 180 tokens) plus
// the project's default 1,024 max tokens; a reply uses ≈ 190. The same limit is
// configured in labelq's shared limiter, with the same window and its default
// burst (a twentieth) and headroom (2 %).
//
// The run is made twice in the same benchmark: with reservations settled at the
// reply's usage (the figure), and held whole as before (NoRefund, the baseline).
// To keep the benchmark under a minute the window is 8 s instead of a minute
// (24,500 tokens per 8 s, 183,750 per minute): GCRA behaves the same at any
// period, and the provider's sliding window is as strict. The burst (1,225) then
// holds one reservation (1,205) at a time, so each call must have settled before
// the next fits: stricter than the defaults (5,000 of 100,000 per minute, four).
//
// Reported: fraction = tokens the provider saw used per window after the first
// window (the burst), over the limit (target ≥ 0.9; the burst and the headroom
// cap it near 0.93), baseline_fraction = the same without settling, ratio =
// fraction/baseline_fraction, server_429 (429s the provider had to send, in
// either run: must be 0), tpm = tokens per minute used, calls_per_min of the
// settled run.
func BenchmarkPreannotateTPM(b *testing.B) {
	for range b.N {
		b.StopTimer()
		settled := tpmRun(b, false, 360)
		held := tpmRun(b, true, 44)
		b.ReportMetric(settled.fraction, "fraction")
		b.ReportMetric(held.fraction, "baseline_fraction")
		b.ReportMetric(settled.fraction/held.fraction, "ratio")
		b.ReportMetric(0.9, "target_fraction")
		b.ReportMetric(float64(settled.server429+held.server429), "server_429")
		b.ReportMetric(settled.tpm, "tpm")
		b.ReportMetric(settled.callsPerMin, "calls_per_min")
		b.Logf("settled: %.3f of the limit, %.0f calls/min; held: %.3f, %.0f calls/min",
			settled.fraction, settled.callsPerMin, held.fraction, held.callsPerMin)
		if settled.server429+held.server429 > 0 {
			b.Fatalf("the provider answered 429 %d times: labelq's limiter let too many tokens through", settled.server429+held.server429)
		}
		if settled.fraction < 0.9 {
			b.Errorf("settled run used %.3f of the token limit, want ≥ 0.9", settled.fraction)
		}
	}
}

type tpmResult struct {
	fraction, tpm, callsPerMin float64
	server429                  int
}

// tpmRun pre-annotates n versions against a provider limited to 24,500 tokens
// per 8 s of usage and measures the steady state: the requests after the first
// window, to the last.
func tpmRun(b *testing.B, noRefund bool, n int) tpmResult {
	b.Helper()
	const (
		window      = 8 * time.Second
		perWindow   = 24_500
		latency     = 20 * time.Millisecond
		concurrency = 16
	)
	w := newFixture(b, fixtureOpts{
		serverOpts: []llmtest.Option{
			llmtest.WithLatency(latency), llmtest.WithTPM(perWindow), llmtest.WithTPMCountsUsage(), llmtest.WithWindow(window),
		},
		limits:  ratelimit.Config{TokensPerMinute: perWindow, Period: window, MaxConcurrent: concurrency, NoRefund: noRefund},
		project: []testenv.ProjectOpt{withSchema(labelSchema)},
	})
	ids := seedVersions(b, w, n)
	b.StartTimer()
	startWorker(b, w, w.h, concurrency)
	enqueue(b, w, ids)
	waitSucceeded(b, w, n, 3*time.Minute)
	b.StopTimer()

	st := w.srv.Stats()
	reqs := w.srv.Requests()
	require.Len(b, reqs, n, "one call per version")
	slices.SortFunc(reqs, func(x, y llmtest.RecordedRequest) int { return x.Time.Compare(y.Time) })
	from, to := reqs[0].Time.Add(window), reqs[len(reqs)-1].Time
	require.Greater(b, to.Sub(from), window, "the run lasts over two windows")
	tokens, calls := 0, 0
	for _, r := range reqs {
		if !r.Time.Before(from) {
			tokens += r.PromptTokens + r.CompletionTokens
			calls++
		}
	}
	span := to.Sub(from)
	return tpmResult{
		fraction:    float64(tokens) / (perWindow * span.Seconds() / window.Seconds()),
		tpm:         float64(tokens) / span.Minutes(),
		callsPerMin: float64(calls) / span.Minutes(),
		server429:   st.RateLimited + st.ByStatus[429],
	}
}
