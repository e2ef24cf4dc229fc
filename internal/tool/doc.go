// Package tool is what cairnctl and cairnutl share to behave as etcdctl and
// etcdutl 3.7 do: their exit codes (cobrautl's), the completion command's
// scripts, and the -w table look.
package tool
