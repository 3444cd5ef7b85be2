package score_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	appconfig "github.com/labelq/labelq/internal/config"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/quality"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/score"
)

// Knobs of BenchmarkScore100k, read from the environment.
const (
	// envN is how many submissions to score (default benchDefaultN).
	envN = "LABELQ_BENCH_SCORE_N"
	// envKinds limits the mix to some of the kinds ("choices,boxes,spans",
	// the default, is all three).
	envKinds = "LABELQ_BENCH_SCORE_KINDS"
	// envTrace=1 times every SQL round trip and MinIO GET of the end-to-end
	// run and logs where the time went (it adds a little overhead).
	envTrace = "LABELQ_BENCH_SCORE_TRACE"
)

const (
	benchDefaultN = 100_000
	// benchVersions distinct result objects are shared by all submissions (a
	// submission is unique per job, user, version and kind, so the jobs and
	// annotators vary instead).
	benchVersions = 1000
	// benchTemplates distinct gold answers per kind; every job carries one of
	// them and every result version is a variant of one.
	benchTemplates = 25
	// benchPerJob annotators see each gold job (a honeypot shown to many).
	benchPerJob = 10
	// benchUsers annotators in the organization.
	benchUsers = 500
	// benchIDBase keeps the bulk-loaded ids clear of the fixtures' rows.
	benchIDBase = 1_000_000
	// benchTextLen is the span project's task text length in code points.
	benchTextLen = 400
)

