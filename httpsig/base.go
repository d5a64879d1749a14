package httpsig

import (
	"fmt"
	"strings"

	"github.com/dunglas/httpsfv"
)

// component is one covered component of a signature: its identifier as it
// appears in Signature-Input (a derived component such as "@method" or a
// lower-case field name) and its canonical value. Names are checked before
// they get here, so they need no escaping.
type component struct {
	name  string
	value string
}

// sfParam is one signature parameter; value is an RFC 8941 bare item
// (int64, string, bool or []byte).
type sfParam struct {
	key   string
	value any
}

// sfParams keeps parameters in order: the serialized form, which is signed,
// depends on it.
type sfParams []sfParam

// signatureParams serializes the @signature-params value: the inner list of
// the components' names followed by params (RFC 9421 §2.3). The same string
// is the member value of Signature-Input.
func signatureParams(components []component, params sfParams) (string, error) {
	il := httpsfv.InnerList{Items: make([]httpsfv.Item, len(components)), Params: httpsfv.NewParams()}
	for i, c := range components {
		il.Items[i] = httpsfv.NewItem(c.name)
	}
	for _, p := range params {
		il.Params.Add(p.key, p.value)
	}
	return serializeInnerList(il)
}

// serializeInnerList is the RFC 8941 serialization of an inner list with
// its parameters, as a list of that one member serializes.
func serializeInnerList(il httpsfv.InnerList) (string, error) {
	return httpsfv.Marshal(httpsfv.List{il})
}

// signatureBase builds the RFC 9421 §2.5 signature base: one line per
// covered component, then the @signature-params line, without a final
// newline. A value holding a line break could forge extra lines, so it is
// refused.
func signatureBase(components []component, sigParams string) ([]byte, error) {
	var b strings.Builder
	for _, c := range components {
		if strings.ContainsAny(c.value, "\r\n\x00") {
			return nil, fmt.Errorf("%w: %s: control character in value", ErrMalformed, c.name)
		}
		b.WriteString(`"` + c.name + `": ` + c.value + "\n")
	}
	b.WriteString(`"@signature-params": ` + sigParams)
	return []byte(b.String()), nil
}
