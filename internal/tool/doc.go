// Package clitable draws tables and sizes as etcdctl and etcdutl 3.7 print
// them (-w table), for cairnctl and cairnutl.
package clitable
