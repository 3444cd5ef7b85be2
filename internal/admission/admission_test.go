package admission

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in      string
		on      bool
		limits  map[string]int
		wantErr bool
	}{
		{in: "0"},
		{in: "off"},
		{in: ""},
		{in: Default, on: true, limits: map[string]int{
			"file:validate": 200, "file:preannotate": 10, "project:match": 20, "project:export": 4, "storage:sync": 4,
			"job:score": 200, "project:consensus": 4, "webhook:deliver": 0, "maintenance:other": 100,
		}},
		{in: "validate=5, file:validate=7 ,default=0", on: true, limits: map[string]int{"file:validate": 7, "file:preannotate": 0}},
		{in: "deliver=0,default=0", limits: map[string]int{"webhook:deliver": 0}},
		{in: "validate", wantErr: true},
		{in: "validate=-1", wantErr: true},
		{in: "validate=x", wantErr: true},
		{in: "Validate=1", wantErr: true},
		{in: "validate=1,validate=2", wantErr: true},
	} {
		t.Run(tt.in, func(t *testing.T) {
			a, err := Parse(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.on, a.On())
			for kind, n := range tt.limits {
				require.Equal(t, n, a.Limit(kind), kind)
			}
			again, err := Parse(a.String())
			require.NoError(t, err)
			require.Equal(t, a.On(), again.On())
			for kind := range tt.limits {
				require.Equal(t, a.Limit(kind), again.Limit(kind), "String() round-trips %s", kind)
			}
		})
	}
}
