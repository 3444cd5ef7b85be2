// Package export is the project:export worker: it streams a project's approved
// results and files into one ZIP written straight into object storage, hashing every
// byte on the way, with live progress, a manifest and a download link. The archive is
// laid out as labelq stores the project (format labelq: plan.go), or holds the
// approved Label Studio results converted while streaming to a training format
// (label_studio, json_min, csv, coco, yolo, voc, conll2003: format.go).
package export
