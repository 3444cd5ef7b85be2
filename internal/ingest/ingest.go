// Package ingest registers objects of a bucket as files and versions in bulk: a
// page of a storage sync, the keys of a bucket notification and the batch
// registration API all come through here, in the caller's transaction, with one
// multi-row statement per table (files, file_versions, storage_links, outbox)
// whatever the number of objects.
//
// A storage's keys are linked, not copied: storage_links holds one row per
// (storage, key) ever registered, with the ETag and size last registered. A key
// seen for the first time becomes a file and its version 1; a key whose ETag or
// size changed becomes its file's next version; an unchanged key writes nothing
// at all. Keys gone from the bucket are marked gone (and, when the storage says
// so, their files archived). The link's primary key is what makes "never a file
// twice" hold for a sync killed mid-page, a resumed run and a notification
// racing a sync; a per-storage advisory lock keeps the last two from
// interleaving.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/labelq/labelq/internal/db"
)

// Object is one listed (or notified) object.
type Object struct {
	Key  string
	ETag string
	Size int64
}

// Skip is a key that could not be registered, with the reason.
type Skip struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// MaxSkips caps the skipped keys a Counts (and a sync run) keeps with their
// reason; all of them are counted.
const MaxSkips = 100

// MaxKeyBytes is the longest key that can be a file name (and S3's own limit).
const MaxKeyBytes = 1024

// maxETag is storage_links.etag's limit.
const maxETag = 256

// Counts is what a page (or a notification) did. Listed = New + Changed +
// Unchanged + Filtered + Skipped; Gone counts links found gone, which are not
// listed.
type Counts struct {
	Listed, New, Changed, Unchanged, Filtered, Gone, Skipped int64
	// Skips are the first MaxSkips skipped keys.
	Skips []Skip
}

// Add adds o to c, keeping at most MaxSkips skips.
func (c *Counts) Add(o Counts) {
	c.Listed += o.Listed
	c.New += o.New
	c.Changed += o.Changed
	c.Unchanged += o.Unchanged
	c.Filtered += o.Filtered
	c.Gone += o.Gone
	c.Skipped += o.Skipped
	for _, s := range o.Skips {
		if len(c.Skips) >= MaxSkips {
			break
		}
		c.Skips = append(c.Skips, s)
	}
}

func (c *Counts) skip(key, reason string) {
	c.Skipped++
	if len(c.Skips) < MaxSkips {
		c.Skips = append(c.Skips, Skip{Key: key, Reason: reason})
	}
}

// ErrUnordered says a page's keys are not in listing order after its start.
var ErrUnordered = errors.New("keys are not in ascending byte order after the page's start")

// Page registers one page of a listing of st: objs are the keys after after,
// in ascending byte order (as ListObjectsV2 returns them). Links between after
// and the page's last key (to the end of the bucket when last is set) that
// objs do not list are gone. It runs in the caller's transaction (the sync run's
// page), under the storage's advisory lock.
func Page(ctx context.Context, q *db.Queries, st db.Storage, p *Plan, after string, objs []Object, last bool) (Counts, error) {
	prev := after
	for i, o := range objs {
		if (i > 0 || after != "") && o.Key <= prev {
			return Counts{}, fmt.Errorf("storage %d page after %q: %q: %w", st.ID, after, o.Key, ErrUnordered)
		}
		prev = o.Key
	}
	if err := q.StorageLockXact(ctx, st.ID); err != nil {
		return Counts{}, fmt.Errorf("lock storage %d: %w", st.ID, err)
	}
	var links []db.StorageLink
	var err error
	switch {
	case last:
		links, err = q.StorageLinkListFrom(ctx, db.StorageLinkListFromParams{StorageID: st.ID, After: after})
	case len(objs) > 0:
		links, err = q.StorageLinkListRange(ctx, db.StorageLinkListRangeParams{StorageID: st.ID, After: after, Upto: objs[len(objs)-1].Key})
	default:
		return Counts{}, nil
	}
	if err != nil {
		return Counts{}, fmt.Errorf("read the links of storage %d after %q: %w", st.ID, after, err)
	}
	listed := make(map[string]bool, len(objs))
	for _, o := range objs {
		listed[o.Key] = true
	}
	var gone []string
	for _, l := range links {
		if !listed[l.Key] && l.GoneAt == nil {
			gone = append(gone, l.Key)
		}
	}
	return apply(ctx, q, st, p, objs, links, gone)
}

