package httpsig

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file holds the subset of RFC 8941 Structured Field Values that
// Signature-Input, Signature and Content-Digest need: dictionaries whose
// members are items or inner lists, with parameters, over the bare item
// types integer, string, byte sequence and boolean. Decimals and tokens are
// refused: nothing in RFC 9421 or RFC 9530 uses them for these fields.

// Limits from RFC 8941 §3.3.1; the 15-digit bound keeps integers exact.
const (
	sfMaxIntegerDigits = 15
	sfMaxInteger       = 999_999_999_999_999
)

var errSFUnsupported = errors.New("unsupported structured field type")

// sfItem is a bare item or an inner list with its parameters. value is an
// int64, a string, a []byte, a bool or, for an inner list, an []sfItem.
type sfItem struct {
	value  any
	params sfParams
}

// sfParam is one parameter; value is a bare item.
type sfParam struct {
	key   string
	value any
}

// sfParams keeps parameters in order: the serialized form, which is signed,
// depends on it.
type sfParams []sfParam

// get returns the value of the parameter key.
func (ps sfParams) get(key string) (any, bool) {
	for _, p := range ps {
		if p.key == key {
			return p.value, true
		}
	}
	return nil, false
}

// set overwrites the parameter key in place or appends it, as RFC 8941
// §4.2.3.2 requires for repeated keys.
func (ps sfParams) set(key string, value any) sfParams {
	for i := range ps {
		if ps[i].key == key {
			ps[i].value = value
			return ps
		}
	}
	return append(ps, sfParam{key: key, value: value})
}

// sfMember is one member of a dictionary.
type sfMember struct {
	key  string
	item sfItem
}

// sfDict is a dictionary in member order.
type sfDict []sfMember

// get returns the member key.
func (d sfDict) get(key string) (sfItem, bool) {
	for _, m := range d {
		if m.key == key {
			return m.item, true
		}
	}
	return sfItem{}, false
}

// parseDictionary parses an RFC 8941 dictionary. Several field lines must be
// joined with ", " first.
func parseDictionary(s string) (sfDict, error) {
	p := sfParser{s: s}
	p.skip(" ")
	var d sfDict
	for !p.done() {
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		var it sfItem
		if p.accept('=') {
			if p.peek() == '(' {
				it, err = p.innerList()
			} else {
				it, err = p.item()
			}
			if err != nil {
				return nil, fmt.Errorf("member %q: %w", key, err)
			}
		} else {
			it.value = true
			if it.params, err = p.params(); err != nil {
				return nil, fmt.Errorf("member %q: %w", key, err)
			}
		}
		d = d.set(key, it)

		p.skip(" \t")
		if p.done() {
			break
		}
		if !p.accept(',') {
			return nil, p.errorf("expected ',' after member %q", key)
		}
		p.skip(" \t")
		if p.done() {
			return nil, p.errorf("trailing ','")
		}
	}
	return d, nil
}

// set overwrites the member key in place or appends it (RFC 8941 §4.2.2).
func (d sfDict) set(key string, it sfItem) sfDict {
	for i := range d {
		if d[i].key == key {
			d[i].item = it
			return d
		}
	}
	return append(d, sfMember{key: key, item: it})
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }

