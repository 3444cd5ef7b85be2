package formats_test

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/formats"
	"github.com/labelq/labelq/internal/labelconfig"
)

// A Label Studio JSON export (the shape of its "JSON" export: tasks with
// data, annotations and predictions, with the fields Label Studio adds).
const labelStudioExport = `[
  {
    "id": 1,
    "annotations": [
      {
        "id": 11, "completed_by": 2, "was_cancelled": false, "ground_truth": false,
        "result": [
          {"original_width": 1280, "original_height": 720, "image_rotation": 0,
           "value": {"x": 12.5, "y": 8.333333333333334, "width": 40.15625, "height": 50, "rotation": 0, "rectanglelabels": ["Car"]},
           "id": "w_8sTM8fxU", "from_name": "label", "to_name": "image", "type": "rectanglelabels", "origin": "manual"},
          {"original_width": 1280, "original_height": 720, "image_rotation": 0,
           "value": {"points": [[10.1, 20.2], [30.3, 20.2], [20.25, 45.5]], "closed": true, "polygonlabels": ["Road"]},
           "id": "Qx0aG4m1Nf", "from_name": "outline", "to_name": "image", "type": "polygonlabels", "origin": "manual"},
          {"value": {"choices": ["Sunny"]}, "id": "jzGk6YaW0b", "from_name": "weather", "to_name": "image", "type": "choices", "origin": "manual"},
          {"value": {"text": ["a red car"]}, "id": "t8a2", "from_name": "caption", "to_name": "image", "type": "textarea", "origin": "manual"}
        ],
        "created_at": "2024-05-06T07:08:09.123456Z", "updated_at": "2024-05-06T07:08:09.123456Z", "lead_time": 12.5,
        "prediction": {}, "result_count": 0, "task": 1, "parent_prediction": null, "parent_annotation": null
      },
      {
        "id": 12, "completed_by": 3,
        "result": [
          {"original_width": 1280, "original_height": 720, "image_rotation": 0,
           "value": {"x": 0, "y": 0, "width": 100, "height": 100, "rotation": 0, "rectanglelabels": ["Airplane"]},
           "id": "b2", "from_name": "label", "to_name": "image", "type": "rectanglelabels", "origin": "manual"}
        ],
        "created_at": "2024-05-07T00:00:00Z"
      }
    ],
    "predictions": [
      {"id": 5, "model_version": "yolov8n", "created_ago": "3 days", "score": 0.87,
       "result": [
         {"original_width": 1280, "original_height": 720, "value": {"x": 12, "y": 8, "width": 40, "height": 50, "rotation": 0, "rectanglelabels": ["Car"]},
          "id": "p1", "from_name": "label", "to_name": "image", "type": "rectanglelabels", "score": 0.91}
       ]},
      {"id": 6, "model_version": "gpt-4o", "score": null, "result": []}
    ],
    "data": {"image": "/data/upload/1/car.jpg"},
    "meta": {}, "created_at": "2024-05-01T00:00:00Z", "updated_at": "2024-05-07T00:00:00Z", "inner_id": 1, "project": 3
  }
]`

// lsTask is what an importer reads of a Label Studio task.
type lsTask struct {
	ID          int64             `json:"id"`
	Data        map[string]string `json:"data"`
	Annotations []struct {
		ID          int64           `json:"id"`
		CompletedBy int64           `json:"completed_by"`
		Result      json.RawMessage `json:"result"`
		CreatedAt   time.Time       `json:"created_at"`
	} `json:"annotations"`
	Predictions []struct {
		ModelVersion string          `json:"model_version"`
		Score        *float64        `json:"score"`
		Result       json.RawMessage `json:"result"`
	} `json:"predictions"`
	Meta map[string]any `json:"meta"`
}

// fromLabelStudio reads Label Studio tasks into labelq tasks, parsing every
// result as labelq stores them.
func fromLabelStudio(t *testing.T, cfg labelconfig.Config, raw []byte) ([]lsTask, []formats.Task) {
	t.Helper()
	var in []lsTask
	require.NoError(t, json.Unmarshal(raw, &in))
	out := make([]formats.Task, len(in))
	for i, lt := range in {
		task := formats.Task{ID: lt.ID, FileID: 100 + lt.ID, VersionID: 200 + lt.ID, Filename: "car.jpg", StorageKey: "k/car.jpg"}
		for _, a := range lt.Annotations {
			regions, err := labelconfig.ParseResult(a.Result)
			require.NoError(t, err)
			require.NoError(t, cfg.Validate(regions, ""), "annotation %d", a.ID)
			task.Annotations = append(task.Annotations, formats.Annotation{ID: a.ID, CompletedBy: a.CompletedBy, Result: regions, CreatedAt: a.CreatedAt})
		}
		for _, p := range lt.Predictions {
			regions, err := labelconfig.ParseResult(p.Result)
			require.NoError(t, err)
			task.Predictions = append(task.Predictions, formats.Prediction{ModelVersion: p.ModelVersion, Score: p.Score, Result: regions})
		}
		out[i] = task
	}
	return in, out
}

