package httpsig

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
)

func TestParseDictionary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want sfDict
	}{
		{"empty", "", nil},
		{"byte sequence", "sha-256=:AQID:", sfDict{{"sha-256", sfItem{value: []byte{1, 2, 3}}}}},
		{"empty byte sequence", "a=::", sfDict{{"a", sfItem{value: []byte{}}}}},
		{"inner list with params", `sig=("@method" "x");created=12;keyid="k";flag`, sfDict{{"sig", sfItem{
			value:  []sfItem{{value: "@method"}, {value: "x"}},
			params: sfParams{{"created", int64(12)}, {"keyid", "k"}, {"flag", true}},
		}}}},
		{"empty inner list", "a=()", sfDict{{"a", sfItem{value: []sfItem(nil)}}}},
		{"spaces in inner list", `a=(  "x"   "y" )`, sfDict{{"a", sfItem{value: []sfItem{{value: "x"}, {value: "y"}}}}}},
		{"item params in list", `a=("x";sf "y";key="k")`, sfDict{{"a", sfItem{value: []sfItem{
			{value: "x", params: sfParams{{"sf", true}}},
			{value: "y", params: sfParams{{"key", "k"}}},
		}}}}},
		{"several members", "a=1, b=?0,c=-5;x=\"y\"\t,  d", sfDict{
			{"a", sfItem{value: int64(1)}},
			{"b", sfItem{value: false}},
			{"c", sfItem{value: int64(-5), params: sfParams{{"x", "y"}}}},
			{"d", sfItem{value: true}},
		}},
		{"repeated key overwrites in place", "a=1, b=2, a=3", sfDict{{"a", sfItem{value: int64(3)}}, {"b", sfItem{value: int64(2)}}}},
		{"repeated param overwrites in place", "a=1;x=1;y=2;x=3", sfDict{{"a", sfItem{value: int64(1), params: sfParams{{"x", int64(3)}, {"y", int64(2)}}}}}},
		{"escaped string", `a="q\"b\\"`, sfDict{{"a", sfItem{value: `q"b\`}}}},
		{"leading spaces", "   a=1", sfDict{{"a", sfItem{value: int64(1)}}}},
		{"star key", "*a.b_c-d*=1", sfDict{{"*a.b_c-d*", sfItem{value: int64(1)}}}},
		{"largest integer", "a=-999999999999999", sfDict{{"a", sfItem{value: int64(-999999999999999)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseDictionary(tt.in)
			if err != nil {
				t.Fatalf("parseDictionary(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseDictionary(%q) =\n%#v\nwant\n%#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseDictionaryErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		in          string
		unsupported bool
	}{
		{"upper-case key", "A=1", false},
		{"digit key", "1a=1", false},
		{"trailing comma", "a=1,", false},
		{"missing comma", "a=1 b=2", false},
		{"unterminated list", `a=("x"`, false},
		{"no space between items", `a=("x""y")`, false},
		{"nested list", `a=(("x"))`, false},
		{"unterminated string", `a="x`, false},
		{"bad escape", `a="\n"`, false},
		{"non-ASCII in string", "a=\"\u00e9\"", false},
		{"tab in string", "a=\"\t\"", false},
		{"unterminated bytes", "a=:AQID", false},
		{"bad base64", "a=:AQI:", false},
		{"unpadded base64", "a=:AQ:", false},
		{"non-zero padding bits", "a=:AR==:", false},
		{"bad boolean", "a=?2", false},
		{"integer too long", "a=1234567890123456", false},
		{"bare minus", "a=-", false},
		{"empty value", "a=", false},
		{"param without key", "a=1;=2", false},
		{"trailing garbage", "a=1;", false},
		{"decimal", "a=1.5", true},
		{"token", "a=tok", true},
		{"token param", "a=1;alg=hs2019", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := parseDictionary(tt.in)
			if err == nil {
				t.Fatalf("parseDictionary(%q) = %#v, want error", tt.in, d)
			}
			if got := errors.Is(err, errSFUnsupported); got != tt.unsupported {
				t.Errorf("parseDictionary(%q) = %v; unsupported = %v, want %v", tt.in, err, got, tt.unsupported)
			}
		})
	}
}

func TestSerializeDictionary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"canonical spacing", "a=1,b=2 ,   c=?1", "a=1, b=2, c"},
		{"inner list", `sig=(  "a"  "b";x );k="v";t`, `sig=("a" "b";x);k="v";t`},
		{"escapes kept", `a="q\"b\\"`, `a="q\"b\\"`},
		{"byte sequence", "a=:AQID:;p=?0", "a=:AQID:;p=?0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := parseDictionary(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := serializeDictionary(d)
			if err != nil || got != tt.want {
				t.Errorf("serializeDictionary = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestSerializeRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		d    sfDict
	}{
		{"bad key", sfDict{{"A", sfItem{value: int64(1)}}}},
		{"integer out of range", sfDict{{"a", sfItem{value: int64(1e15)}}}},
		{"newline in string", sfDict{{"a", sfItem{value: "x\ny"}}}},
		{"unsupported type", sfDict{{"a", sfItem{value: 1.5}}}},
		{"nested list", sfDict{{"a", sfItem{value: []sfItem{{value: []sfItem{}}}}}}},
		{"bad param key", sfDict{{"a", sfItem{value: true, params: sfParams{{"K", true}}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if s, err := serializeDictionary(tt.d); err == nil {
				t.Errorf("serializeDictionary = %q, want error", s)
			}
		})
	}
}

// FuzzParseDictionary checks that the parser never panics and that whatever
// it accepts serializes to a form it parses back to the same value, which
// is what rebuilding @signature-params relies on. It is seeded with every
// Signature-Input, Signature and Content-Digest in testdata/vectors.json.
func FuzzParseDictionary(f *testing.F) {
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		f.Fatal(err)
	}
	var file vectorFile
	if err := json.Unmarshal(data, &file); err != nil {
		f.Fatal(err)
	}
	for _, v := range file.Vectors {
		for _, name := range []string{HeaderSignatureInput, HeaderSignature, HeaderContentDigest} {
			if s, ok := v.Headers[name]; ok {
				f.Add(s)
			}
		}
	}
	f.Add(`a=("x";sf "y");k=?0, b=:AQID:, c="q\"\\", d`)
	f.Fuzz(func(t *testing.T, in string) {
		d, err := parseDictionary(in)
		if err != nil {
			return
		}
		out, err := serializeDictionary(d)
		if err != nil {
			t.Fatalf("parsed %q but cannot serialize %#v: %v", in, d, err)
		}
		again, err := parseDictionary(out)
		if err != nil {
			t.Fatalf("cannot parse own serialization %q of %q: %v", out, in, err)
		}
		if !reflect.DeepEqual(d, again) {
			t.Fatalf("round trip of %q through %q:\n%#v\n!=\n%#v", in, out, d, again)
		}
	})
}
