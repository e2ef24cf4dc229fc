// Package vfs is the file-system seam under the WAL, the snapshot files and
// (later) the server's data directory. Every file operation those packages
// make goes through FS, so tests can swap the disk for one that crashes or
// fails on demand.
//
// Three implementations:
//
//   - OS: the real file system. File.Sync is fdatasync on Linux (the WAL
//     preallocates its segments, so a data sync never has to flush a size
//     change), fsync elsewhere.
//   - MemFS: an in-memory file system that models what survives a power
//     loss. Crash keeps only what was made durable, following POSIX:
//     a file's bytes are durable once the file is synced; a new name (a
//     created file, a rename, a removal, a new directory) is durable only
//     once its directory is synced. CrashRandom also keeps an arbitrary
//     subset of what was not yet durable, sector by sector, as real disks
//     do.
//   - ErrorFS: a wrapper that fails the Nth operation of a chosen kind
//     (create, write, sync, rename, remove) with ErrInjected.
//
// Durability rules every user of FS must follow, because the real disk
// enforces them and MemFS checks them:
//
//  1. Data written to a file is durable only after File.Sync returns nil.
//  2. A file created, renamed or removed in directory D is durable only
//     after D itself is synced (OpenDir(D).Sync()).
//  3. A failed Sync leaves the file's contents unknown (Linux may drop the
//     dirty pages and clear the error, so a retry can falsely succeed).
//     Callers must treat it as fatal and recover by reopening from disk.
package vfs
