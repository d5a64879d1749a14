// Package ldaptest runs a throwaway OpenLDAP server (Debian's slapd) for
// tests: its own process on a free loopback port, its own cn=config and mdb
// database in a temporary directory, seeded with a few inetOrgPerson
// entries. It never touches the system's slapd service or configuration.
package ldaptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// The directory every server holds.
const (
	BaseDN       = "ou=people,dc=example,dc=com"
	BindDN       = "cn=gateway,dc=example,dc=com" // may read, nothing more
	BindPassword = "gateway-s3cret"
	rootDN       = "cn=admin,dc=example,dc=com"
	rootPassword = "admin-s3cret"

	// WriterDN may set the people's userPassword (write access), with a
	// Modify or the Password Modify extended operation, and read nothing.
	WriterDN       = "cn=password-writer,dc=example,dc=com"
	WriterPassword = "writer-s3cret"
	// MailDN may read the people's userPassword, as a mail server's LDAP
	// passdb does when it checks passwords itself.
	MailDN       = "cn=mail,dc=example,dc=com"
	MailPassword = "mail-s3cret"
)

// OldPassword is the userPassword every person under BaseDN is seeded
// with, in clear: "<uid>-old-password".
func OldPassword(uid string) string { return uid + "-old-password" }

// Entries is the seed data beyond the service accounts: people under
// BaseDN, each with the userPassword OldPassword(uid). Two of them share
// one mail address, so that a search for it is ambiguous; one has no
// mobile; one has parentheses and a star in its mail, which a filter
// matches only when they are escaped.
const Entries = `
dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
userPassword: alice-old-password
cn: Alice
sn: Example
mail: alice@example.com
mobile: +31612345678
preferredLanguage: nl

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
userPassword: bob-old-password
cn: Bob
sn: Example
mail: bob@example.com
mobile: +4915123456789
preferredLanguage: de-CH, en;q=0.8

dn: uid=carol,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: carol
userPassword: carol-old-password
cn: Carol
sn: Example
mail: carol@example.com

dn: uid=dave,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dave
userPassword: dave-old-password
cn: Dave
sn: Example
mail: dave@example.com

dn: uid=dup1,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dup1
userPassword: dup1-old-password
cn: Dup One
sn: Example
mail: shared@example.com
mobile: +31611111111

dn: uid=dup2,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dup2
userPassword: dup2-old-password
cn: Dup Two
sn: Example
mail: shared@example.com
mobile: +31622222222

dn: uid=odd,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: odd
userPassword: odd-old-password
cn: Odd
sn: Example
mail: o(d)d*@example.com
mobile: +31633333333

dn: uid=admin,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: admin
userPassword: admin-old-password
cn: Admin
sn: Example
mail: admin@example.com
mobile: +31644444444
`

// Server is a running (or stopped) slapd.
type Server struct {
	t    testing.TB
	dir  string
	port int

	// URL is ldap://127.0.0.1:<port>, which also takes StartTLS.
	URL string
	// TLSURL is ldaps://127.0.0.1:<tls port>.
	TLSURL string
	// SHA2 is whether the server reads {SSHA512} passwords in binds: it
	// loads OpenLDAP's pw-sha2 module when it is installed (Debian's
	// slapd-contrib).
	SHA2 bool
	// RootCAs trusts the server's certificate (for 127.0.0.1 and localhost).
	RootCAs *x509.CertPool

	tlsPort int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a server, or skips the test when slapd is not installed
// (fails it under CI=true). The server is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	for _, tool := range []string{"slapd", "slapadd"} {
		if _, err := lookPath(tool); err != nil {
			testenv.Missing(t, tool+", which the LDAP tests start themselves", "apt-get install slapd ldap-utils", err)
		}
	}
	s := &Server{t: t, dir: t.TempDir()}
	ports, err := freeport.Ports(2)
	if err != nil {
		t.Fatal(err)
	}
	s.port, s.tlsPort = ports[0], ports[1]
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", s.port)
	s.TLSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", s.tlsPort)
	s.configure()
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// pwSHA2 is OpenLDAP's module for the SHA-2 password schemes.
const pwSHA2 = "/usr/lib/ldap/pw-sha2.so"

