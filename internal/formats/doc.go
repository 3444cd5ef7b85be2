// Package formats converts labelq tasks into the export files people train
// on: Label Studio JSON, JSON-MIN and CSV, COCO, YOLO, Pascal VOC and CoNLL
// 2003. It is the pure core of the export worker's conversion: the worker
// reads tasks (a job, its file, the file's image facts or text, its
// annotations and predictions) and hands them to a [Converter] one at a time;
// the converter writes archive entries through the caller's [Writer].
//
// # Streaming
//
// Memory stays flat in the number of tasks. Formats that are one JSON
// document (label_studio, json_min, coco) write its opening, then each task's
// items as they come, then what comes last (COCO's categories) at Close;
// per-image formats (yolo, voc) write one entry per task inside Add; nothing
// is kept per task but a few bytes where names must stay unique (below).
//
// COCO lists images and annotations in two arrays of one document, so it
// needs two looks at the tasks: Add for every task (annotations), then
// AddImage for every task again (images; see [ImagePass]), then Close. The
// image pass reads only a task's id, file name and image facts, so the caller
// can feed it from a light query. Image ids are task ids, so the passes need
// not agree on order; Close checks that both saw the same tasks.
//
// # Which annotations
//
// label_studio exports every annotation and prediction of a task. The other
// formats export the task's latest annotation ([Task.Latest]: the newest
// CreatedAt, then the highest id) and no predictions; a task without
// annotations still gets its row (json_min, csv), image (coco), empty label
// file (yolo), XML without objects (voc) or sentence of O tags (conll2003).
// Regions of controls the label config no longer has are left out.
//
// # Label Studio's conventions
//
// The output follows Label Studio's converter (label_studio_converter/
// converter.py, utils.py and exports/csv2.py, v0.0.60.dev) where that is
// sensible. Where labelq differs, on purpose:
//   - COCO and YOLO class ids follow the label config's order (the labels of
//     the exported controls, deduplicated); Label Studio sorts label names
//     alphabetically. Labels missing from the config are appended as they
//     are met, as Label Studio does.
//   - COCO image ids are task ids (Label Studio numbers images 0, 1, 2, ...);
//     annotation and category ids count from 0 as in Label Studio.
//   - Rotated rectangles become their axis-aligned envelope computed in
//     pixels, clipped to the image, in coco, yolo and voc alike. Label Studio
//     rotates in percent space for COCO (skewed on non-square images) and
//     ignores rotation for YOLO and VOC. Unrotated boxes are identical.
//   - Key points are not exported to coco or yolo (neither does Label
//     Studio); yolo exports rectangles only (Label Studio mixes polygon
//     segmentation lines into detection label files).
//   - yolo writes data.yaml (names, nc, train and val) for Ultralytics beside
//     classes.txt, and an empty label file for every image; voc writes an XML
//     file for every image, without Label Studio's placeholder flickr fields.
//   - conll2003 splits tokens on whitespace (Label Studio uses NLTK's
//     Treebank tokenizer, which also splits punctuation); the header line is
//     Label Studio's "-DOCSTART- -X- O".
//   - json_min and csv have one record per task for its latest annotation
//     (Label Studio writes one per annotation) and no updated_at or
//     lead_time columns, which labelq does not record.
//   - Pixel sizes come from the region's original_width/original_height,
//     else from the task's image facts with the EXIF orientation applied
//     (5–8 swap width and height), which is the frame Label Studio's editor
//     shows and measures in.
//
// # Names
//
// [ImagePath] is where an image goes in the archive ("images/<file name>",
// sanitised as every archive path is); label files sit beside it under
// labels/ (yolo) and Annotations/ (voc) with the image's name and another
// extension, as those tools pair them. Two images whose names differ only in
// extension ("a.jpg", "a.png") would share a label file; yolo and voc refuse
// the second with an error naming both files (they keep 16 bytes per image
// to notice).
package formats
