package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
)

var seq atomic.Int64

func next() int64 { return seq.Add(1) }

func ptr[T any](v T) *T { return &v }

// Org creates an organization.
func (p *PG) Org(t testing.TB) db.Organization {
	t.Helper()
	o, err := p.Q.OrganizationCreate(context.Background(), fmt.Sprintf("org-%d-%s", next(), randHex(3)))
	if err != nil {
		t.Fatalf("testenv: create org: %v", err)
	}
	return o
}

// UserOpt adjusts a user before it is created.
type UserOpt func(*db.UserCreateParams)

// Annotator makes a usable annotator: available Monday to Friday, English at 4.
func Annotator(p *db.UserCreateParams) {
	p.Role = db.UserRoleAnnotator
	p.Availability = json.RawMessage(`{"timezone":"UTC","monday":["09:00-17:00"],"tuesday":["09:00-17:00"],"wednesday":["09:00-17:00"],"thursday":["09:00-17:00"],"friday":["09:00-17:00"]}`)
	p.LanguageExpertise = json.RawMessage(`{"en": 4}`)
	p.SkillScore = ptr(0.8)
	p.QaApprovalRate = ptr(0.9)
	p.MaxActiveJobs = 5
}

// User creates a user in org (role org_pm unless an option says otherwise).
func (p *PG) User(t testing.TB, orgID int64, opts ...UserOpt) db.User {
	t.Helper()
	n := next()
	arg := db.UserCreateParams{
		OrgID: orgID, Email: fmt.Sprintf("user%d-%s@example.test", n, randHex(3)), Name: fmt.Sprintf("User %d", n),
		Role: db.UserRoleOrgPm, Availability: json.RawMessage(`{}`), LanguageExpertise: json.RawMessage(`{}`),
		MaxActiveJobs: 5, IsActive: true,
	}
	for _, o := range opts {
		o(&arg)
	}
	u, err := p.Q.UserCreate(context.Background(), arg)
	if err != nil {
		t.Fatalf("testenv: create user: %v", err)
	}
	return u
}

// ProjectOpt adjusts a project before it is created.
type ProjectOpt func(*db.ProjectCreateParams)

// Project creates a project in org with labelq's defaults.
func (p *PG) Project(t testing.TB, orgID int64, opts ...ProjectOpt) db.Project {
	t.Helper()
	arg := db.ProjectCreateParams{
		OrgID: orgID, Name: fmt.Sprintf("project-%d", next()), LlmMaxTokens: 1024, MinLanguageProficiency: 3.0,
	}
	for _, o := range opts {
		o(&arg)
	}
	pr, err := p.Q.ProjectCreate(context.Background(), arg)
	if err != nil {
		t.Fatalf("testenv: create project: %v", err)
	}
	return pr
}

// File creates a dataset file in project.
func (p *PG) File(t testing.TB, pr db.Project, name string) db.File {
	t.Helper()
	if name == "" {
		name = fmt.Sprintf("file-%d.txt", next())
	}
	f, err := p.Q.FileCreate(context.Background(), db.FileCreateParams{
		OrgID: pr.OrgID, ProjectID: pr.ID, Name: name, FileType: db.FileTypeDataset,
	})
	if err != nil {
		t.Fatalf("testenv: create file: %v", err)
	}
	return f
}

// Declared is what an uploader may declare when registering a version.
type Declared struct {
	SHA256 *string
	Size   *int64
	MIME   *string
}

// SHA256Hex is the hex SHA-256 of b.
func SHA256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Upload puts content in the test's bucket and registers it as the file's next
// version (pending validation), in one line.
func (p *PG) Upload(t testing.TB, s3 *S3, f db.File, content []byte, decl Declared) db.FileVersion {
	t.Helper()
	key := fmt.Sprintf("uploads/%d/%d/%s", f.ProjectID, f.ID, randHex(6))
	s3.Put(t, key, content, minio.PutObjectOptions{})
	return p.RegisterVersion(t, f, key, decl)
}

// RegisterVersion registers an object already in the bucket as the file's next version.
func (p *PG) RegisterVersion(t testing.TB, f db.File, key string, decl Declared) db.FileVersion {
	t.Helper()
	var v db.FileVersion
	err := database.Tx(context.Background(), p.Pool, func(q *db.Queries, _ pgx.Tx) error {
		if _, err := q.FileGetForUpdate(context.Background(), f.ID); err != nil {
			return err
		}
		var err error
		v, err = q.FileVersionCreate(context.Background(), db.FileVersionCreateParams{
			OrgID: f.OrgID, ProjectID: f.ProjectID, FileID: f.ID, StoragePath: key,
			ExpectedSha256: decl.SHA256, ExpectedSize: decl.Size, ExpectedMimeType: decl.MIME,
		})
		return err
	})
	if err != nil {
		t.Fatalf("testenv: register version: %v", err)
	}
	return v
}