// BenchmarkScore100k scores 100,000 gold submissions end to end — a mix of
// choices, boxes and spans in three projects, one per kind, results seeded
// from a math/rand/v2 source so that some are right, some partly and some
// wholly wrong — by calling the job:score handler's Run from a pool of the
// worker's default concurrency (LABELQ_WORKER_CONCURRENCY) over a database
// pool of its default size (LABELQ_DATABASE_MAX_CONNS) logged in as the
// workers' role, labelq_worker. Beside it, measured in the same run, the same
// results are parsed (labelconfig.ParseResult, both sides) and scored
// (quality.Score) in a plain in-process loop on one goroutine. The target is
// e2e_vs_loop ≥ 0.5.
//
// Seeding is not timed: 1,000 result objects in MinIO (file_versions valid,
// with checksum and size) shared by every submission, jobs with their dataset
// files and versions and their gold answers, 500 annotators and the
// submission rows, bulk-loaded with COPY as the schema owner, every row of one
// organization so that each foreign key (…, org_id) holds and the tenant
// policies show the rows to that organization.
//
// It fails unless every submission ends completed with the score the loop
// computed for it (within 1e-9) and the stored mean equals the loop's mean.
// LABELQ_BENCH_SCORE_N runs it smaller; LABELQ_BENCH_SCORE_KINDS limits the
// mix; LABELQ_BENCH_SCORE_TRACE=1 logs time per SQL round trip and MinIO GET.
func BenchmarkScore100k(b *testing.B) {
	n := envInt(b, envN, benchDefaultN)
	kinds := benchKinds(b)
	cfg, err := appconfig.Load(func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	workers, conns := cfg.WorkerConcurrency, cfg.DatabaseMaxConns
	ctx := context.Background()

	pg := testenv.Postgres(b)
	s3 := testenv.MinIO(b)
	org := pg.Org(b)
	seedStart := time.Now()
	in := seedScoring(b, pg, s3, org.ID, kinds, n)
	b.Logf("seeded %d submissions (%s) in %.1f s", n, strings.Join(kindNames(kinds), ", "), time.Since(seedStart).Seconds())

	// The worker's view: its role (BYPASSRLS, no superuser) and pool size.
	trace := os.Getenv(envTrace) == "1"
	poolCfg, err := pgxpool.ParseConfig(testenv.WithUser(pg.URL, "labelq_worker"))
	if err != nil {
		b.Fatal(err)
	}
	poolCfg.MaxConns = conns
	poolCfg.ConnConfig.RuntimeParams["application_name"] = "labelq"
	var sqlT *sqlTrace
	if trace {
		sqlT = &sqlTrace{by: map[string]*traceStat{}}
		poolCfg.ConnConfig.Tracer = sqlT
	}
	workerPool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		b.Fatal(err)
	}
	defer workerPool.Close()
	if err := database.Ping(ctx, workerPool); err != nil {
		b.Fatal(err)
	}
	own := s3.Store
	var getT *traceStat
	if trace {
		getT = &traceStat{}
		c, err := minio.New(s3.Endpoint, &minio.Options{
			Creds: credentials.NewStaticV4(s3.AccessKey, s3.SecretKey, ""), Region: "us-east-1",
			Transport: &timedTransport{next: http.DefaultTransport, stat: getT},
		})
		if err != nil {
			b.Fatal(err)
		}
		own = &storage.Store{Client: c, Bucket: s3.Store.Bucket}
	}
	allow, err := storage.ParseAllowlist(s3.Endpoint, s3.Endpoint)
	if err != nil {
		b.Fatal(err)
	}
	res := storage.NewResolver(own, testenv.StorageKeyring(b), allow, db.New(workerPool))
	h := score.NewHandler(score.Deps{Pool: workerPool, Storages: res, Log: testenv.Quiet()})

	// Submissions arrive across projects and annotators: run them shuffled.
	order := rand.New(rand.NewPCG(11, uint64(n))).Perm(n)

	var e2e, loop time.Duration
	var loopScores []float64
	var cpu testenv.CPUByProcess
	b.ResetTimer()
	for iter := range b.N {
		b.StopTimer()
		if iter > 0 {
			resetSubmissions(b, pg.Pool)
		}
		// The loop first, while Postgres and MinIO are idle.
		start := time.Now()
		loopScores = scoreLoop(b, in)
		loop += time.Since(start)
		before := testenv.CPUSnapshot()
		b.StartTimer()

		start = time.Now()
		runAll(b, h, in.ids, order, workers)
		e2e += time.Since(start)

		b.StopTimer()
		c := testenv.CPUSnapshot().Since(before)
		if cpu == nil {
			cpu = testenv.CPUByProcess{}
		}
		for k, v := range c {
			cpu[k] += v
		}
		checkScored(b, pg.Pool, in, loopScores)
	}

	// The minimal durable floor over the same objects in the submissions'
	// order, at the workers' concurrency: per submission an INSERT and commit,
	// the result's GET and SHA-256, an UPDATE and commit. No system that reads
	// each result from the bucket and records its score durably can go faster;
	// scoring adds the gold answer's read, the parse and the metric, and the
	// tally, the QA rate and the events in the same transaction.
	floorKeys := make([]string, n)
	for j, i := range order {
		floorKeys[j] = in.kinds[in.kind[i]].keys[in.version[i]]
	}
	floor, err := testenv.DurableFloor(ctx, pg.URL, s3.Store, floorKeys, workers)
	if err != nil {
		b.Fatal(err)
	}

	iters := float64(b.N)
	subs := float64(n) * iters
	e2ePerS := subs / e2e.Seconds()
	loopPerS := subs / loop.Seconds()
	var mean float64
	for _, s := range loopScores {
		mean += s
	}
	mean /= float64(len(loopScores))
	b.ReportMetric(e2ePerS, "e2e_per_s")
	b.ReportMetric(loopPerS, "loop_per_s")
	b.ReportMetric(e2ePerS/loopPerS, "e2e_vs_loop")
	b.ReportMetric(0.5, "target_ratio")
	b.ReportMetric(floor.PerSec, "floor_per_s")
	b.ReportMetric(e2ePerS/floor.PerSec, "e2e_vs_floor")
	b.ReportMetric(floor.PerSec/loopPerS, "floor_vs_loop")
	b.ReportMetric(e2e.Seconds()/iters, "e2e_s")
	b.ReportMetric(loop.Seconds()/iters, "loop_s")
	b.ReportMetric(float64(n), "submissions")
	b.ReportMetric(mean, "mean_score")
	b.ReportMetric(float64(workers), "workers")
	b.ReportMetric(cpu.Total()*1e6/subs, "cpu_us_per_sub")
	b.ReportMetric(cpu["postgres"]*1e6/subs, "postgres_cpu_us_per_sub")
	b.ReportMetric(cpu["minio"]*1e6/subs, "minio_cpu_us_per_sub")
	b.ReportMetric(cpu["labelq (this process)"]*1e6/subs, "self_cpu_us_per_sub")
	b.Logf("end to end: %d submissions in %.1f s on %d workers, %d connections (CPU during it: %s); loop: %.2f s; durable floor: %.1f s (CPU during it: %s)",
		n, e2e.Seconds()/iters, workers, conns, cpu, loop.Seconds()/iters, floor.Elapsed.Seconds(), floor.CPU)
	if trace {
		// To stderr: the testing package cuts a benchmark's log at ten lines.
		fmt.Fprintf(os.Stderr, "BenchmarkScore100k: where the end-to-end time went (wall time summed over the %d workers, per submission):\n%s\n",
			workers, traceReport(sqlT, getT, subs, e2e.Seconds()*float64(workers)))
	}
}

