package recovery

import (
	"bytes"
	"fmt"
	"text/template"
)

// MessageData is what a message template can use.
type MessageData struct {
	SiteName string // the site_name option
	Code     string // the one-time code (code messages only)
	Minutes  int    // how long the code is valid, in whole minutes
	Link     string // <public_url><path_prefix>/?flow=<id>
	Host     string // the host of public_url, for the origin-bound last line
	Support  string // the support option
}

// Messages renders the texts of the SMS the flow sends.
type Messages struct {
	code   *template.Template
	notice *template.Template
}

const defaultCodeText = `{{.SiteName}} password reset code: {{.Code}}
Valid for {{.Minutes}} minutes. Enter it at {{.Link}}
If you did not ask for this, ignore this message.

@{{.Host}} #{{.Code}}`

const defaultNoticeText = `{{.SiteName}}: your password was just changed. If this was not you, contact support: {{.Support}}`

// NewMessages returns the default English messages.
func NewMessages() (*Messages, error) {
	code, err := template.New("code").Option("missingkey=error").Parse(defaultCodeText)
	if err != nil {
		return nil, fmt.Errorf("parsing code message: %w", err)
	}
	notice, err := template.New("notice").Option("missingkey=error").Parse(defaultNoticeText)
	if err != nil {
		return nil, fmt.Errorf("parsing notice message: %w", err)
	}
	return &Messages{code: code, notice: notice}, nil
}

// Code renders the message that carries a code.
func (m *Messages) Code(lang string, d MessageData) (string, error) {
	return render(m.code, d)
}

// Notice renders the message sent after a successful reset.
func (m *Messages) Notice(lang string, d MessageData) (string, error) {
	return render(m.notice, d)
}

func render(t *template.Template, d MessageData) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("rendering %s message: %w", t.Name(), err)
	}
	return b.String(), nil
}