func toLabelStudio(t *testing.T, cfg labelconfig.Config, tasks []formats.Task) []byte {
	t.Helper()
	w := newMemWriter()
	conv, err := formats.New("label_studio", cfg, w)
	require.NoError(t, err)
	for _, task := range tasks {
		require.NoError(t, conv.Add(task))
	}
	require.NoError(t, conv.Close())
	require.Equal(t, []string{formats.ResultJSON}, w.names)
	return w.bytes(t, formats.ResultJSON)
}

func TestLabelStudioRoundTripGivesTheSameRegions(t *testing.T) {
	cfg := config(t, detectionConfig)
	in, tasks := fromLabelStudio(t, cfg, []byte(labelStudioExport))
	out := toLabelStudio(t, cfg, tasks)
	back, _ := fromLabelStudio(t, cfg, out)

	require.Len(t, back, 1)
	got, want := back[0], in[0]
	require.Equal(t, want.ID, got.ID)
	require.Equal(t, map[string]string{"image": "images/car.jpg"}, got.Data, "data points at the image in the archive")
	require.Len(t, got.Annotations, 2, "every annotation")
	for i := range want.Annotations {
		require.Equal(t, want.Annotations[i].ID, got.Annotations[i].ID)
		require.Equal(t, want.Annotations[i].CompletedBy, got.Annotations[i].CompletedBy)
		require.True(t, want.Annotations[i].CreatedAt.Equal(got.Annotations[i].CreatedAt))
		require.JSONEq(t, string(want.Annotations[i].Result), string(got.Annotations[i].Result), "annotation %d: the same regions, field for field", i)
	}
	require.Len(t, got.Predictions, 2)
	for i := range want.Predictions {
		require.Equal(t, want.Predictions[i].ModelVersion, got.Predictions[i].ModelVersion)
		require.Equal(t, want.Predictions[i].Score, got.Predictions[i].Score)
		require.JSONEq(t, string(want.Predictions[i].Result), string(got.Predictions[i].Result), "prediction %d", i)
	}
	require.Equal(t, map[string]any{"file_id": 101.0, "version_id": 201.0, "filename": "car.jpg", "storage_key": "k/car.jpg"}, got.Meta)
}

func TestLabelStudioRoundTripOfAGeneratedSet(t *testing.T) {
	cfg := config(t, detectionConfig)
	rng := rand.New(rand.NewPCG(13, 14))
	var tasks []formats.Task
	for i := range 300 {
		task, _ := genImageTask(rng, i, rng.IntN(12), i%2 == 0)
		score := rng.Float64()
		task.Predictions = []formats.Prediction{{ModelVersion: "gpt-4o", Score: &score, Result: task.Annotations[0].Result}}
		tasks = append(tasks, task)
	}
	tasks = append(tasks, formats.Task{ID: 99999, Filename: "empty.jpg"})
	out := toLabelStudio(t, cfg, tasks)

	var back []struct {
		ID          int64 `json:"id"`
		Annotations []struct {
			ID     int64           `json:"id"`
			Result json.RawMessage `json:"result"`
		} `json:"annotations"`
		Predictions []struct {
			Score  float64         `json:"score"`
			Result json.RawMessage `json:"result"`
		} `json:"predictions"`
	}
	require.NoError(t, json.Unmarshal(out, &back))
	require.Len(t, back, len(tasks))
	for i, task := range tasks {
		require.Equal(t, task.ID, back[i].ID)
		require.Len(t, back[i].Annotations, len(task.Annotations))
		for j, a := range task.Annotations {
			regions, err := labelconfig.ParseResult(back[i].Annotations[j].Result)
			require.NoError(t, err)
			require.Equal(t, len(a.Result), len(regions))
			for k := range regions {
				want, _ := json.Marshal(a.Result[k])
				got, _ := json.Marshal(regions[k])
				require.JSONEq(t, string(want), string(got), "task %d annotation %d region %d", i, j, k)
			}
			require.NoError(t, cfg.Validate(regions, ""))
		}
		if len(task.Predictions) > 0 {
			require.Equal(t, *task.Predictions[0].Score, back[i].Predictions[0].Score)
		}
	}
	require.Empty(t, back[len(back)-1].Annotations)
	require.NotNil(t, back[len(back)-1].Annotations, "an empty list, not null")

	// No tasks is an empty list.
	require.JSONEq(t, `[]`, string(toLabelStudio(t, cfg, nil)))
}
