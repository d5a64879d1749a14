// Package mail delivers the gateway's e-mail notices (recovery.Mail): it
// builds each as an RFC 5322 message of its own (Date, Message-ID, From,
// To, an RFC 2047 Subject, text/plain in UTF-8) and hands it to the mail
// server the operator named, by SMTP (with STARTTLS where the server
// offers it) or LMTP (straight into the mailbox, as Dovecot's lmtp
// service takes it), from a queue, in the background, retrying a server
// that fails.
//
// It must never block the request that queues a notice, never log an
// address in the clear (recovery.MaskAccount), and never carry anything
// but the notice's own text.
package mail