// Events registers the objects of a bucket notification: created are
// registered exactly as listed keys are, and removed keys are gone. Replaying a
// notification writes nothing new. A key in both lists ends gone.
func Events(ctx context.Context, q *db.Queries, st db.Storage, p *Plan, created []Object, removed []string) (Counts, error) {
	// The last event of a key wins within created; keys in key order.
	byKey := make(map[string]Object, len(created))
	for _, o := range created {
		byKey[o.Key] = o
	}
	objs := make([]Object, 0, len(byKey))
	for _, o := range byKey {
		objs = append(objs, o)
	}
	slices.SortFunc(objs, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
	keys := make([]string, 0, len(objs)+len(removed))
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	keys = append(keys, removed...)
	if len(keys) == 0 {
		return Counts{}, nil
	}
	if err := q.StorageLockXact(ctx, st.ID); err != nil {
		return Counts{}, fmt.Errorf("lock storage %d: %w", st.ID, err)
	}
	links, err := q.StorageLinkListKeys(ctx, db.StorageLinkListKeysParams{StorageID: st.ID, Keys: keys})
	if err != nil {
		return Counts{}, fmt.Errorf("read the links of storage %d: %w", st.ID, err)
	}
	// Removed keys with a link are gone, also when created earlier in this
	// message: apply registers created first, then marks the gone ones.
	var gone []string
	seen := map[string]bool{}
	for _, k := range removed {
		if !seen[k] {
			seen[k] = true
			gone = append(gone, k)
		}
	}
	return apply(ctx, q, st, p, objs, links, gone)
}

// pending is one key that gets a new version.
type pending struct {
	obj      Object
	fileID   int64 // 0 for a new file
	name     string
	fileType db.FileType
	job      JobAttrs
}

// apply registers objs against their links and marks the gone keys.
func apply(ctx context.Context, q *db.Queries, st db.Storage, p *Plan, objs []Object, links []db.StorageLink, gone []string) (Counts, error) {
	c := Counts{Listed: int64(len(objs))}
	byKey := make(map[string]db.StorageLink, len(links))
	for _, l := range links {
		byKey[l.Key] = l
	}
	deleted, err := archived(ctx, q, st, objs, byKey)
	if err != nil {
		return c, err
	}
	var fresh, changed []pending
	var back []string     // links gone and now listed with the same object
	var restore []pending // keys of archived files, listed again
	var adopt []Object    // keys an import linked without a listing, listed now
	for _, o := range objs {
		o.ETag = strings.Trim(o.ETag, `"`)
		if strings.HasSuffix(o.Key, "/") {
			c.Filtered++ // a folder marker, not a file
			continue
		}
		rel, ok := strings.CutPrefix(o.Key, st.Prefix)
		if !ok {
			c.Filtered++ // not under the storage's prefix (a notification for the whole bucket)
			continue
		}
		if reason := unusable(o, rel); reason != "" {
			c.skip(o.Key, reason)
			continue
		}
		if !p.admits(rel) {
			c.Filtered++
			continue
		}
		ft, job := p.classify(rel)
		pd := pending{obj: o, name: rel, fileType: ft, job: job}
		l, known := byKey[o.Key]
		same := known && l.Etag == o.ETag && l.SizeBytes == o.Size
		fileDeleted := known && deleted[l.FileID]
		switch {
		case !known:
			fresh = append(fresh, pd)
		case fileDeleted && l.GoneAt != nil:
			pd.fileID = l.FileID
			restore = append(restore, pd)
		case fileDeleted && same:
			c.Unchanged++ // deleted in labelq, unchanged in the bucket: nothing to do
		case fileDeleted:
			c.skip(o.Key, fmt.Sprintf("file %d of this key was deleted in labelq; its new content is not registered", l.FileID))
		case l.Unlisted && l.GoneAt == nil:
			// Imported (Link): the version was registered for this key without its
			// ETag and size; the listing supplies them. One gone since is listed
			// as changed, since its version was validated without the object.
			adopt = append(adopt, o)
			c.Unchanged++
		case same && l.GoneAt != nil:
			back = append(back, o.Key)
			c.Unchanged++
		case same:
			c.Unchanged++
		default:
			pd.fileID = l.FileID
			changed = append(changed, pd)
		}
	}

	if len(restore) > 0 {
		ids := make([]int64, len(restore))
		for i, r := range restore {
			ids[i] = r.fileID
		}
		got, err := q.FilesRestoreMany(ctx, ids)
		if err != nil {
			return c, fmt.Errorf("restore %d archived files of storage %d: %w", len(ids), st.ID, err)
		}
		restored := make(map[int64]bool, len(got))
		for _, id := range got {
			restored[id] = true
		}
		for _, r := range restore {
			l := byKey[r.obj.Key]
			switch {
			case !restored[r.fileID]:
				c.skip(r.obj.Key, fmt.Sprintf("the key is back in the bucket, but its archived file %d cannot be restored: another file of the project is named %q", r.fileID, r.name))
			case l.Etag == r.obj.ETag && l.SizeBytes == r.obj.Size:
				back = append(back, r.obj.Key)
				c.Unchanged++
			default:
				changed = append(changed, r)
			}
		}
	}

	if len(fresh) > 0 {
		nf := make([]NewFile, len(fresh))
		for i, f := range fresh {
			nf[i] = NewFile{Name: f.name, FileType: f.fileType}
		}
		ids, err := CreateFiles(ctx, q, st.OrgID, st.ProjectID, nf)
		if err != nil {
			return c, err
		}
		var taken []string
		kept := fresh[:0]
		for _, f := range fresh {
			if id, ok := ids[f.name]; ok {
				f.fileID = id
				kept = append(kept, f)
			} else {
				taken = append(taken, f.name)
			}
		}
		if len(taken) > 0 {
			owners, err := q.FilesOwnersOfNames(ctx, db.FilesOwnersOfNamesParams{ProjectID: st.ProjectID, Names: taken})
			if err != nil {
				return c, fmt.Errorf("read the files named like keys of storage %d: %w", st.ID, err)
			}
			owner := make(map[string]int64, len(owners))
			for _, o := range owners {
				owner[o.Name] = o.ID
			}
			for _, name := range taken {
				key := st.Prefix + name
				if id, ok := owner[name]; ok {
					c.skip(key, fmt.Sprintf("the project already has a file named %q (file %d) that is not from this storage", name, id))
				} else {
					c.skip(key, fmt.Sprintf("the project already has a file named %q that is not from this storage", name))
				}
			}
		}
		fresh = kept
	}

	if len(changed) > 0 {
		ids := make([]int64, len(changed))
		for i, ch := range changed {
			ids[i] = ch.fileID
		}
		if _, err := q.FilesLockMany(ctx, ids); err != nil {
			return c, fmt.Errorf("lock %d files of storage %d: %w", len(ids), st.ID, err)
		}
	}

	all := slices.Concat(fresh, changed)
	if len(all) > 0 {
		sid := st.ID
		vs := make([]NewVersion, len(all))
		for i, pd := range all {
			size := pd.obj.Size
			vs[i] = NewVersion{
				OrgID: st.OrgID, ProjectID: st.ProjectID, FileID: pd.fileID, StorageID: &sid,
				StoragePath: pd.obj.Key, ExpectedSize: &size, Job: pd.job,
			}
		}
		made, err := CreateVersions(ctx, q, vs)
		if err != nil {
			return c, err
		}
		lp := db.StorageLinksUpsertParams{
			StorageID: st.ID, OrgID: st.OrgID, ProjectID: st.ProjectID,
			Keys: make([]string, len(all)), FileIds: make([]int64, len(all)), VersionIds: make([]int64, len(all)),
			Etags: make([]string, len(all)), Sizes: make([]int64, len(all)),
		}
		for i, pd := range all {
			lp.Keys[i], lp.FileIds[i], lp.VersionIds[i] = pd.obj.Key, pd.fileID, made[i].ID
			lp.Etags[i], lp.Sizes[i] = pd.obj.ETag, pd.obj.Size
		}
		if err := q.StorageLinksUpsert(ctx, lp); err != nil {
			return c, fmt.Errorf("link %d keys of storage %d: %w", len(all), st.ID, err)
		}
		c.New += int64(len(fresh))
		c.Changed += int64(len(changed))
	}

	if len(adopt) > 0 {
		ap := db.StorageLinksAdoptParams{StorageID: st.ID, Keys: make([]string, len(adopt)), Etags: make([]string, len(adopt)), Sizes: make([]int64, len(adopt))}
		for i, o := range adopt {
			ap.Keys[i], ap.Etags[i], ap.Sizes[i] = o.Key, o.ETag, o.Size
		}
		if err := q.StorageLinksAdopt(ctx, ap); err != nil {
			return c, fmt.Errorf("adopt %d imported keys of storage %d: %w", len(adopt), st.ID, err)
		}
	}

	if len(back) > 0 {
		if err := q.StorageLinksClearGone(ctx, db.StorageLinksClearGoneParams{StorageID: st.ID, Keys: back}); err != nil {
			return c, fmt.Errorf("mark %d keys of storage %d back: %w", len(back), st.ID, err)
		}
	}

	if len(gone) > 0 {
		now := p.now()
		files, err := q.StorageLinksSetGone(ctx, db.StorageLinksSetGoneParams{StorageID: st.ID, Keys: gone, GoneAt: &now})
		if err != nil {
			return c, fmt.Errorf("mark %d keys of storage %d gone: %w", len(gone), st.ID, err)
		}
		c.Gone += int64(len(files))
		if st.ArchiveGone && len(files) > 0 {
			if err := q.FilesArchiveMany(ctx, db.FilesArchiveManyParams{Ids: files, DeletedAt: &now}); err != nil {
				return c, fmt.Errorf("archive %d files of storage %d: %w", len(files), st.ID, err)
			}
		}
	}
	return c, nil
}

// archived is which files of the listed keys' links are archived, asked only
// for the links where it matters (back after being gone, or changed), so an
// unchanged page reads no file at all.
func archived(ctx context.Context, q *db.Queries, st db.Storage, objs []Object, byKey map[string]db.StorageLink) (map[int64]bool, error) {
	var ids []int64
	for _, o := range objs {
		l, ok := byKey[o.Key]
		if ok && (l.GoneAt != nil || l.Etag != strings.Trim(o.ETag, `"`) || l.SizeBytes != o.Size) {
			ids = append(ids, l.FileID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	got, err := q.FilesDeletedAmong(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read the files of %d keys of storage %d: %w", len(ids), st.ID, err)
	}
	deleted := make(map[int64]bool, len(got))
	for _, id := range got {
		deleted[id] = true
	}
	return deleted, nil
}

// unusable says why a key cannot be a file name ("" when it can).
func unusable(o Object, rel string) string {
	switch {
	case len(o.Key) > MaxKeyBytes:
		return fmt.Sprintf("the key is %d bytes long; a file name is at most %d", len(o.Key), MaxKeyBytes)
	case !utf8.ValidString(o.Key):
		return "the key is not valid UTF-8"
	case rel == "":
		return "the key is the storage's prefix itself, not a file under it"
	case o.Size < 0:
		return "the object has no size"
	case len(o.ETag) > maxETag:
		return fmt.Sprintf("the object's ETag is longer than %d characters", maxETag)
	}
	for _, r := range o.Key {
		// U+2028 and U+2029 count as control characters for the database's
		// [[:cntrl:]] under some locales.
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Sprintf("the key contains a control character (%U), which a file name may not", r)
		}
	}
	return ""
}
