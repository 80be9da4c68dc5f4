package frontend

import "github.com/emberfn/ember/internal/store"

// FunctionWritten tells the Front End that this process has just stored a
// function's $LATEST (f) or deleted it (nil): its cache forgets it and
// the sandboxes of earlier revisions are retired at once, so that an
// invoke that follows the write, through this Ember, runs what was
// written (the watch on the functions bucket says the same a little
// later, and tells the other Embers; told twice, a change retires once).
func (s *Server) FunctionWritten(account, name string, f *store.Function) {
	s.functionChanged(account, name, f)
}

// AliasWritten is FunctionWritten for an alias stored (a) or deleted (nil).
func (s *Server) AliasWritten(account, function, alias string, a *store.Alias) {
	s.aliasChanged(account, function, alias, a)
}