// lookPath finds slapd and slapadd, which Debian keeps in /usr/sbin, a
// directory not every PATH holds.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// configure writes cn=config and the seed data with slapadd.
func (s *Server) configure() {
	t := s.t
	t.Helper()
	cert, key := s.certificate()
	modules := "olcModuleLoad: back_mdb\n"
	if _, err := os.Stat(pwSHA2); err == nil {
		modules += "olcModuleLoad: pw-sha2\n"
		s.SHA2 = true
	}
	for _, d := range []string{"slapd.d", "data"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	config := fmt.Sprintf(`dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: %[1]s/slapd.pid
olcTLSCertificateFile: %[2]s
olcTLSCertificateKeyFile: %[3]s

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
%[6]s
dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: dc=example,dc=com
olcRootDN: %[4]s
olcRootPW: %[5]s
olcDbDirectory: %[1]s/data
olcDbMaxSize: 16777216
olcAccess: {0}to attrs=userPassword by dn.exact="%[7]s" write by dn.exact="%[8]s" read by anonymous auth by * none
olcAccess: {1}to * by users read by * none
`, s.dir, cert, key, rootDN, rootPassword, modules, WriterDN, MailDN)
	data := fmt.Sprintf(`dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: %s
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: gateway
userPassword: %s

dn: %s
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: password-writer
userPassword: %s

dn: %s
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: mail
userPassword: %s

dn: %s
objectClass: organizationalUnit
ou: people
%s`, BindDN, BindPassword, WriterDN, WriterPassword, MailDN, MailPassword, BaseDN, Entries)
	s.slapadd("0", config)
	s.slapadd("1", data)
}

func (s *Server) slapadd(db, ldif string) {
	t := s.t
	t.Helper()
	file := filepath.Join(s.dir, "db"+db+".ldif")
	if err := os.WriteFile(file, []byte(ldif), 0o600); err != nil {
		t.Fatal(err)
	}
	slapadd, _ := lookPath("slapadd")
	out, err := exec.Command(slapadd, "-q", "-n", db, "-F", filepath.Join(s.dir, "slapd.d"), "-l", file).CombinedOutput()
	if err != nil {
		t.Fatalf("slapadd -n %s: %v\n%s", db, err, out)
	}
}

// certificate writes a self-signed certificate for 127.0.0.1 and localhost
// and returns the paths of it and its key.
func (s *Server) certificate() (certFile, keyFile string) {
	t := s.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ldaptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	s.RootCAs = x509.NewCertPool()
	s.RootCAs.AddCert(cert)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(s.dir, "cert.pem"), filepath.Join(s.dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// Restart starts the server again after Stop, on the same ports and with
// the same data, and waits until it answers a bind.
func (s *Server) Restart() {
	t := s.t
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		t.Fatal("ldaptest: server already running")
	}
	slapd, _ := lookPath("slapd")
	var log bytes.Buffer
	// -d 0 keeps slapd in the foreground, so that it is our child and dies
	// with a kill of its process.
	cmd := exec.Command(slapd, "-d", "0", "-F", filepath.Join(s.dir, "slapd.d"),
		"-h", s.URL+"/ "+s.TLSURL+"/")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting slapd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	// Ready when a bind works; a slapd that exits (a port taken, a bad
	// config) ends the wait at once.
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := s.tryBind()
		if err == nil {
			return
		}
		select {
		case <-done:
			s.cmd = nil
			t.Fatalf("slapd exited: %v\n%s", cmd.ProcessState, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd not ready after 15s: %v", err)
		}
		select {
		case <-done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) tryBind() error {
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(time.Second)
	return c.Bind(BindDN, BindPassword)
}

// Stop kills the server and waits for it to exit: clients see the outage of
// a crash, not a polite shutdown. Restart brings it back.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// TLSConfig trusts the server, for StartTLS and ldaps.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.RootCAs, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Passwords returns the userPassword values of every entry under BaseDN,
// by DN, as the directory's administrator reads them.
func (s *Server) Passwords(t testing.TB) map[string][]string {
	t.Helper()
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetTimeout(5 * time.Second)
	if err := c.Bind(rootDN, rootPassword); err != nil {
		t.Fatal(err)
	}
	res, err := c.Search(ldap.NewSearchRequest(BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"userPassword"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]string, len(res.Entries))
	for _, e := range res.Entries {
		out[e.DN] = e.GetAttributeValues("userPassword")
	}
	return out
}

// CanBind reports whether dn can bind with password: the server's own
// check of a password, whatever scheme it is stored in.
func (s *Server) CanBind(t testing.TB, dn, password string) bool {
	t.Helper()
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetTimeout(5 * time.Second)
	err = c.Bind(dn, password)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		return false
	}
	if err != nil {
		t.Fatalf("binding as %s: %v", dn, err)
	}
	return true
}
