package labelconfig_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/labelconfig"
)

// Label Studio's own templates, quoted as they are in HumanSignal/label-studio
// (the config: field of each file).
const (
	// label_studio/annotation_templates/computer-vision/object-detection-with-bounding-boxes/config.yml
	// (commit 3a0bc788d3b76b16209f43982cebdb432c6c68e3); also docs/source/templates/image_bbox.md.
	lsObjectDetection = `<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Airplane" background="green"/>
    <Label value="Car" background="blue"/>
  </RectangleLabels>
</View>
`
	// label_studio/annotation_templates/computer-vision/image-classification/config.yml
	// (commit e040056c477011f0b927f227a890d9a1459e6761).
	lsImageClassification = `<View>
  <Image name="image" value="$image"/>
  <Choices name="choice" toName="image">
    <Choice value="Adult content"/>
    <Choice value="Weapons" />
    <Choice value="Violence" />
  </Choices>
</View>
`
	// label_studio/annotation_templates/natural-language-processing/named-entity-recognition/config.yml
	// (commit ff543e11bc33c705ab8435a354e446b2f49c4b23).
	lsNamedEntityRecognition = `
<View>
  <Labels name="label" toName="text">
    <Label value="PER" background="red"/>
    <Label value="ORG" background="darkorange"/>
    <Label value="LOC" background="orange"/>
    <Label value="MISC" background="green"/>
  </Labels>

  <Text name="text" value="$ner"/>
</View>
`
)