// scoringInput is what was seeded, and what the loop scores.
type scoringInput struct {
	kinds []*benchKind
	// ids are the submission ids, in seeding order; kind, version and
	// template say what submission i is: result version version[i] of kind
	// kind[i] against gold answer template[i].
	ids      []int64
	kind     []uint8
	version  []uint16
	template []uint8
}

// scoreLoop is the baseline: every submission's result and gold answer parsed
// and scored in one goroutine, as the handler does between its reads and
// writes.
func scoreLoop(b *testing.B, in *scoringInput) []float64 {
	out := make([]float64, len(in.ids))
	for i := range in.ids {
		k := in.kinds[in.kind[i]]
		got, err := labelconfig.ParseResult(k.results[in.version[i]])
		if err != nil {
			b.Fatal(err)
		}
		ref, err := labelconfig.ParseResult(k.golds[in.template[i]])
		if err != nil {
			b.Fatal(err)
		}
		r, err := quality.Score(k.cfg, got, ref, quality.Options{IoUThreshold: k.iou})
		if err != nil {
			b.Fatal(err)
		}
		out[i] = r.Score
	}
	return out
}

// runAll calls Run for every submission, in order, from workers goroutines.
func runAll(b *testing.B, h *score.Handler, ids []int64, order []int, workers int) {
	ctx := context.Background()
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				j := int(next.Add(1)) - 1
				if j >= len(order) {
					return
				}
				id := ids[order[j]]
				out, err := h.Run(ctx, id)
				if err == nil && out.Skipped {
					err = fmt.Errorf("submission %d: skipped", id)
				}
				if err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("%d of %d runs returned an error; the first: %v", failed.Load(), len(ids), firstErr)
	}
}

