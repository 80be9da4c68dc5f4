package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// MasterKeySize is the size in bytes of a Sealer's master key and of the key
// file LoadOrCreateSealer keeps it in.
const MasterKeySize = 32

// sealVersion is the first byte of everything Seal returns, so the format
// can change later.
const sealVersion = 1

// HKDF info strings that derive a Sealer's two subkeys from its master key.
const (
	sealInfo = "ember auth seal v1"
	signInfo = "ember auth sign v1"
)

// ErrUnseal is returned by Sealer.Open for data that is corrupt, truncated,
// or was sealed under another master key.
var ErrUnseal = errors.New("auth: cannot open sealed data: corrupt, or sealed under another master key")

// Sealer encrypts secrets at rest with AES-256-GCM under a 32-byte master
// key kept in a file outside the NATS store, so a copy of the store alone
// does not reveal them. It also signs short messages (HMAC-SHA256) for
// time-limited URLs. The encryption and signing keys are derived from the
// master key with HKDF-SHA256 under distinct labels, so neither use can be
// turned against the other. A Sealer is safe for concurrent use.
type Sealer struct {
	aead   cipher.AEAD
	macKey []byte
}

// NewSealer returns a Sealer for a 32-byte master key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("auth: master key is %d bytes; want %d", len(key), MasterKeySize)
	}
	encKey, err := hkdf.Key(sha256.New, key, nil, sealInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("auth: derive sealing key: %w", err)
	}
	macKey, err := hkdf.Key(sha256.New, key, nil, signInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("auth: derive signing key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &Sealer{aead: aead, macKey: macKey}, nil
}

// Seal encrypts and authenticates plain. The result is a version byte, a
// random 12-byte nonce and the GCM ciphertext with its tag.
func (s *Sealer) Seal(plain []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1 : 1+ns]); err != nil {
		return nil, fmt.Errorf("auth: seal: %w", err)
	}
	return s.aead.Seal(out, out[1:1+ns], plain, out[:1]), nil
}

// Open decrypts what Seal returned; it fails with ErrUnseal if sealed was
// altered or sealed under another key.
func (s *Sealer) Open(sealed []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrUnseal
	}
	plain, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], sealed[:1])
	if err != nil {
		return nil, ErrUnseal
	}
	return plain, nil
}

// Sign returns the 32-byte HMAC-SHA256 of msg under the Sealer's signing
// subkey.
func (s *Sealer) Sign(msg []byte) []byte {
	return hmacSHA256(s.macKey, msg)
}

// VerifySignature reports, in constant time, whether mac is Sign(msg).
func (s *Sealer) VerifySignature(msg, mac []byte) bool {
	return hmac.Equal(s.Sign(msg), mac)
}

// LoadOrCreateSealer returns a Sealer whose master key is in the file at
// path. If the file does not exist it is created with a new random key (and
// its directory with mode 0700, the file with mode 0600). It refuses a file
// that is not a regular file, that group or others may access, or that is
// not exactly 32 bytes long.
func LoadOrCreateSealer(path string) (*Sealer, error) {
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(path)
		if errors.Is(err, fs.ErrExist) { // another process won the race
			key, err = readKeyFile(path)
		}
	}
	if err != nil {
		return nil, err
	}
	return NewSealer(key)
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("auth: master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("auth: master key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("auth: master key file %s has mode %#o, open to group or others; "+
			"it must be private to its owner (chmod 600 %s)", path, perm, path)
	}
	if fi.Size() != MasterKeySize {
		return nil, fmt.Errorf("auth: master key file %s is %d bytes; want %d (is it the right file?)", path, fi.Size(), MasterKeySize)
	}
	key, err := io.ReadAll(io.LimitReader(f, MasterKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("auth: master key file: %w", err)
	}
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("auth: master key file %s: read %d bytes; want %d", path, len(key), MasterKeySize)
	}
	return key, nil
}

// createKeyFile writes a new random key to a temporary file and links it
// into place, so nobody ever sees a partial key file and an existing one is
// never replaced (the error is then fs.ErrExist).
func createKeyFile(path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: master key directory: %w", err)
	}
	key := make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("auth: new master key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("auth: master key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := writeAndClose(tmp, key); err != nil {
		return nil, fmt.Errorf("auth: master key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		// No hard links on this file system: create in place, exclusively.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		if err := writeAndClose(f, key); err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("auth: master key file: %w", err)
		}
	}
	syncDir(dir)
	return key, nil
}

// writeAndClose writes b to f, syncs and closes it.
func writeAndClose(f *os.File, b []byte) error {
	_, err := f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a rename or link in dir durable; errors are ignored, as
// some file systems cannot sync directories.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