func TestFromXMLImportsLabelStudioTemplates(t *testing.T) {
	for _, tc := range []struct {
		name string
		xml  string
		want labelconfig.Config
	}{
		{"object detection with bounding boxes", lsObjectDetection, labelconfig.Config{
			Objects:  []labelconfig.Object{{Name: "image", Type: labelconfig.ObjectImage, Value: "$image"}},
			Controls: []labelconfig.Control{{Name: "label", Type: labelconfig.RectangleLabels, ToName: "image", Labels: []string{"Airplane", "Car"}}},
		}},
		{"image classification", lsImageClassification, labelconfig.Config{
			Objects: []labelconfig.Object{{Name: "image", Type: labelconfig.ObjectImage, Value: "$image"}},
			Controls: []labelconfig.Control{{Name: "choice", Type: labelconfig.Choices, ToName: "image", Choice: "single",
				Labels: []string{"Adult content", "Weapons", "Violence"}}},
		}},
		{"named entity recognition", lsNamedEntityRecognition, labelconfig.Config{
			Objects:  []labelconfig.Object{{Name: "text", Type: labelconfig.ObjectText, Value: "$ner"}},
			Controls: []labelconfig.Control{{Name: "label", Type: labelconfig.Labels, ToName: "text", Labels: []string{"PER", "ORG", "LOC", "MISC"}}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := labelconfig.FromXML(strings.NewReader(tc.xml))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.NoError(t, got.Check())
		})
	}
	// What the templates are for is what Fits says they export to.
	det, _ := labelconfig.FromXML(strings.NewReader(lsObjectDetection))
	require.NoError(t, det.Fits("coco"))
	require.NoError(t, det.Fits("yolo"))
	ner, _ := labelconfig.FromXML(strings.NewReader(lsNamedEntityRecognition))
	require.NoError(t, ner.Fits("conll2003"))
	require.Error(t, ner.Fits("coco"))
}

func TestFromXMLIgnoresLayoutAndReadsEveryControlType(t *testing.T) {
	x := `<View style="display: flex">
  <Header value="Label the picture"/>
  <Style>.htx-text { white-space: pre-wrap; }</Style>
  <View style="width: 60%">
    <Image name="img" value="$image" zoom="true"/>
  </View>
  <View>
    <Collapse>
      <Panel value="Shapes">
        <RectangleLabels name="box" toName="img" strokeWidth="3">
          <Label value="Car" hotkey="c"/>
        </RectangleLabels>
      </Panel>
    </Collapse>
    <PolygonLabels name="poly" toName="img"><Label value="Road"/></PolygonLabels>
    <KeyPointLabels name="kp" toName="img"><Label value="Nose"/></KeyPointLabels>
    <Choices name="quality" toName="img" choice="single-radio" showInline="true">
      <View><Choice value="Good" alias="good"/></View>
      <Choice value="Bad"/>
    </Choices>
    <Choices name="flags" toName="img" choice="multiple"><Choice value="Blurry"/><Choice value="Dark"/></Choices>
    <TextArea name="caption" toName="img" rows="3"><Shortcut value="N/A" hotkey="n"/></TextArea>
    <Text name="note" value="$note"/>
    <Labels name="spans" toName="note"><Label value="Name" alias="N"/></Labels>
  </View>
</View>`
	got, err := labelconfig.FromXML(strings.NewReader(x))
	require.NoError(t, err)
	require.Equal(t, labelconfig.Config{
		Objects: []labelconfig.Object{
			{Name: "img", Type: labelconfig.ObjectImage, Value: "$image"},
			{Name: "note", Type: labelconfig.ObjectText, Value: "$note"},
		},
		Controls: []labelconfig.Control{
			{Name: "box", Type: labelconfig.RectangleLabels, ToName: "img", Labels: []string{"Car"}},
			{Name: "poly", Type: labelconfig.PolygonLabels, ToName: "img", Labels: []string{"Road"}},
			{Name: "kp", Type: labelconfig.KeyPointLabels, ToName: "img", Labels: []string{"Nose"}},
			// A Choice alias is what Label Studio stores in results; a Label
			// alias is only shown.
			{Name: "quality", Type: labelconfig.Choices, ToName: "img", Choice: "single", Labels: []string{"good", "Bad"}},
			{Name: "flags", Type: labelconfig.Choices, ToName: "img", Choice: "multiple", Labels: []string{"Blurry", "Dark"}},
			{Name: "caption", Type: labelconfig.TextArea, ToName: "img"},
			{Name: "spans", Type: labelconfig.Labels, ToName: "note", Labels: []string{"Name"}},
		},
	}, got)
}

func TestFromXMLRefusesWhatItCannotExpress(t *testing.T) {
	for _, tc := range []struct {
		name, xml, err string
	}{
		{"video", "<View>\n  <Video name=\"video\" value=\"$video\"/>\n  <Labels name=\"l\" toName=\"video\"><Label value=\"a\"/></Labels>\n</View>",
			"label config: unsupported tag <Video> at line 2; supported: View, Image, Text, RectangleLabels, PolygonLabels, KeyPointLabels, Labels, Choices, TextArea, Label, Choice"},
		{"rectangle with separate labels", "<View>\n<Image name=\"i\" value=\"$i\"/>\n\n<Rectangle name=\"r\" toName=\"i\"/>\n</View>", "unsupported tag <Rectangle> at line 4"},
		{"root", `<Image name="i" value="$i"/>`, "must start with <View>, not <Image>"},
		{"empty", ``, "is empty"},
		{"two roots", `<View><Image name="i" value="$i"/></View><View/>`, "second root element"},
		{"malformed", "<View>\n<Image name=\"i\" value=\"$i\">\n</View>", "is not well-formed XML at line 3"},
		{"label outside", `<View><Image name="i" value="$i"/><Label value="a"/></View>`, "<Label> at line 1 must be inside RectangleLabels, PolygonLabels, KeyPointLabels or Labels"},
		{"choice in labels", `<View><Image name="i" value="$i"/><RectangleLabels name="r" toName="i"><Choice value="a"/></RectangleLabels></View>`, `<Choice> at line 1 is inside <RectangleLabels name="r">; it belongs inside Choices`},
		{"nested controls", `<View><Image name="i" value="$i"/><Choices name="c" toName="i"><TextArea name="t" toName="i"/></Choices></View>`, "controls cannot be nested"},
		{"several objects", `<View><Image name="a" value="$a"/><Image name="b" value="$b"/><Choices name="c" toName="a,b"><Choice value="x"/></Choices></View>`, `toName "a,b" names several objects`},
		{"dynamic labels", `<View><Image name="i" value="$i"/><Choices name="c" toName="i" value="$options"/></View>`, `labels loaded from task data (value="$options") are not supported`},
		{"per-region", `<View><Image name="i" value="$i"/><Choices name="c" toName="i" perRegion="true"><Choice value="x"/></Choices></View>`, "perRegion controls are not supported"},
		{"static image", `<View><Image name="i" value="https://example.com/a.jpg"/></View>`, `value "https://example.com/a.jpg" must name a task data field`},
		{"choice mode", `<View><Image name="i" value="$i"/><Choices name="c" toName="i" choice="some"><Choice value="x"/></Choices></View>`, `choice="some" is not single, single-radio or multiple`},
		{"label without value", `<View><Image name="i" value="$i"/><RectangleLabels name="r" toName="i"><Label/></RectangleLabels></View>`, "<Label> at line 1 has no value attribute"},
		{"check names the tag and line", "<View>\n<Image name=\"image\" value=\"$image\"/>\n<RectangleLabels name=\"label\" toName=\"img\">\n<Label value=\"Car\"/>\n</RectangleLabels>\n</View>",
			`<RectangleLabels name="label"> at line 3: toName: "img" is not an object of this config`},
		{"no labels", "<View>\n<Image name=\"image\" value=\"$image\"/>\n<RectangleLabels name=\"label\" toName=\"image\"/>\n</View>",
			`<RectangleLabels name="label"> at line 3: labels (<Label>/<Choice> children): is empty`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := labelconfig.FromXML(strings.NewReader(tc.xml))
			require.Error(t, err)
			var ce *labelconfig.ConfigError
			require.True(t, errors.As(err, &ce), "%T", err)
			require.Contains(t, err.Error(), tc.err)
		})
	}
}