// checkScored fails unless every submission is completed with the loop's
// score, and the stored mean is the loop's mean.
func checkScored(b *testing.B, pool *pgxpool.Pool, in *scoringInput, want []float64) {
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT id, status::text, score, reason FROM submissions WHERE id >= $1 ORDER BY id`, in.ids[0])
	if err != nil {
		b.Fatal(err)
	}
	type row struct {
		id     int64
		status string
		score  *float64
		reason *string
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.id, &x.status, &x.score, &x.reason)
		return x, err
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(got) != len(in.ids) {
		b.Fatalf("%d submissions in the database, %d seeded", len(got), len(in.ids))
	}
	notCompleted, wrong := map[string]int{}, 0
	var firstBad, firstWrong string
	for i, r := range got {
		if r.id != in.ids[i] {
			b.Fatalf("submission %d in the database where %d was seeded", r.id, in.ids[i])
		}
		k := in.kinds[in.kind[i]].name
		if r.status != "completed" || r.score == nil {
			notCompleted[k]++
			if firstBad == "" {
				firstBad = fmt.Sprintf("submission %d (%s) is %s: %s", r.id, k, r.status, deref(r.reason))
			}
			continue
		}
		if math.Abs(*r.score-want[i]) > 1e-9 {
			wrong++
			if firstWrong == "" {
				firstWrong = fmt.Sprintf("submission %d (%s) scored %v, the loop %v", r.id, k, *r.score, want[i])
			}
		}
	}
	if len(notCompleted) > 0 {
		b.Fatalf("submissions not completed, by kind: %v; the first: %s", notCompleted, firstBad)
	}
	if wrong > 0 {
		b.Fatalf("%d submissions' stored score differs from the loop's; the first: %s", wrong, firstWrong)
	}
	var stored float64
	if err := pool.QueryRow(ctx, `SELECT avg(score) FROM submissions WHERE id >= $1`, in.ids[0]).Scan(&stored); err != nil {
		b.Fatal(err)
	}
	var mean float64
	for _, s := range want {
		mean += s
	}
	mean /= float64(len(want))
	if math.Abs(stored-mean) > 1e-9 {
		b.Fatalf("stored mean score %v, the loop's %v", stored, mean)
	}
}

// resetSubmissions puts every submission back in the queue for another
// iteration, and drops the events of the last one.
func resetSubmissions(b *testing.B, pool *pgxpool.Pool) {
	ctx := context.Background()
	for _, sql := range []string{
		`UPDATE submissions SET status = 'queued', score = NULL, passed = NULL, metric = NULL, detail = NULL,
			rank = NULL, reason = NULL, scored_at = NULL, attempts = 0`,
		`DELETE FROM event_log`,
		`VACUUM ANALYZE submissions, users, event_log`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
}

// benchKind is one project of the mix: its label config and how its gold
// answers and their variants are drawn.
type benchKind struct {
	name   string
	config string
	// template draws a gold answer; variant draws a result for it: tier 0
	// is the answer itself, 1 a perturbed copy, 2 an unrelated answer.
	template func(rng *rand.Rand) []benchRegion
	variant  func(rng *rand.Rand, gold []benchRegion, tier int) []benchRegion
	// dataset is the content of the jobs' dataset version (the task).
	dataset []byte

	// Filled while seeding.
	cfg     labelconfig.Config
	iou     float64
	project db.Project
	golds   [][]byte // per template
	results [][]byte // per result version of the kind
	vIDs    []int64  // the result versions' ids
	keys    []string // the result versions' object keys
}

// benchRegion is a Label Studio result region.
type benchRegion struct {
	ID             string         `json:"id"`
	FromName       string         `json:"from_name"`
	ToName         string         `json:"to_name"`
	Type           string         `json:"type"`
	Origin         string         `json:"origin"`
	OriginalWidth  int            `json:"original_width,omitempty"`
	OriginalHeight int            `json:"original_height,omitempty"`
	Value          map[string]any `json:"value"`
}

func render(rs []benchRegion) []byte {
	for i := range rs {
		rs[i].ID = fmt.Sprintf("r%d", i)
		rs[i].Origin = "manual"
	}
	b, err := json.Marshal(rs)
	if err != nil {
		panic(err)
	}
	return b
}

// round2 keeps two decimals, as an annotation tool's percentages have.
func round2(v float64) float64 { return math.Round(v*100) / 100 }

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

var (
	weathers = []string{"Sunny", "Rain", "Snow", "Fog"}
	tagSet   = []string{"Blurry", "Night", "Crowded", "Indoor", "Outdoor"}
	boxLabel = []string{"Car", "Person", "Bike", "Truck"}
	nerLabel = []string{"PER", "ORG", "LOC", "MISC"}
)

func choicesKind() *benchKind {
	region := func(name string, choices []string) benchRegion {
		return benchRegion{FromName: name, ToName: "image", Type: "choices", Value: map[string]any{"choices": choices}}
	}
	draw := func(rng *rand.Rand) []benchRegion {
		var tags []string
		for _, t := range tagSet {
			if rng.IntN(3) == 0 {
				tags = append(tags, t)
			}
		}
		rs := []benchRegion{region("weather", []string{pick(rng, weathers)})}
		if len(tags) > 0 {
			rs = append(rs, region("tags", tags))
		}
		return rs
	}
	return &benchKind{
		name: "choices",
		config: `{"objects": [{"name": "image", "type": "image", "value": "$image"}], "controls": [
			{"name": "weather", "type": "choices", "to_name": "image", "labels": ["Sunny", "Rain", "Snow", "Fog"]},
			{"name": "tags", "type": "choices", "to_name": "image", "choice": "multiple", "labels": ["Blurry", "Night", "Crowded", "Indoor", "Outdoor"]}]}`,
		template: draw,
		variant: func(rng *rand.Rand, gold []benchRegion, tier int) []benchRegion {
			switch tier {
			case 0:
				return gold
			case 2:
				return draw(rng)
			}
			weather := gold[0].Value["choices"].([]string)[0]
			if rng.IntN(10) < 3 {
				weather = pick(rng, weathers)
			}
			var had []string
			if len(gold) > 1 {
				had = gold[1].Value["choices"].([]string)
			}
			var tags []string
			for _, t := range tagSet {
				if in := slices.Contains(had, t); (in && rng.IntN(4) != 0) || (!in && rng.IntN(7) == 0) {
					tags = append(tags, t)
				}
			}
			rs := []benchRegion{region("weather", []string{weather})}
			if len(tags) > 0 {
				rs = append(rs, region("tags", tags))
			}
			return rs
		},
		dataset: []byte(`{"image": "s3://bench/images/street.jpg"}`),
	}
}

func boxesKind() *benchKind {
	region := func(label string, x, y, w, h float64) benchRegion {
		x, y = round2(min(max(x, 0), 95)), round2(min(max(y, 0), 95))
		w, h = round2(min(max(w, 1), 100-x)), round2(min(max(h, 1), 100-y))
		return benchRegion{FromName: "box", ToName: "image", Type: "rectanglelabels", OriginalWidth: 800, OriginalHeight: 600,
			Value: map[string]any{"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": []string{label}}}
	}
	draw := func(rng *rand.Rand, k int) []benchRegion {
		rs := make([]benchRegion, k)
		for i := range rs {
			rs[i] = region(pick(rng, boxLabel), rng.Float64()*85, rng.Float64()*85, 5+rng.Float64()*15, 5+rng.Float64()*15)
		}
		return rs
	}
	return &benchKind{
		name: "boxes",
		config: `{"objects": [{"name": "image", "type": "image", "value": "$image"}], "controls": [
			{"name": "box", "type": "rectanglelabels", "to_name": "image", "labels": ["Car", "Person", "Bike", "Truck"]}]}`,
		template: func(rng *rand.Rand) []benchRegion { return draw(rng, 3+rng.IntN(6)) },
		variant: func(rng *rand.Rand, gold []benchRegion, tier int) []benchRegion {
			switch tier {
			case 0:
				return gold
			case 2:
				return draw(rng, 2+rng.IntN(5))
			}
			var rs []benchRegion
			for _, g := range gold {
				if rng.IntN(100) < 15 { // missed
					continue
				}
				v := g.Value
				label := v["rectanglelabels"].([]string)[0]
				if rng.IntN(100) < 5 {
					label = pick(rng, boxLabel)
				}
				// A sloppy box: some fall below IoU 0.5.
				rs = append(rs, region(label, v["x"].(float64)+rng.NormFloat64()*1.5, v["y"].(float64)+rng.NormFloat64()*1.5,
					v["width"].(float64)*(0.8+0.4*rng.Float64()), v["height"].(float64)*(0.8+0.4*rng.Float64())))
			}
			if rng.IntN(3) == 0 { // a false positive
				rs = append(rs, draw(rng, 1)...)
			}
			return rs
		},
		dataset: []byte(`{"image": "s3://bench/images/street.jpg"}`),
	}
}

func spansKind() *benchKind {
	region := func(start, end int, label string) benchRegion {
		return benchRegion{FromName: "ner", ToName: "text", Type: "labels",
			Value: map[string]any{"start": start, "end": end, "labels": []string{label}}}
	}
	// k spans, one in each k-th of the text, none overlapping.
	draw := func(rng *rand.Rand, k int) []benchRegion {
		rs := make([]benchRegion, k)
		seg := benchTextLen / k
		for i := range rs {
			start := i*seg + rng.IntN(seg/2)
			rs[i] = region(start, start+3+rng.IntN(seg/2-3), pick(rng, nerLabel))
		}
		return rs
	}
	text := strings.Repeat("lorem ipsum dolor sit amet, consectetur adipiscing elit. ", benchTextLen/57+1)[:benchTextLen]
	dataset, _ := json.Marshal(map[string]string{"text": text})
	return &benchKind{
		name: "spans",
		config: `{"objects": [{"name": "text", "type": "text", "value": "$text"}], "controls": [
			{"name": "ner", "type": "labels", "to_name": "text", "labels": ["PER", "ORG", "LOC", "MISC"]}]}`,
		template: func(rng *rand.Rand) []benchRegion { return draw(rng, 4+rng.IntN(5)) },
		variant: func(rng *rand.Rand, gold []benchRegion, tier int) []benchRegion {
			switch tier {
			case 0:
				return gold
			case 2:
				return draw(rng, 3+rng.IntN(5))
			}
			var rs []benchRegion
			for _, g := range gold {
				if rng.IntN(100) < 15 {
					continue
				}
				start, end := g.Value["start"].(int), g.Value["end"].(int)
				label := g.Value["labels"].([]string)[0]
				if rng.IntN(5) == 0 { // a boundary off by one or two
					end = max(start+1, end+pick(rng, []int{-2, -1, 1, 2}))
				}
				if rng.IntN(100) < 5 {
					label = pick(rng, nerLabel)
				}
				rs = append(rs, region(start, min(end, benchTextLen), label))
			}
			if len(rs) == 0 {
				rs = draw(rng, 1)
			}
			return rs
		},
		dataset: dataset,
	}
}

func benchKinds(b *testing.B) []*benchKind {
	all := map[string]func() *benchKind{"choices": choicesKind, "boxes": boxesKind, "spans": spansKind}
	names := os.Getenv(envKinds)
	if names == "" {
		names = "choices,boxes,spans"
	}
	var out []*benchKind
	for _, name := range strings.Split(names, ",") {
		mk, ok := all[strings.TrimSpace(name)]
		if !ok {
			b.Fatalf("%s: %q is not one of choices, boxes, spans", envKinds, name)
		}
		out = append(out, mk())
	}
	return out
}

func kindNames(ks []*benchKind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.name
	}
	return out
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		b.Fatalf("%s=%q: want a positive whole number", name, s)
	}
	return v
}

// seedScoring loads everything the handler reads: per kind a project with its
// label config, result versions in MinIO, gold jobs with their dataset
// versions and gold answers; the annotators; n queued gold submissions, split
// evenly across the kinds, benchPerJob distinct annotators per job.
func seedScoring(b *testing.B, pg *testenv.PG, s3 *testenv.S3, orgID int64, kinds []*benchKind, n int) *scoringInput {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(2026, uint64(n)))

	users := make([]int64, benchUsers)
	for i := range users {
		users[i] = pg.User(b, orgID, testenv.Annotator).ID
	}

	type object struct {
		key  string
		body []byte
	}
	var objects []object
	var fileRows, versionRows, jobRows, goldRows, subRows [][]any
	in := &scoringInput{kinds: kinds}
	now := time.Now().UTC()
	nextFile, nextVersion, nextJob, nextSub := int64(benchIDBase), int64(benchIDBase), int64(benchIDBase), int64(benchIDBase)
	perKindVersions := max(benchTemplates, benchVersions/len(kinds))

	for ki, k := range kinds {
		pr := pg.Project(b, orgID)
		if _, err := pg.Pool.Exec(ctx, `UPDATE projects SET label_config = $1 WHERE id = $2`, k.config, pr.ID); err != nil {
			b.Fatal(err)
		}
		var err error
		if k.project, err = pg.Q.ProjectGet(ctx, db.ProjectGetParams{ID: pr.ID, OrgID: orgID}); err != nil {
			b.Fatal(err)
		}
		if k.cfg, err = labelconfig.Parse([]byte(k.config)); err != nil {
			b.Fatal(err)
		}
		k.iou = k.project.QualityIouThreshold

		// Gold answers, and result versions that are variants of them:
		// version v answers template v mod benchTemplates; the first of each
		// template is exact, then a tenth exact, a fifth unrelated and the
		// rest perturbed.
		templates := make([][]benchRegion, benchTemplates)
		k.golds = make([][]byte, benchTemplates)
		for t := range templates {
			templates[t] = k.template(rng)
			k.golds[t] = render(templates[t])
		}
		k.results = make([][]byte, perKindVersions)
		k.vIDs = make([]int64, perKindVersions)
		k.keys = make([]string, perKindVersions)
		for v := range k.results {
			tier := 1
			switch r := rng.IntN(10); {
			case v < benchTemplates || r == 0:
				tier = 0
			case r < 3:
				tier = 2
			}
			body := render(k.variant(rng, slices.Clone(templates[v%benchTemplates]), tier))
			if err := k.cfg.Validate(mustParse(b, body), strings.Repeat("x", benchTextLen)); err != nil {
				b.Fatalf("%s result %d does not fit its config: %v", k.name, v, err)
			}
			k.results[v] = body
			fileID, versionID := nextFile, nextVersion
			nextFile, nextVersion = nextFile+1, nextVersion+1
			key := fmt.Sprintf("orgs/%d/projects/%d/results/%d.json", orgID, pr.ID, versionID)
			objects = append(objects, object{key, body})
			fileRows = append(fileRows, []any{fileID, orgID, pr.ID, fmt.Sprintf("result-%d.json", versionID), "annotation_results"})
			versionRows = append(versionRows, []any{versionID, orgID, pr.ID, fileID, int32(1), key,
				testenv.SHA256Hex(body), int64(len(body)), "application/json", "valid", now})
			k.vIDs[v] = versionID
			k.keys[v] = key
		}

		// The task every job of the kind shows, one object for all of them.
		taskKey := fmt.Sprintf("orgs/%d/projects/%d/tasks/task.json", orgID, pr.ID)
		objects = append(objects, object{taskKey, k.dataset})

		// Jobs: ceil(share / benchPerJob) gold jobs, each with its own
		// dataset file and version (one job per version) and gold answer.
		share := n / len(kinds)
		if ki < n%len(kinds) {
			share++
		}
		for s := 0; s < share; s += benchPerJob {
			fileID, versionID, jobID := nextFile, nextVersion, nextJob
			nextFile, nextVersion, nextJob = nextFile+1, nextVersion+1, nextJob+1
			t := rng.IntN(benchTemplates)
			fileRows = append(fileRows, []any{fileID, orgID, pr.ID, fmt.Sprintf("task-%d.json", jobID), "dataset"})
			versionRows = append(versionRows, []any{versionID, orgID, pr.ID, fileID, int32(1), taskKey,
				testenv.SHA256Hex(k.dataset), int64(len(k.dataset)), "application/json", "valid", now})
			jobRows = append(jobRows, []any{jobID, orgID, pr.ID, fileID, versionID, true})
			goldRows = append(goldRows, []any{jobID, orgID, pr.ID, string(k.golds[t])})
			first := rng.IntN(benchUsers)
			for slot := range min(benchPerJob, share-s) {
				v := t + benchTemplates*rng.IntN(perKindVersions/benchTemplates)
				subRows = append(subRows, []any{nextSub, orgID, pr.ID, jobID, users[(first+slot)%benchUsers], k.vIDs[v], "gold"})
				in.ids = append(in.ids, nextSub)
				in.kind = append(in.kind, uint8(ki))
				in.version = append(in.version, uint16(v))
				in.template = append(in.template, uint8(t))
				nextSub++
			}
		}
	}

	if err := testenv.Parallel(8, len(objects), func(i int) error {
		o := objects[i]
		_, err := s3.Store.Client.PutObject(ctx, s3.Store.Bucket, o.key, bytes.NewReader(o.body), int64(len(o.body)),
			minio.PutObjectOptions{ContentType: "application/json"})
		return err
	}); err != nil {
		b.Fatalf("put the result objects: %v", err)
	}

	conn, err := pg.Pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	// COPY's binary format needs the enum types' OIDs.
	for _, name := range []string{"file_type", "validation_status", "submission_kind"} {
		t, err := conn.Conn().LoadType(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		conn.Conn().TypeMap().RegisterType(t)
	}
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"files", []string{"id", "org_id", "project_id", "name", "file_type"}, fileRows},
		{"file_versions", []string{"id", "org_id", "project_id", "file_id", "version_number", "storage_path",
			"checksum", "size_bytes", "mime_type", "validation_status", "validated_at"}, versionRows},
		{"annotation_jobs", []string{"id", "org_id", "project_id", "file_id", "file_version_id", "gold"}, jobRows},
		{"gold_answers", []string{"job_id", "org_id", "project_id", "result"}, goldRows},
		{"submissions", []string{"id", "org_id", "project_id", "job_id", "user_id", "result_version_id", "kind"}, subRows},
	} {
		got, err := conn.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows))
		if err != nil {
			b.Fatalf("copy %s: %v", c.table, err)
		}
		if int(got) != len(c.rows) {
			b.Fatalf("copy %s: %d of %d rows", c.table, got, len(c.rows))
		}
	}
	// Every file is at its one valid version, as validation leaves it.
	if _, err := conn.Exec(ctx, `UPDATE files f SET active_version_id = v.id, status = 'ready_for_annotation'
		FROM file_versions v WHERE v.file_id = f.id AND f.id >= $1`, benchIDBase); err != nil {
		b.Fatal(err)
	}
	// COPY wrote the identity columns itself; move the sequences past it so a
	// later insert cannot collide.
	for _, table := range []string{"files", "file_versions", "annotation_jobs", "submissions"} {
		if _, err := conn.Exec(ctx, fmt.Sprintf(
			`SELECT setval(pg_get_serial_sequence('%s', 'id'), (SELECT max(id) FROM %s))`, table, table)); err != nil {
			b.Fatal(err)
		}
	}
	// Autovacuum may be off on the test server: leave the tables as a
	// vacuumed, analysed database would have them.
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE files, file_versions, annotation_jobs, gold_answers, submissions, users, projects`); err != nil {
		b.Fatal(err)
	}
	return in
}

