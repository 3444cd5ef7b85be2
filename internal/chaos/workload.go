package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/testenv"
)

// client calls the API, retrying through outages (a Postgres restart answers 5xx, a
// killed API refuses connections). POSTs carry an Idempotency-Key so a retry of a
// request whose answer was lost cannot queue a second task.
type client struct {
	base  string
	token string
	http  *http.Client
}

type apiError struct {
	Status int
	Body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("API %d: %s", e.Status, e.Body) }

func (c *client) call(ctx context.Context, method, path string, body any, idemKey string, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(raw))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if idemKey != "" {
			req.Header.Set("Idempotency-Key", idemKey)
		}
		resp, err := c.http.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if rerr != nil {
				return fmt.Errorf("%s %s: read the answer: %w", method, path, rerr)
			}
			if resp.StatusCode < 300 {
				if out != nil {
					return json.Unmarshal(b, out)
				}
				return nil
			}
			if resp.StatusCode < 500 {
				return &apiError{resp.StatusCode, string(b)}
			}
			err = &apiError{resp.StatusCode, string(b)}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s %s: still failing after 3 minutes: %w", method, path, err)
		}
		time.Sleep(time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond)
	}
}

// Kind is what an upload is meant to exercise.
type Kind string

const (
	KindText        Kind = "text"        // valid, pre-annotated
	KindDuplicate   Kind = "duplicate"   // same bytes as an earlier text: duplicate_of, cache hit
	KindCorrupt     Kind = "corrupt"     // declared SHA-256 wrong
	KindUnsupported Kind = "unsupported" // a valid ZIP: pre-annotation skipped
	KindExecutable  Kind = "executable"  // ELF declared as JPEG: rejected
	KindMissing     Kind = "missing"     // registered, never uploaded
)

// Upload is one registered version and what its outcome must be.
type Upload struct {
	Kind      Kind
	FileID    int64
	VersionID int64
	Want      string
}

func kindOf(i int) Kind {
	switch i % 20 {
	case 5, 15:
		return KindDuplicate
	case 7:
		return KindCorrupt
	case 11:
		return KindUnsupported
	case 13:
		return KindExecutable
	case 19:
		return KindMissing
	}
	return KindText
}

func elf() []byte {
	b := make([]byte, 128)
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	b[16], b[18] = 2, 0x3e
	return b
}

func zipBytes(i int) []byte {
	var buf bytes.Buffer
	zw := zipWriter(&buf)
	w, _ := zw.Create(fmt.Sprintf("item-%d.txt", i))
	fmt.Fprintf(w, "zipped item %d\n", i)
	_ = zw.Close()
	return buf.Bytes()
}

// upload puts the bytes in the bucket and registers the version through the API.
func (r *run) upload(ctx context.Context, i int) (Upload, error) {
	kind := kindOf(i)
	var f struct {
		ID int64 `json:"id"`
	}
	if err := r.api.call(ctx, "POST", fmt.Sprintf("/v1/projects/%d/files", r.projectID),
		map[string]any{"name": fmt.Sprintf("item-%05d.dat", i)}, fmt.Sprintf("file-%d", i), &f); err != nil {
		return Upload{}, err
	}
	var content []byte
	mime := "text/plain"
	want := "valid"
	switch kind {
	case KindText, KindCorrupt:
		content = []byte(fmt.Sprintf("Sentence %d: the quick brown fox %d jumps over the lazy dog.\n", i, i*7))
	case KindDuplicate:
		j := i - 5
		content = []byte(fmt.Sprintf("Sentence %d: the quick brown fox %d jumps over the lazy dog.\n", j, j*7))
	case KindUnsupported:
		content, mime = zipBytes(i), "application/zip"
	case KindExecutable:
		content, mime, want = elf(), "image/jpeg", "rejected"
	case KindMissing:
		want = "missing"
	}
	sum := testenv.SHA256Hex(content)
	if kind == KindCorrupt {
		sum, want = testenv.SHA256Hex([]byte("something else entirely")), "corrupt"
	}
	key := fmt.Sprintf("orgs/%d/projects/%d/files/%d/v1", r.orgID, r.projectID, f.ID)
	if kind != KindMissing {
		if err := r.put(ctx, key, content); err != nil {
			return Upload{}, err
		}
	}
	var v struct {
		ID int64 `json:"id"`
	}
	body := map[string]any{"storage_path": key, "mime_type": mime}
	if kind != KindMissing {
		body["sha256"], body["size"] = sum, len(content)
	}
	if err := r.api.call(ctx, "POST", fmt.Sprintf("/v1/files/%d/versions", f.ID), body, fmt.Sprintf("version-%d", i), &v); err != nil {
		return Upload{}, err
	}
	return Upload{Kind: kind, FileID: f.ID, VersionID: v.ID, Want: want}, nil
}

// put retries through a MinIO outage: the platform's upload would too.
func (r *run) put(ctx context.Context, key string, content []byte) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		_, err := r.env.Store.Client.PutObject(ctx, r.env.Bucket, key, bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{})
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}
