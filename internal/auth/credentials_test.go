package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"
)

func checkMode0600(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
}

// sdkCredentials loads profile from path with aws-sdk-go-v2's own loader.
func sdkCredentials(t *testing.T, path, profile string) (string, string) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithSharedCredentialsFiles([]string{path}),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedConfigProfile(profile),
		config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatalf("LoadDefaultConfig(%s): %v", profile, err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("Retrieve(%s): %v", profile, err)
	}
	return creds.AccessKeyID, creds.SecretAccessKey
}

func TestWriteCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "credentials")
	id1, secret1, _ := NewAccessKey()
	id2, secret2, _ := NewAccessKey()
	id3, secret3, _ := NewAccessKey()

	if err := WriteCredentials(path, "default", id1, secret1); err != nil {
		t.Fatal(err)
	}
	checkMode0600(t, path)
	if err := WriteCredentials(path, "other", id2, secret2); err != nil {
		t.Fatal(err)
	}
	if err := WriteCredentials(path, "default", id3, secret3); err != nil { // replace
		t.Fatal(err)
	}
	checkMode0600(t, path)

	for _, c := range []struct{ profile, id, secret string }{{"default", id3, secret3}, {"other", id2, secret2}} {
		id, secret, err := ReadCredentials(path, c.profile)
		if err != nil || id != c.id || secret != c.secret {
			t.Errorf("ReadCredentials(%s) = %s, %s, %v; want %s, %s", c.profile, id, secret, err, c.id, c.secret)
		}
		id, secret = sdkCredentials(t, path, c.profile)
		if id != c.id || secret != c.secret {
			t.Errorf("SDK loaded %s: %s, %s; want %s, %s", c.profile, id, secret, c.id, c.secret)
		}
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "[default]"); n != 1 {
		t.Errorf("file has %d [default] sections:\n%s", n, b)
	}
	if strings.Contains(string(b), id1) {
		t.Errorf("replaced key is still in the file:\n%s", b)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("directory holds %d entries; temporary files left behind?", len(entries))
	}
	if _, _, err := ReadCredentials(path, "missing"); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("ReadCredentials(missing) err = %v, want ErrNoCredentials", err)
	}
}

func TestWriteCredentialsKeepsOtherProfiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	orig := "# my credentials\n" +
		"[work]\n" +
		"aws_access_key_id = AKIAWORK\n" +
		"aws_secret_access_key = worksecret\n" +
		"region = eu-west-1\n" +
		"\n" +
		"; the ember one\n" +
		"[ember]\n" +
		"aws_access_key_id=OLD\n" +
		"aws_secret_access_key=OLDSECRET\n" +
		"aws_session_token=OLDTOKEN\n" +
		"# about personal\n" +
		"[ personal ]\n" +
		"aws_access_key_id = AKIAPERSONAL\n" +
		"aws_secret_access_key = personalsecret\n"
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteCredentials(path, "ember", "EMBRNEW", "newsecret"); err != nil {
		t.Fatal(err)
	}
	checkMode0600(t, path)
	b, _ := os.ReadFile(path)
	got := string(b)
	for _, want := range []string{"# my credentials\n[work]\n", "region = eu-west-1\n", "; the ember one\n[ember]\n",
		"# about personal\n[ personal ]\n", "aws_access_key_id = EMBRNEW\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("file lacks %q:\n%s", want, got)
		}
	}
	for _, gone := range []string{"OLD"} {
		if strings.Contains(got, gone) {
			t.Errorf("file still has %q:\n%s", gone, got)
		}
	}
	for _, c := range []struct{ profile, id, secret string }{
		{"work", "AKIAWORK", "worksecret"}, {"ember", "EMBRNEW", "newsecret"}, {"personal", "AKIAPERSONAL", "personalsecret"},
	} {
		if id, secret, err := ReadCredentials(path, c.profile); err != nil || id != c.id || secret != c.secret {
			t.Errorf("ReadCredentials(%s) = %s, %s, %v", c.profile, id, secret, err)
		}
		if id, secret := sdkCredentials(t, path, c.profile); id != c.id || secret != c.secret {
			t.Errorf("SDK loaded %s: %s, %s", c.profile, id, secret)
		}
	}
}

func TestWriteCredentialsRejectsBadInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	for _, c := range []struct{ profile, id, secret string }{
		{"", "A", "B"}, {"a]b", "A", "B"}, {"a\nb", "A", "B"}, {" a", "A", "B"},
		{"p", "", "B"}, {"p", "A", ""}, {"p", "A B", "C"}, {"p", "A", "B\n[x]"},
	} {
		if err := WriteCredentials(path, c.profile, c.id, c.secret); err == nil {
			t.Errorf("WriteCredentials(%q, %q, %q) succeeded", c.profile, c.id, c.secret)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("a rejected write created the file")
	}
}