func mustParse(b *testing.B, body []byte) []labelconfig.Region {
	rs, err := labelconfig.ParseResult(body)
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// traceStat is a count and the time it took.
type traceStat struct {
	mu    sync.Mutex
	n     int64
	total time.Duration
}

func (s *traceStat) add(d time.Duration) {
	s.mu.Lock()
	s.n++
	s.total += d
	s.mu.Unlock()
}

// sqlTrace times each round trip to Postgres by the statements it carried
// (a pgx tracer: queries, and the batches database.Tx sends).
type sqlTrace struct {
	mu sync.Mutex
	by map[string]*traceStat
}

type traceStart struct {
	name string
	at   time.Time
}

type traceKey struct{}

// stmtName is the sqlc name of a statement ("-- name: X :one"), else its
// first word.
func stmtName(sql string) string {
	if rest, ok := strings.CutPrefix(sql, "-- name: "); ok {
		name, _, _ := strings.Cut(rest, " ")
		return name
	}
	f := strings.Fields(sql)
	if len(f) == 0 {
		return "?"
	}
	return strings.ToUpper(f[0])
}

func (t *sqlTrace) stat(name string) *traceStat {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.by[name]
	if s == nil {
		s = &traceStat{}
		t.by[name] = s
	}
	return s
}

func (t *sqlTrace) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{stmtName(data.SQL), time.Now()})
}

