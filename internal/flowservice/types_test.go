package flowservice

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTextDecoding(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"Capillary Streaming Events"`, "Capillary Streaming Events"},
		{`{"text":"Capillary Streaming Events"}`, "Capillary Streaming Events"},
		{`{"key":"capillary-label"}`, "capillary-label"},
		{`{"key":"k","text":"shown"}`, "shown"},
		{`42`, ""},
		{`null`, ""},
		{`{"other":true}`, ""},
	} {
		var got struct {
			Label Text `json:"label"`
		}
		if err := json.Unmarshal([]byte(`{"label":`+tc.in+`}`), &got); err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if string(got.Label) != tc.want {
			t.Errorf("%s: got %q, want %q", tc.in, got.Label, tc.want)
		}
	}
}

func TestMappingVersionDecoding(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int
		wantErr bool
	}{
		{`{"mappingId":"m","mappingVersion":2}`, 2, false},
		{`{"mappingId":"m","mappingVersion":"3"}`, 3, false},
		{`{"mappingId":"m","mappingVersion":""}`, 0, false},
		{`{"mappingId":"m"}`, 0, false},
		{`{"mappingId":"m","mappingVersion":null}`, 0, false},
		{`{"mappingId":"m","mappingVersion":"x"}`, 0, true},
	} {
		var p TransformationParams
		err := json.Unmarshal([]byte(tc.in), &p)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && (p.MappingVersion != tc.want || p.MappingID != "m") {
			t.Errorf("%s: got %+v", tc.in, p)
		}
	}
	// Sent as a number, as every Adobe example does.
	b, _ := json.Marshal(TransformationParams{MappingID: "m", MappingVersion: 0})
	if string(b) != `{"mappingId":"m","mappingVersion":0}` {
		t.Errorf("encoded %s", b)
	}
}

func TestMappingDecoding(t *testing.T) {
	var got []Mapping
	in := `[{"source":"a","destination":"b","sourceType":"ATTRIBUTE"},
		{"sourceAttribute":"c","destinationXdmPath":"d","identity":true},
		{"source":"e","destination":"f","sourceAttribute":"ignored","destinationXdmPath":"ignored"}]`
	if err := json.Unmarshal([]byte(in), &got); err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{Source: "a", Destination: "b", SourceType: SourceTypeAttribute},
		{Source: "c", Destination: "d", Identity: true},
		{Source: "e", Destination: "f"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mappings (-want +got):\n%s", diff)
	}
}
