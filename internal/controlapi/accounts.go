package controlapi

import (
	"net/http"

	"github.com/emberfn/ember/internal/lambdaapi"
)

// createAccount is Ember's own API (POST /ember/v1/accounts, SigV4 service
// "ember"): an administrator makes a new account and gets its keys once.
func (s *Server) createAccount(w http.ResponseWriter, r *request) error {
	if !r.principal.Admin {
		return lambdaapi.Errorf(lambdaapi.AccessDenied, "Only an administrator account may create accounts")
	}
	var in struct {
		Name string `json:"Name"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	if !lambdaapi.ValidName(in.Name) {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Name must be 1-64 letters, digits, '-' or '_'")
	}
	acct, err := s.cfg.Accounts.CreateAccount(r.Context(), in.Name, false)
	if err != nil {
		return err
	}
	s.log.Info("account created", "account", acct.AccountID, "name", acct.Name, "by", r.principal.AccountID)
	return writeJSON(w, http.StatusCreated, acct)
}