func (t *sqlTrace) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if s, ok := ctx.Value(traceKey{}).(traceStart); ok {
		t.stat(s.name).add(time.Since(s.at))
	}
}

func (t *sqlTrace) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	names := make([]string, 0, len(data.Batch.QueuedQueries))
	for _, q := range data.Batch.QueuedQueries {
		names = append(names, stmtName(q.SQL))
	}
	return context.WithValue(ctx, traceKey{}, traceStart{"[" + strings.Join(names, " + ") + "]", time.Now()})
}

func (t *sqlTrace) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (t *sqlTrace) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	if s, ok := ctx.Value(traceKey{}).(traceStart); ok {
		t.stat(s.name).add(time.Since(s.at))
	}
}

// timedTransport times each S3 request until its body is closed.
type timedTransport struct {
	next http.RoundTripper
	stat *traceStat
}

func (t *timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	if err != nil || r.Method != http.MethodGet {
		return resp, err
	}
	resp.Body = &timedBody{ReadCloser: resp.Body, start: start, stat: t.stat}
	return resp, nil
}

type timedBody struct {
	io.ReadCloser
	start time.Time
	stat  *traceStat
	once  sync.Once
}

func (b *timedBody) Close() error {
	b.once.Do(func() { b.stat.add(time.Since(b.start)) })
	return b.ReadCloser.Close()
}

