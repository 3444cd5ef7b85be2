package ingest

import (
	"context"
	"fmt"
	"strings"

	"github.com/labelq/labelq/internal/db"
)

// Linked is what became of a key Link was given: the dataset file and version
// it became, or why it did not become one (Reason, nothing written for it).
type Linked struct {
	FileID, VersionID int64
	Reason            string
}

// Link registers keys of st that an import names without listing them (the
// data URLs of Label Studio tasks): each new key becomes a dataset file (named
// by the key relative to the storage's prefix, as a sync names it) and its
// version 1, read where it lies, with its file:validate task, and a link
// marked unlisted, since its ETag and size are not known. The first sync or
// notification that lists the key adopts what it lists instead of making a
// second version (see apply), so importing a storage's keys and syncing it
// later never makes a key two files.
//
// Link only creates: a key already linked (synced, notified or imported
// before), refused by the storage's key filter, given another file type by
// its rules, unusable as a file name, or whose name a file of the project
// already has, gets its Reason and nothing is written for it. keys must be
// distinct. It runs in the caller's transaction under the storage's lock, like
// Page and Events, and the result has one entry per key.
func Link(ctx context.Context, q *db.Queries, st db.Storage, p *Plan, keys []string) (map[string]Linked, error) {
	out := make(map[string]Linked, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	if err := q.StorageLockXact(ctx, st.ID); err != nil {
		return nil, fmt.Errorf("lock storage %d: %w", st.ID, err)
	}
	links, err := q.StorageLinkListKeys(ctx, db.StorageLinkListKeysParams{StorageID: st.ID, Keys: keys})
	if err != nil {
		return nil, fmt.Errorf("read the links of storage %d: %w", st.ID, err)
	}
	linked := make(map[string]db.StorageLink, len(links))
	for _, l := range links {
		linked[l.Key] = l
	}
	var fresh []pending
	for _, key := range keys {
		rel, ok := strings.CutPrefix(key, st.Prefix)
		if !ok {
			out[key] = Linked{Reason: fmt.Sprintf("the key is not under the storage's prefix %q", st.Prefix)}
			continue
		}
		if reason := unusable(Object{Key: key}, rel); reason != "" {
			out[key] = Linked{Reason: reason}
			continue
		}
		if l, ok := linked[key]; ok {
			out[key] = Linked{Reason: fmt.Sprintf("the key is already registered as file %d (version %d); an import creates new files only: set that file's job result with PATCH /v1/jobs/{id}",
				l.FileID, l.VersionID)}
			continue
		}
		if !p.admits(rel) {
			out[key] = Linked{Reason: "the storage's key filter leaves the key out"}
			continue
		}
		ft, job := p.classify(rel)
		if ft != db.FileTypeDataset {
			out[key] = Linked{Reason: fmt.Sprintf("the storage's rules give the key file type %s; an imported task's data is a dataset file", ft)}
			continue
		}
		fresh = append(fresh, pending{obj: Object{Key: key}, name: rel, fileType: ft, job: job})
	}
	if len(fresh) == 0 {
		return out, nil
	}

	nf := make([]NewFile, len(fresh))
	for i, f := range fresh {
		nf[i] = NewFile{Name: f.name, FileType: f.fileType}
	}
	ids, err := CreateFiles(ctx, q, st.OrgID, st.ProjectID, nf)
	if err != nil {
		return nil, err
	}
	kept := fresh[:0]
	for _, f := range fresh {
		if id, ok := ids[f.name]; ok {
			f.fileID = id
			kept = append(kept, f)
		} else {
			out[f.obj.Key] = Linked{Reason: fmt.Sprintf("the project already has a file named %q that is not from this storage", f.name)}
		}
	}
	fresh = kept
	if len(fresh) == 0 {
		return out, nil
	}

	sid := st.ID
	vs := make([]NewVersion, len(fresh))
	for i, f := range fresh {
		// No expected size: the key was named, not listed.
		vs[i] = NewVersion{OrgID: st.OrgID, ProjectID: st.ProjectID, FileID: f.fileID, StorageID: &sid, StoragePath: f.obj.Key, Job: f.job}
	}
	made, err := CreateVersions(ctx, q, vs)
	if err != nil {
		return nil, err
	}
	lp := db.StorageLinksInsertUnlistedParams{
		StorageID: st.ID, OrgID: st.OrgID, ProjectID: st.ProjectID,
		Keys: make([]string, len(fresh)), FileIds: make([]int64, len(fresh)), VersionIds: make([]int64, len(fresh)),
	}
	for i, f := range fresh {
		lp.Keys[i], lp.FileIds[i], lp.VersionIds[i] = f.obj.Key, f.fileID, made[i].ID
		out[f.obj.Key] = Linked{FileID: f.fileID, VersionID: made[i].ID}
	}
	if err := q.StorageLinksInsertUnlisted(ctx, lp); err != nil {
		return nil, fmt.Errorf("link %d imported keys of storage %d: %w", len(fresh), st.ID, err)
	}
	return out, nil
}
