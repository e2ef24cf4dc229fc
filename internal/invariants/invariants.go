// Package invariants says whether expensive internal consistency checks
// run. They are on under the race detector or the `invariants` build tag
// (which the test suite uses: see the README), and compiled out otherwise,
// so production pays nothing for them. Corrupt state found by a check
// crashes loudly; it is never patched over.
package invariants
