//go:build linux && amd64

package main

import (
	"strings"
	"testing"

	"github.com/reachvm/reachvm/clients"
)

// TestClientNames: run's usage names exactly the sample clients package
// clients has.
func TestClientNames(t *testing.T) {
	if got, want := clientNames, strings.Join(clients.Names(), ", "); got != want {
		t.Errorf("run's usage names the clients %q, package clients has %q", got, want)
	}
}

// TestSplitClientArgs: a client's arguments end at "--"; without one, or
// when the flags ended at their own "--", the client has none.
func TestSplitClientArgs(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		rest         int // len(rest): rest is args' tail
		client, prog string
	}{
		{[]string{"-c", "inscount", "--", "/bin/true"}, 1, "", "/bin/true"},
		{[]string{"-c", "inscount", "/bin/true", "x"}, 2, "", "/bin/true x"},
		{[]string{"-c", "bbcount", "a", "b", "--", "/bin/echo", "hi"}, 5, "a b", "/bin/echo hi"},
		{[]string{"-c", "bbcount", "a", "--", "/bin/echo", "--", "hi"}, 5, "a", "/bin/echo -- hi"},
	} {
		client, prog := splitClientArgs(tc.args, tc.args[len(tc.args)-tc.rest:])
		if strings.Join(client, " ") != tc.client || strings.Join(prog, " ") != tc.prog {
			t.Errorf("%q: client %q, prog %q; want %q, %q", tc.args, client, prog, tc.client, tc.prog)
		}
	}
}
