package logs

import (
	"errors"
	"regexp"
	"strings"
)

// errPattern is a filter pattern Ember does not understand.
var errPattern = errors.New("logs: invalid filter pattern")

// pattern is a parsed filter pattern of CloudWatch Logs' syntax for
// unstructured events: terms that must all appear (ERROR Exception),
// exact phrases ("Task timed out"), terms of which one must appear
// (?ERROR ?WARN), excluded terms (-DEBUG) and a regular expression
// (%time[dr]out%). Matching is case-sensitive and by substring. JSON
// ({ $.x = 1 }) and space-delimited ([ip, user, ...]) patterns are refused.
type pattern struct {
	all, any, none []string
	re             *regexp.Regexp
}

func parsePattern(s string) (*pattern, error) {
	s = strings.TrimSpace(s)
	p := &pattern{}
	if s == "" {
		return p, nil
	}
	switch s[0] {
	case '{', '[':
		return nil, errors.New("JSON and space-delimited filter patterns are not supported by Ember; use terms, \"phrases\", ?alternatives, -exclusions or %regex%")
	case '%':
		if len(s) < 2 || s[len(s)-1] != '%' {
			return nil, errPattern
		}
		re, err := regexp.Compile(s[1 : len(s)-1])
		if err != nil {
			return nil, err
		}
		p.re = re
		return p, nil
	}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		kind := byte(0)
		if s[0] == '?' || s[0] == '-' {
			kind, s = s[0], s[1:]
		}
		var term string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, errPattern
			}
			term, s = s[1:1+end], s[2+end:]
		} else {
			end := strings.IndexAny(s, " \t")
			if end < 0 {
				end = len(s)
			}
			term, s = s[:end], s[end:]
		}
		if term == "" {
			continue
		}
		switch kind {
		case '?':
			p.any = append(p.any, term)
		case '-':
			p.none = append(p.none, term)
		default:
			p.all = append(p.all, term)
		}
	}
	return p, nil
}

func (p *pattern) match(msg string) bool {
	if p.re != nil {
		return p.re.MatchString(msg)
	}
	for _, t := range p.all {
		if !strings.Contains(msg, t) {
			return false
		}
	}
	for _, t := range p.none {
		if strings.Contains(msg, t) {
			return false
		}
	}
	if len(p.any) == 0 {
		return true
	}
	for _, t := range p.any {
		if strings.Contains(msg, t) {
			return true
		}
	}
	return false
}
