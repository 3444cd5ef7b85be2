package chaos

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
)

// fairnessRows writes valid versions of project pr, all registered at created,
// version i's outcome event at done[i] (nil: still pending, no event), and answers
// their ids.
func fairnessRows(t *testing.T, pg *testenv.PG, pr db.Project, created time.Time, done []*time.Time) []int64 {
	t.Helper()
	ctx := context.Background()
	ids := make([]int64, 0, len(done))
	for _, d := range done {
		f := pg.File(t, pr, "")
		status, sum, size := "pending", (*string)(nil), (*int64)(nil)
		if d != nil {
			s, n := strings.Repeat("a", 64), int64(1)
			status, sum, size = "valid", &s, &n
		}
		var id int64
		require.NoError(t, pg.Pool.QueryRow(ctx, `INSERT INTO file_versions (org_id, project_id, file_id, version_number,
			storage_path, validation_status, checksum, size_bytes, validated_at, created_at)
			VALUES ($1, $2, $3::bigint, 1, 'k/' || $3::bigint::text, $4::validation_status, $5, $6, $7, $8) RETURNING id`,
			pr.OrgID, pr.ID, f.ID, status, sum, size, d, created).Scan(&id))
		if d != nil {
			_, err := pg.Pool.Exec(ctx, `INSERT INTO event_log (org_id, entity_type, entity_id, event_type, occurred_at)
				VALUES ($1, 'file_version', $2, 'validated', $3)`, pr.OrgID, id, *d)
			require.NoError(t, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestCheckFairness: against a big backlog of 1,000 versions validated one every
// 10 ms, a small version validated while most of the backlog still waits passes; one
// validated after the whole backlog fails, also when it waited through an outage of a
// service; with no version that had a backlog ahead of it, or only versions a kill or a
// partition explains, the figure fails as "could not look"; a database that cannot be
// read fails it with an error.
func TestCheckFairness(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	org := pg.Org(t)
	bigProject := pg.Project(t, org.ID)
	// Inside the current month's event_log partition, or the next one's (made ahead).
	t0 := time.Now().Truncate(time.Second)
	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	done := make([]*time.Time, 1000)
	for i := range done {
		done[i] = at(time.Second + time.Duration(i)*10*time.Millisecond) // the last at t0+11s
	}
	fairnessRows(t, pg, bigProject, t0, done)

	// Registered at t0+2s, when 899 of the big versions were still waiting.
	type small struct {
		done   *time.Time
		killed bool
		outage *outage
	}
	run := func(t *testing.T, smalls ...small) []Figure {
		t.Helper()
		pr := pg.Project(t, org.ID)
		in := fairnessInputs{DB: pg.Pool, BigProject: bigProject.ID, SmallProject: pr.ID, Limit: 200, Killed: map[int64]bool{},
			RegisteredBig: 1000, WantBig: 1000, RegisteredSmall: len(smalls), WantSmall: len(smalls)}
		for _, s := range smalls {
			id := fairnessRows(t, pg, pr, t0.Add(2*time.Second), []*time.Time{s.done})[0]
			in.Killed[id] = s.killed
			if s.outage != nil {
				in.Outages = append(in.Outages, *s.outage)
			}
		}
		return checkFairness(ctx, in)
	}
	const name = "fair_small_versions_behind_big_backlog"
	fair := small{done: at(2500 * time.Millisecond)}  // 49 of the 899 ahead validated first
	fifo := small{done: at(11500 * time.Millisecond)} // all 899 first

	t.Run("fair", func(t *testing.T) {
		figs := run(t, fair, fair)
		requireClean(t, figs)
		require.True(t, strings.HasPrefix(figure(t, figs, name).Value, "0 of the 2 looked at waited behind"), figure(t, figs, name).Value)
		require.Contains(t, figure(t, figs, name).Value, "version ", "each version is listed")
		require.Equal(t, "899 / 49 (validate limit 200 per organization)", figure(t, figs, "fair_big_ahead / validated_first (max of the versions looked at)").Value)
		require.Equal(t, "0.50 / 0.50", figure(t, figs, "fair_small_wait_seconds (max looked at / max of all)").Value)
		require.Equal(t, "11.0", figure(t, figs, "fair_big_backlog_drain_seconds").Value)
	})
	t.Run("FIFO", func(t *testing.T) {
		f := figure(t, run(t, fair, fifo), name)
		require.False(t, f.OK)
		require.True(t, strings.HasPrefix(f.Value, "1 of the 2 looked at waited behind"), f.Value)
		require.Contains(t, f.Value, "899 of chaos-big's ahead, 899 of them validated first")
	})
	t.Run("three quarters of the backlog first", func(t *testing.T) {
		// Under FIFO the big versions a Redis fault lost go back behind the small
		// one: J falls short of B by them.
		f := figure(t, run(t, small{done: at(9190 * time.Millisecond)}, small{done: at(6500 * time.Millisecond)}), name)
		require.False(t, f.OK)
		require.True(t, strings.HasPrefix(f.Value, "1 of the 2 looked at waited behind"), f.Value)
		require.Contains(t, f.Value, "899 of chaos-big's ahead, 718 of them validated first")
		require.True(t, strings.HasSuffix(f.Value, "899 of chaos-big's ahead, 449 of them validated first, waited 4.50 s"), "half of it is not: %s", f.Value)
	})
	t.Run("FIFO through an outage of a service", func(t *testing.T) {
		f := figure(t, run(t, small{done: fifo.done, outage: &outage{Name: "the MinIO outage", Start: *at(3 * time.Second), End: *at(5 * time.Second)}}), name)
		require.False(t, f.OK)
		require.True(t, strings.HasPrefix(f.Value, "1 of the 1 looked at"), f.Value)
		require.Contains(t, f.Value, "waited through the MinIO outage")
	})
	for _, c := range []struct {
		name string
		s    small
		why  string
	}{
		{"no backlog ahead", small{done: at(12 * time.Second)}, ""},
		{"killed", small{done: fifo.done, killed: true}, "active at a kill -9"},
		{"partition", small{done: fifo.done, outage: &outage{Name: partitionsOutage, Start: *at(3 * time.Second), End: *at(5 * time.Second), Partial: true}}, "waited through the network partitions"},
		{"not terminal", small{}, "not terminal"},
	} {
		t.Run("could not look: "+c.name, func(t *testing.T) {
			var figs []Figure
			if c.name == "no backlog ahead" {
				// Registered after the whole backlog was validated.
				pr := pg.Project(t, org.ID)
				fairnessRows(t, pg, pr, t0.Add(11500*time.Millisecond), []*time.Time{c.s.done})
				figs = checkFairness(ctx, fairnessInputs{DB: pg.Pool, BigProject: bigProject.ID, SmallProject: pr.ID, Limit: 200})
			} else {
				figs = run(t, c.s)
			}
			f := figure(t, figs, name)
			require.False(t, f.OK, f.Value)
			require.True(t, strings.HasPrefix(f.Value, "could not look: "), f.Value)
			require.Contains(t, f.Value, c.why)
		})
	}
	t.Run("admission off looks at what the default limit would", func(t *testing.T) {
		pr := pg.Project(t, org.ID)
		fairnessRows(t, pg, pr, t0.Add(2*time.Second), []*time.Time{fifo.done})
		f := figure(t, checkFairness(ctx, fairnessInputs{DB: pg.Pool, BigProject: bigProject.ID, SmallProject: pr.ID, Limit: 0}), name)
		require.False(t, f.OK)
		require.True(t, strings.HasPrefix(f.Value, "1 of the 1 looked at"), f.Value)
	})
	t.Run("not valid", func(t *testing.T) {
		figs := run(t, fair, small{})
		require.Equal(t, Figure{"fair_versions_not_valid (chaos-big / chaos-small)", "0 / 1", "0 / 0", false},
			figure(t, figs, "fair_versions_not_valid (chaos-big / chaos-small)"))
	})
	t.Run("registered short", func(t *testing.T) {
		figs := checkFairness(ctx, fairnessInputs{DB: pg.Pool, BigProject: bigProject.ID, RegisteredBig: 999, WantBig: 1000})
		require.False(t, figure(t, figs, "fair_versions_registered (chaos-big / chaos-small)").OK)
	})
}

func TestValidateLimitAndSubject(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want int
	}{
		{nil, 200},
		{[]string{"LABELQ_LLM_RPM=1"}, 200},
		{[]string{"LABELQ_ADMIT_PER_ORG=0"}, 0},
		{[]string{"LABELQ_ADMIT_PER_ORG=validate=50,default=3", "LABELQ_ADMIT_PER_ORG=file:validate=7"}, 7},
	} {
		got, err := validateLimit(c.env)
		require.NoError(t, err)
		require.Equal(t, c.want, got, "%v", c.env)
	}
	_, err := validateLimit([]string{"LABELQ_ADMIT_PER_ORG=validate=-1"})
	require.Error(t, err)

	id, ok := validateSubject("file:validate:42")
	require.True(t, ok)
	require.Equal(t, int64(42), id)
	id, ok = validateSubject("file:validate:43:rc1700000000")
	require.True(t, ok)
	require.Equal(t, int64(43), id)
	_, ok = validateSubject("file:preannotate:42")
	require.False(t, ok)
}
