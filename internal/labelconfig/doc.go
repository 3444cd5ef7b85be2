// Package labelconfig is what a project annotates and with which labels, and
// the Label Studio result format its annotations and predictions are stored in.
//
// A [Config] names the objects of a task (an image or a text, read from a
// task data field such as "$image") and the controls that annotate them:
// rectanglelabels, polygonlabels and keypointlabels on images, labels (text
// spans) on texts, choices and textarea on either. It is plain JSON (what
// PUT /v1/projects/{id}/label-config stores) checked by [Parse], or imported
// from a Label Studio XML label config by [FromXML].
//
// Results are Label Studio's: a list of [Region] values whose from_name names a
// control, to_name its object, type the control's type and value the
// coordinates (percent of the image) or text offsets. [ParseResult] reads them
// and [Config.Validate] checks them against the config, naming the region and
// field at fault in a [*ValidationError].
//
// For pre-annotation, [Config.OutputSchema] derives the JSON Schema a model's
// structured answer must follow, and [Config.ToRegions] turns that answer into
// regions, repairing span offsets that do not match the quoted text.
// [Config.Fits] says whether an export format can represent a config.
//
// # Text offsets
//
// Span offsets (value.start, value.end) count Unicode code points, as Python
// does, not JavaScript (UTF-16) string units. Label Studio's editor stores
// them so: its test "NER - Emoji - Text: Should calculate offsets by code
// points in text" (web/libs/editor/tests/integration/e2e/ner/emoji.cy.ts)
// expects "test" in "🐱 Warning: This is a test text" at start 21, end 25,
// where UTF-16 units would give 22, 26; the change dates from Label Studio
// PR #1559 ("store code points instead of js length", for issues #1008 and
// #1347). In Go a code point is a rune of the UTF-8 text, so offsets here are
// rune indexes, never byte or UTF-16 indexes. "\r\n" counts as two code
// points, as in Label Studio.
//
// The package is pure: no I/O besides the readers it is handed.
package labelconfig
