package messagebird

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	mbapi "github.com/messagebird/go-rest-api/v9"
	mbsms "github.com/messagebird/go-rest-api/v9/sms"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/sms"
)

// deliverLegacy sends m to msisdn through MessageBird's REST API.
func (mb *MessageBird) deliverLegacy(ctx context.Context, m recovery.Message, msisdn string) error {
	rt := &callTransport{ctx: ctx, base: mb.transport}
	// DefaultClient.Request takes no context, so the call's context reaches
	// the request through a transport made for this call. DebugLog stays
	// nil: the client's debug log would print the body, and with it the code.
	client := endpointClient{
		endpoint: mb.Endpoint,
		client: &mbapi.DefaultClient{
			AccessKey:  mb.AccessKey,
			HTTPClient: &http.Client{Transport: rt, CheckRedirect: noRedirects},
		},
	}
	params := &mbsms.Params{
		DataCoding: "plain",
		Reference:  m.Reference,
		Validity:   validitySeconds(m.Validity),
	}
	_, err := mbsms.Create(client, mb.Originator, []string{msisdn}, m.Body, params)
	switch {
	case err == nil:
		return nil
	case rt.answer.status == 0:
		return &sms.Error{Provider: provider, Err: err} // no answer: network error or timeout
	}
	// The library's own errors are left out: those it builds from an answer
	// it could not decode quote the answer, which may repeat the body.
	return mb.refusal(rt.answer, m)
}

// validitySeconds rounds v up to whole seconds; 0 means no limit and is left
// out of the request.
func validitySeconds(v time.Duration) int {
	if v <= 0 {
		return 0
	}
	return int((v + time.Second - 1) / time.Second)
}

// endpointClient sends the library's requests to the configured endpoint:
// the library prefixes relative paths with its constant Endpoint, but
// passes absolute URLs through untouched.
type endpointClient struct {
	endpoint string
	client   *mbapi.DefaultClient
}

func (c endpointClient) Request(v any, method, path string, data any) error {
	return c.client.Request(v, method, c.endpoint+"/"+path, data)
}

// callTransport carries one call's context to its request and keeps the
// answer, which the library does not return: its status and headers, and
// the body of a refusal.
type callTransport struct {
	ctx    context.Context
	base   http.RoundTripper
	answer answer
}

func (t *callTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r.WithContext(t.ctx))
	if err != nil || resp == nil {
		return resp, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		t.answer.body = body
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	t.answer.status, t.answer.header = resp.StatusCode, resp.Header
	return resp, nil
}

// Interface guards
var _ mbapi.Client = endpointClient{}
