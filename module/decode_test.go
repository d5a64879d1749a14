package module

import (
	"encoding/json"
	"testing"
)

// TestDecodePlain holds decodePlain to json.Unmarshal on every body it
// takes, and checks that it leaves the others to json.Unmarshal.
func TestDecodePlain(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		body  string
		plain bool
	}{
		{`{"account":"alice@example.com"}`, true},
		{" \t\r\n{ \"account\" : \"alice@example.com\" } \n", true},
		{`{}`, true},
		{`{ }`, true},
		{`{"account":""}`, true},
		{`{"account":"a","account":"b"}`, true},
		{`{"flow":"AbC-_1","code":"123456"}`, true},
		{`{"code":"123456","flow":"AbC-_1"}`, true},
		{`{"account":"a b ~!#$%&'()*+,-./:;<=>?@[]^_{|}"}`, true},
		// Left to json.Unmarshal.
		{`{"Account":"alice@example.com"}`, false},
		{`{"account":"al\u0069ce"}`, false},
		{`{"account":"al\"ice"}`, false},
		{`{"account":"älice"}`, false},
		{"{\"account\":\"a\tb\"}", false},
		{`{"account":null}`, false},
		{`{"account":1}`, false},
		{`{"account":"a","other":"b"}`, false},
		{`{"account":"a",}`, false},
		{`{"account":"a"} x`, false},
		{`{"account":"a"}{}`, false},
		{`{"account":"a"`, false},
		{`{"account" "a"}`, false},
		{`{"account":"a" "flow":"b"}`, false},
		{`{"account":"a`, false},
		{`[]`, false},
		{``, false},
		{`{`, false},
		{`{"account":"1","account":"2","account":"3","account":"4","account":"5"}`, false},
	} {
		var got, want startRequest
		var gotFlow, wantFlow flowRequest
		plain := decodePlain([]byte(tt.body), &got) || decodePlain([]byte(tt.body), &gotFlow)
		if plain != tt.plain {
			t.Errorf("decodePlain(%q) = %v, want %v", tt.body, plain, tt.plain)
		}
		if !plain {
			if got != (startRequest{}) || gotFlow != (flowRequest{}) {
				t.Errorf("decodePlain(%q) refused the body but set %+v %+v", tt.body, got, gotFlow)
			}
			continue
		}
		if err := json.Unmarshal([]byte(tt.body), &want); err != nil {
			t.Errorf("decodePlain took %q, which json.Unmarshal refuses: %v", tt.body, err)
		}
		if err := json.Unmarshal([]byte(tt.body), &wantFlow); err != nil {
			t.Errorf("decodePlain took %q, which json.Unmarshal refuses: %v", tt.body, err)
		}
		if got != want || gotFlow != wantFlow {
			t.Errorf("decodePlain(%q) = %+v %+v, json.Unmarshal %+v %+v", tt.body, got, gotFlow, want, wantFlow)
		}
	}
}

// FuzzDecodePlain holds decodePlain to json.Unmarshal on any body.
func FuzzDecodePlain(f *testing.F) {
	f.Add([]byte(`{"flow":"AbC-_1","code":"123456"}`))
	f.Add([]byte(`{"account":"alice@example.com"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var got, want flowRequest
		if !decodePlain(body, &got) {
			if got != (flowRequest{}) {
				t.Fatalf("refused %q but set %+v", body, got)
			}
			return
		}
		if err := json.Unmarshal(body, &want); err != nil || got != want {
			t.Fatalf("decodePlain(%q) = %+v, json.Unmarshal %+v, %v", body, got, want, err)
		}
	})
}
