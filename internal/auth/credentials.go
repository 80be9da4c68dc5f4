package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoCredentials is returned by ReadCredentials when the file has no such
// profile or the profile lacks a key.
var ErrNoCredentials = errors.New("auth: no credentials")

// Key names in an AWS shared-credentials file.
const (
	credKeyID     = "aws_access_key_id"
	credKeySecret = "aws_secret_access_key"
)

// WriteCredentials writes or replaces one profile in the AWS
// shared-credentials file at path (INI: "[profile]", aws_access_key_id,
// aws_secret_access_key), keeping the other profiles and comments. The file
// gets mode 0600 and is replaced atomically (temporary file and rename); its
// directory is created with mode 0700 if missing. A replaced profile loses
// any other keys it had (such as aws_session_token).
func WriteCredentials(path, profile, accessKeyID, secret string) error {
	if err := checkProfileName(profile); err != nil {
		return err
	}
	if !credToken(accessKeyID) || !credToken(secret) {
		return errors.New("auth: access key id and secret must be non-empty and free of spaces, control characters, '#' and ';'")
	}
	var old string
	switch b, err := os.ReadFile(path); {
	case err == nil:
		old = string(b)
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("auth: credentials file: %w", err)
	}

	block := []string{
		"[" + profile + "]",
		credKeyID + " = " + accessKeyID,
		credKeySecret + " = " + secret,
	}
	sections := splitINI(old)
	replaced := false
	out := []iniSection{sections[0]} // the preamble before any section
	for _, s := range sections[1:] {
		if s.name != profile {
			out = append(out, s)
		} else if !replaced {
			out = append(out, iniSection{name: profile, lines: append(s.comments(), block...)})
			replaced = true
		} // a duplicate of the profile is dropped
	}
	if !replaced {
		out = append(out, iniSection{name: profile, lines: block})
	}
	return writeFileAtomic(path, []byte(joinINI(out)), 0o600)
}

// ReadCredentials returns the access key id and secret of a profile in the
// AWS shared-credentials file at path. A missing profile or key is
// ErrNoCredentials.
func ReadCredentials(path, profile string) (id, secret string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("auth: credentials file: %w", err)
	}
	found := false
	for _, s := range splitINI(string(b))[1:] {
		if s.name != profile {
			continue
		}
		found = true
		for _, line := range s.lines[1:] {
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(k)) {
			case credKeyID:
				id = strings.TrimSpace(v)
			case credKeySecret:
				secret = strings.TrimSpace(v)
			}
		}
	}
	if !found {
		return "", "", fmt.Errorf("%w: profile %q not in %s", ErrNoCredentials, profile, path)
	}
	if id == "" || secret == "" {
		return "", "", fmt.Errorf("%w: profile %q in %s lacks %s or %s", ErrNoCredentials, profile, path, credKeyID, credKeySecret)
	}
	return id, secret, nil
}

func checkProfileName(p string) error {
	if p == "" || p != strings.TrimSpace(p) || strings.ContainsAny(p, "[]#;\r\n") {
		return fmt.Errorf("auth: invalid profile name %q", p)
	}
	for _, c := range p {
		if c < ' ' || c == 0x7f {
			return fmt.Errorf("auth: invalid profile name %q", p)
		}
	}
	return nil
}

func credToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == '#' || c == ';' {
			return false
		}
	}
	return true
}

// iniSection is a section of an INI file: its header line and the lines
// after it, up to the next section's leading comments. The first section
// of a file is its preamble, with no header and no name.
type iniSection struct {
	name  string
	lines []string
}

// comments returns the comment lines that lead s, before its header.
func (s iniSection) comments() []string {
	for i, l := range s.lines {
		if sectionName(l) != "" {
			return s.lines[:i:i]
		}
	}
	return nil
}

// splitINI splits text into its preamble and sections. Comment lines just
// above a section header go with that section.
func splitINI(text string) []iniSection {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.TrimSuffix(text, "\n")
	sections := []iniSection{{}}
	if text == "" {
		return sections
	}
	for line := range strings.SplitSeq(text, "\n") {
		name := sectionName(line)
		if name == "" {
			cur := &sections[len(sections)-1]
			cur.lines = append(cur.lines, line)
			continue
		}
		cur := &sections[len(sections)-1]
		i := len(cur.lines)
		for i > 0 && isComment(cur.lines[i-1]) {
			i--
		}
		lead := append([]string(nil), cur.lines[i:]...)
		cur.lines = cur.lines[:i]
		sections = append(sections, iniSection{name: name, lines: append(lead, line)})
	}
	return sections
}

// joinINI renders sections, one blank line apart.
func joinINI(sections []iniSection) string {
	var b strings.Builder
	for _, s := range sections {
		lines := s.lines
		for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
			lines = lines[:len(lines)-1]
		}
		if len(lines) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// sectionName returns the name in a "[name]" header line, or "".
func sectionName(line string) string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "[") {
		return ""
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return ""
	}
	return strings.TrimSpace(line[1:end])
}

func isComment(line string) bool {
	line = strings.TrimSpace(line)
	return strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";")
}

// writeFileAtomic writes data to a temporary file in path's directory
// (created with mode 0700 if missing) with mode perm, syncs it and renames
// it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if err := writeAndClose(tmp, data); err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	syncDir(dir)
	return nil
}
