package controlapi

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// codePath is where GetFunction's Code.Location points: like an S3
// presigned URL, it works without SigV4 until it expires, because its
// query carries an expiry and a MAC made with the installation's key.
const codePath = "/ember/code/"

func codeMAC(account, sha string, expires int64) []byte {
	return []byte(fmt.Sprintf("GET\n%s%s/%s\n%d", codePath, account, sha, expires))
}

// codeURL is a time-limited download URL of a package.
func (s *Server) codeURL(r *http.Request, account, sha string) string {
	exp := s.cfg.Now().Add(s.cfg.CodeURLTTL).Unix()
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	q := url.Values{}
	q.Set("X-Ember-Expires", strconv.FormatInt(exp, 10))
	q.Set("X-Ember-Signature", hex.EncodeToString(s.cfg.Signer.Sign(codeMAC(account, sha, exp))))
	return fmt.Sprintf("%s://%s%s%s/%s?%s", scheme, r.Host, codePath, account, sha, q.Encode())
}

func (s *Server) downloadCode(w http.ResponseWriter, r *http.Request) {
	account, sha := r.PathValue("account"), r.PathValue("sha")
	q := r.URL.Query()
	exp, err := strconv.ParseInt(q.Get("X-Ember-Expires"), 10, 64)
	mac, merr := hex.DecodeString(q.Get("X-Ember-Signature"))
	denied := lambdaapi.Errorf(lambdaapi.AccessDenied, "The code URL is invalid or has expired; call GetFunction for a new one")
	if err != nil || merr != nil || !s.cfg.Signer.VerifySignature(codeMAC(account, sha, exp), mac) {
		s.writeError(w, r, denied)
		return
	}
	if s.cfg.Now().Unix() > exp {
		s.writeError(w, r, denied)
		return
	}
	rc, size, err := s.cfg.Store.GetCode(r.Context(), account, sha)
	if errors.Is(err, store.ErrNotFound) {
		s.writeError(w, r, lambdaapi.Errorf(lambdaapi.ResourceNotFound, "The code package no longer exists"))
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	if _, err := io.Copy(w, rc); err != nil {
		s.log.Warn("code download cut short", "account", account, "code_sha256", sha, "err", err)
	}
}
