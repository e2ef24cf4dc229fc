// Package auth is Cairn's authentication and role-based access control:
// etcd 3.7's users, roles and key permissions, its rules for who may do
// what, and its tokens.
//
// # State
//
// A Store holds the auth state as of the applier's consistent index: the
// enabled flag, the auth revision, users (authpb.User: name, bcrypt hash,
// roles, options) and roles (authpb.Role: name, key permissions). Only
// the apply loop changes it, through Apply, which returns the backend
// writes that go into the entry's batch, so the state on disk and in
// memory move with the same raft index. Everyone else reads it under a
// shared lock. Backend keys:
//
//	c/auth/enabled        "1" or "0"
//	c/auth/revision       8 bytes, big-endian
//	c/auth/user/<name>    authpb.User, marshalled (etcd's authUsers bucket value)
//	c/auth/role/<name>    authpb.Role, marshalled (etcd's authRoles bucket value)
//
// The values are etcd's own encodings, so a snapshot file carries them
// across unchanged (package etcdsnap).
//
// # Permissions
//
// As etcd: with auth disabled everything is permitted; a user with the
// root role may do anything; anyone else needs, for a key, a permission
// of the right type whose range holds the key, and for a range [key, end)
// (end "\x00": every key from key on) the union of its permissions of
// that type must cover the whole range. A request carries the auth
// revision its token was checked at; one older than the store's is
// refused (ErrAuthOldRevision) and the client retries with a new token.
//
// # Tokens
//
// Simple tokens (etcd's "simple") are "<16 random letters>.<raft index>":
// the letters are drawn by the member that checked the password, the
// index is the Authenticate entry's, and every member learns the token by
// applying that entry. They expire after --auth-token-ttl without use and
// are dropped when their user is deleted or its password changed, or
// auth is disabled. JWT tokens (--auth-token jwt,...) are signed, carry
// the user name and auth revision, and expire after their ttl.
package auth