// traceReport lists the round trips by total time, per submission, and what
// is left of the workers' wall time (Go work between them, waits for a
// connection).
func traceReport(sqlT *sqlTrace, get *traceStat, subs, workerSeconds float64) string {
	type line struct {
		name  string
		n     int64
		total time.Duration
	}
	var lines []line
	var accounted time.Duration
	var trips int64
	for name, s := range sqlT.by {
		lines = append(lines, line{name, s.n, s.total})
		accounted += s.total
		trips += s.n
	}
	lines = append(lines, line{"MinIO GET (until the body is closed)", get.n, get.total})
	accounted += get.total
	slices.SortFunc(lines, func(a, b line) int { return int(b.total - a.total) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "  %-8s %-10s %s\n", "per sub", "ms per sub", "round trip")
	for _, l := range lines {
		fmt.Fprintf(&sb, "  %-8.2f %-10.3f %s (mean %.3f ms)\n", float64(l.n)/subs, l.total.Seconds()*1e3/subs, l.name,
			l.total.Seconds()*1e3/float64(max(l.n, 1)))
	}
	rest := workerSeconds - accounted.Seconds()
	fmt.Fprintf(&sb, "  %.2f SQL round trips per submission; %.3f ms per submission of worker time outside SQL and MinIO (Go work, pool waits)",
		float64(trips)/subs, rest*1e3/subs)
	return sb.String()
}