// peek returns the next byte, or 0 at the end, which matches nothing the
// grammar looks for.
func (p *sfParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

func (p *sfParser) accept(c byte) bool {
	if !p.done() && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *sfParser) skip(chars string) {
	for !p.done() && strings.IndexByte(chars, p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *sfParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

// innerList parses "(" *SP [ item *( 1*SP item ) *SP ] ")" parameters.
func (p *sfParser) innerList() (sfItem, error) {
	p.i++ // '('
	var items []sfItem
	for {
		p.skip(" ")
		if p.done() {
			return sfItem{}, p.errorf("unterminated inner list")
		}
		if p.accept(')') {
			break
		}
		it, err := p.item()
		if err != nil {
			return sfItem{}, err
		}
		items = append(items, it)
		if c := p.peek(); c != ' ' && c != ')' {
			return sfItem{}, p.errorf("expected ' ' or ')' in inner list")
		}
	}
	params, err := p.params()
	if err != nil {
		return sfItem{}, err
	}
	return sfItem{value: items, params: params}, nil
}

// item parses a bare item and its parameters.
func (p *sfParser) item() (sfItem, error) {
	v, err := p.bareItem()
	if err != nil {
		return sfItem{}, err
	}
	params, err := p.params()
	if err != nil {
		return sfItem{}, err
	}
	return sfItem{value: v, params: params}, nil
}

// params parses *( ";" *SP key [ "=" bare-item ] ).
func (p *sfParser) params() (sfParams, error) {
	var ps sfParams
	for p.accept(';') {
		p.skip(" ")
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		var v any = true
		if p.accept('=') {
			if v, err = p.bareItem(); err != nil {
				return nil, fmt.Errorf("parameter %q: %w", key, err)
			}
		}
		ps = ps.set(key, v)
	}
	return ps, nil
}

// key parses ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ).
func (p *sfParser) key() (string, error) {
	start := p.i
	if c := p.peek(); !isLCAlpha(c) && c != '*' {
		return "", p.errorf("expected a key")
	}
	p.i++
	for !p.done() {
		c := p.s[p.i]
		if !(isLCAlpha(c) || isDigit(c) || strings.IndexByte("_-.*", c) >= 0) {
			break
		}
		p.i++
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) bareItem() (any, error) {
	switch c := p.peek(); {
	case p.done():
		return nil, p.errorf("expected an item")
	case c == '-' || isDigit(c):
		return p.integer()
	case c == '"':
		return p.str()
	case c == ':':
		return p.bytes()
	case c == '?':
		return p.boolean()
	case c == '*' || isAlpha(c):
		return nil, fmt.Errorf("token at offset %d: %w", p.i, errSFUnsupported)
	default:
		return nil, p.errorf("unexpected %q", c)
	}
}

func (p *sfParser) integer() (any, error) {
	start := p.i
	p.accept('-')
	digits := p.i
	for !p.done() && isDigit(p.s[p.i]) {
		p.i++
	}
	if n := p.i - digits; n == 0 || n > sfMaxIntegerDigits {
		return nil, p.errorf("integer must have 1 to %d digits", sfMaxIntegerDigits)
	}
	if p.peek() == '.' {
		return nil, fmt.Errorf("decimal at offset %d: %w", start, errSFUnsupported)
	}
	return strconv.ParseInt(p.s[start:p.i], 10, 64)
}

func (p *sfParser) str() (any, error) {
	p.i++ // '"'
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.done() || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
				return nil, p.errorf("bad escape in string")
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case c == '"':
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return nil, p.errorf("invalid character in string")
		default:
			b.WriteByte(c)
		}
	}
	return nil, p.errorf("unterminated string")
}

func (p *sfParser) bytes() (any, error) {
	p.i++ // ':'
	start := p.i
	for !p.done() && isBase64(p.s[p.i]) {
		p.i++
	}
	end := p.i
	if !p.accept(':') {
		return nil, p.errorf("unterminated byte sequence")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(p.s[start:end])
	if err != nil {
		return nil, p.errorf("byte sequence: %v", err)
	}
	return b, nil
}

func (p *sfParser) boolean() (any, error) {
	p.i++ // '?'
	switch {
	case p.accept('1'):
		return true, nil
	case p.accept('0'):
		return false, nil
	default:
		return nil, p.errorf("boolean must be ?0 or ?1")
	}
}

func isLCAlpha(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool   { return isLCAlpha(c) || ('A' <= c && c <= 'Z') }
func isDigit(c byte) bool   { return '0' <= c && c <= '9' }
func isBase64(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '='
}

// serializeDictionary serializes d (RFC 8941 §4.1.2).
func serializeDictionary(d sfDict) (string, error) {
	var b strings.Builder
	for i, m := range d {
		if i > 0 {
			b.WriteString(", ")
		}
		if err := writeKey(&b, m.key); err != nil {
			return "", err
		}
		if m.item.value != true {
			b.WriteByte('=')
			if err := writeMemberValue(&b, m.item.value); err != nil {
				return "", err
			}
		}
		if err := writeParams(&b, m.item.params); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// serializeInnerList serializes an inner list with its parameters; it is the
// form the @signature-params component takes.
func serializeInnerList(items []sfItem, params sfParams) (string, error) {
	var b strings.Builder
	if err := writeMemberValue(&b, items); err != nil {
		return "", err
	}
	if err := writeParams(&b, params); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writeMemberValue(b *strings.Builder, v any) error {
	items, ok := v.([]sfItem)
	if !ok {
		return writeBareItem(b, v)
	}
	b.WriteByte('(')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(' ')
		}
		if err := writeBareItem(b, it.value); err != nil {
			return err
		}
		if err := writeParams(b, it.params); err != nil {
			return err
		}
	}
	b.WriteByte(')')
	return nil
}

func writeParams(b *strings.Builder, ps sfParams) error {
	for _, p := range ps {
		b.WriteByte(';')
		if err := writeKey(b, p.key); err != nil {
			return err
		}
		if p.value != true {
			b.WriteByte('=')
			if err := writeBareItem(b, p.value); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeKey(b *strings.Builder, key string) error {
	p := sfParser{s: key}
	if k, err := p.key(); err != nil || k != key {
		return fmt.Errorf("invalid key %q", key)
	}
	b.WriteString(key)
	return nil
}

func writeBareItem(b *strings.Builder, v any) error {
	switch v := v.(type) {
	case int64:
		if v < -sfMaxInteger || v > sfMaxInteger {
			return fmt.Errorf("integer %d out of range", v)
		}
		b.WriteString(strconv.FormatInt(v, 10))
	case string:
		b.WriteByte('"')
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c < 0x20 || c > 0x7e {
				return fmt.Errorf("invalid character %q in string", c)
			}
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
	case []byte:
		b.WriteByte(':')
		b.WriteString(base64.StdEncoding.EncodeToString(v))
		b.WriteByte(':')
	case bool:
		if v {
			b.WriteString("?1")
		} else {
			b.WriteString("?0")
		}
	default:
		return fmt.Errorf("%T: %w", v, errSFUnsupported)
	}
	return nil
}
