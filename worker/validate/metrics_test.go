package validate_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// labelq_versions_validated_total counts each decision once, by the status it
// gave, and a second run over a decided version adds nothing.
func TestValidateCountsDecisionsByStatus(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)
	pg := hs.env.PG
	f := pg.File(t, pg.Project(t, pg.Org(t).ID), "")
	content := csvBytes(200)
	valid := pg.Upload(t, hs.env.S3, f, content, declared(content, "text/csv"))
	corrupt := pg.Upload(t, hs.env.S3, f, content, declared(csvBytes(201), "text/csv"))

	require.NoError(t, hs.process(t, valid.ID))
	require.Error(t, hs.process(t, corrupt.ID), "a corrupt version is archived")
	require.NoError(t, hs.process(t, valid.ID), "decided already: nothing to do")

	for status, want := range map[string]float64{"valid": 1, "corrupt": 1, "missing": 0, "rejected": 0} {
		require.Equal(t, want, counted(t, hs.metrics.VersionsValidated.WithLabelValues(status)), status)
	}
}

// counted is a counter's value.
func counted(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
