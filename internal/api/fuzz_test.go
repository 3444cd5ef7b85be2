package api

import (
	"errors"
	"testing"
)

// FuzzRequestDecoders feeds arbitrary bodies to every request decoder and validator.
// Nothing may panic, and every refusal is a client error (4xx problem), never a 5xx.
// `go test` replays the seeds; `make fuzz` explores further.
func FuzzRequestDecoders(f *testing.F) {
	for _, seed := range []string{
		`{}`, `[]`, `null`, `{"name": "p"}`, `{"name": 1}`, `{"name": "p", "annotation_schema": {"type": "object"}}`,
		`{"annotation_schema": {"$ref": "#/nope"}}`, `{"allowed_content_types": {"dataset": ["image/*", ";;"]}}`,
		`{"email": "a@b", "role": "annotator", "language_expertise": {"en": 9}, "availability": {"monday": ["25:00-26:00"], "timezone": 3}}`,
		`{"availability": {"timezone": "../../etc/passwd"}}`, `{"storage_path": "orgs/1/../../x", "sha256": "ZZ", "size": -5, "mime_type": "a/b; c"}`,
		`{"cron_spec": "* * * * * * *", "timezone": "Local"}`, `{"cron_spec": "@every 1s"}`, `{"options": {"include_files": "yes"}}`,
		`{"due_date": "yesterday"}`, `{"review_status": "approved", "result_version_id": -1}`, "{\"name\": \"\xff\xfe\"}", `{"a":1} trailing`,
		`{"name": "` + string(make([]byte, 300)) + `"}`, `{"llm_max_tokens": 99999999999}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(err error) {
			if err == nil {
				return
			}
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("decoder returned a non-problem error %T: %v", err, err)
			}
			if p.Status < 400 || p.Status >= 500 {
				t.Fatalf("decoder answered %d for a client body", p.Status)
			}
		}
		var pi ProjectInput
		if err := decodeJSON(body, &pi); err == nil {
			check(pi.validate(true))
			check(pi.validate(false))
		} else {
			check(err)
		}
		var ui UserInput
		if err := decodeJSON(body, &ui); err == nil {
			check(ui.validate(true))
			check(ui.validate(false))
		} else {
			check(err)
		}
		var si ScheduleInput
		if err := decodeJSON(body, &si); err == nil {
			check(si.validate(true))
		} else {
			check(err)
		}
		for _, dst := range []any{&FileInput{}, &VersionInput{}, &JobInput{}, &ExportInput{}} {
			check(decodeJSON(body, dst))
		}
		var vi VersionInput
		if decodeJSON(body, &vi) == nil {
			var v Validation
			checkStorageKey(&v, "storage_path", vi.StoragePath, 1)
			normalizeSHA256(&v, "sha256", vi.SHA256)
			normalizeMIME(&v, "mime_type", vi.MIMEType)
			check(v.Err())
		}
	})
}
