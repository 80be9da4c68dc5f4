package auth

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testSealer(t *testing.T, fill byte) *Sealer {
	t.Helper()
	s, err := NewSealer(bytes.Repeat([]byte{fill}, MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealerRoundTrip(t *testing.T) {
	s := testSealer(t, 1)
	for _, plain := range [][]byte{nil, []byte("x"), []byte(testSecret), bytes.Repeat([]byte{0xff}, 10000)} {
		sealed, err := s.Seal(plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(plain) > 4 && bytes.Contains(sealed, plain) {
			t.Fatal("sealed data contains the plaintext")
		}
		got, err := s.Open(sealed)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("Open = %q, want %q", got, plain)
		}
	}
	a, _ := s.Seal([]byte("same"))
	b, _ := s.Seal([]byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are equal; nonce not random")
	}
}

func TestSealerDetectsTampering(t *testing.T) {
	s := testSealer(t, 1)
	sealed, err := s.Seal([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := s.Open(bad); !errors.Is(err, ErrUnseal) {
			t.Fatalf("flipping byte %d: Open err = %v, want ErrUnseal", i, err)
		}
	}
	for _, bad := range [][]byte{nil, sealed[:1], sealed[:len(sealed)-1], append(bytes.Clone(sealed), 0)} {
		if _, err := s.Open(bad); !errors.Is(err, ErrUnseal) {
			t.Fatalf("Open(%d bytes) err = %v, want ErrUnseal", len(bad), err)
		}
	}
	if _, err := testSealer(t, 2).Open(sealed); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Open with another key: err = %v, want ErrUnseal", err)
	}
}

func TestNewSealerKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewSealer(make([]byte, n)); err == nil {
			t.Errorf("NewSealer accepted a %d-byte key", n)
		}
	}
}

func TestSealerSign(t *testing.T) {
	s := testSealer(t, 1)
	msg := []byte("GET /code/fn-1?expires=1767323045")
	mac := s.Sign(msg)
	if len(mac) != 32 {
		t.Fatalf("mac is %d bytes", len(mac))
	}
	if !s.VerifySignature(msg, mac) {
		t.Fatal("VerifySignature rejected a good mac")
	}
	if s.VerifySignature([]byte("GET /code/fn-2?expires=1767323045"), mac) {
		t.Fatal("VerifySignature accepted a mac for another message")
	}
	bad := bytes.Clone(mac)
	bad[31] ^= 1
	if s.VerifySignature(msg, bad) || s.VerifySignature(msg, mac[:31]) || s.VerifySignature(msg, nil) {
		t.Fatal("VerifySignature accepted a bad mac")
	}
	if testSealer(t, 2).VerifySignature(msg, mac) {
		t.Fatal("another key verified the mac")
	}
	// The signing key is separate from the encryption key and the master key.
	if bytes.Equal(s.macKey, bytes.Repeat([]byte{1}, MasterKeySize)) {
		t.Fatal("signing key is the master key")
	}
}

func TestLoadOrCreateSealer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys", "nested")
	path := filepath.Join(dir, "master.key")
	s1, err := LoadOrCreateSealer(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != MasterKeySize {
		t.Fatalf("key file mode %v size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), MasterKeySize)
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("key dir: %v, %v; want mode 0700", di.Mode().Perm(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("key dir holds %d entries, want just the key file", len(entries))
	}
	sealed, err := s1.Seal([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := LoadOrCreateSealer(path) // loads the same key
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Open(sealed); err != nil || string(got) != "secret" {
		t.Fatalf("reloaded sealer: Open = %q, %v", got, err)
	}
}

func TestLoadOrCreateSealerRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path, msg string
	}{
		{"group readable", write("g", make([]byte, 32), 0o640), "group or others"},
		{"world readable", write("w", make([]byte, 32), 0o604), "group or others"},
		{"too short", write("s", make([]byte, 16), 0o600), "want 32"},
		{"too long", write("l", make([]byte, 33), 0o600), "want 32"},
		{"directory", dir, "not a regular file"},
	}
	for _, c := range cases {
		_, err := LoadOrCreateSealer(c.path)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want one mentioning %q", c.name, err, c.msg)
		}
	}
	// Nothing was overwritten.
	if b, _ := os.ReadFile(filepath.Join(dir, "s")); len(b) != 16 {
		t.Error("a refused key file was rewritten")
	}
}
