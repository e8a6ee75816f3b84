// Package vault keeps tenant credentials encrypted at rest under envelope
// encryption: a master key wraps one data key per tenant, and each data key
// seals that tenant's secrets.
//
// A directory holds one vault: vault.db (SQLite, mode 0600) and, unless
// Options.MasterKeyFile names another file, master.key (32 random bytes,
// mode 0600, created by the first Open). The directory is created 0700.
// Each tenant's 32-byte data key is stored wrapped with AES-256-GCM under
// the master key, with the additional data "clawkeep vault dek v1" followed
// by the tenant. Each secret is sealed with AES-256-GCM under its tenant's
// data key with a fresh random 96-bit nonce; the additional data binds the
// format version, tenant, name and type (length-prefixed), so a row moved to
// another tenant, renamed or retyped no longer opens. vault.db also holds an
// HMAC-SHA256 check value of the master key, so a wrong key is reported as
// such (ErrWrongKey) before anything is decrypted, and never overwrites data.
//
// # Threat model
//
// The attacker can read and write vault.db with plain SQL (an operator with
// a database shell, a stolen or restored backup, a process sharing the data
// directory) but cannot read the master key. They learn tenant names, secret
// names, types, sizes and timestamps, and nothing about secret values or data
// keys. Any modified, truncated, moved (to another tenant), renamed or
// retyped ciphertext, nonce or wrapped data key makes Get fail with
// ErrCorrupt instead of returning a value.
//
// The vault cannot detect:
//   - an attacker who can read the master key file: the key opens everything;
//   - deletion of a row, or the replay of an older ciphertext of the same
//     tenant, name and type (a rolled-back secret): nothing ties a row to a
//     time or a counter;
//   - a vault.db deleted or emptied to zero bytes, which opens as a new,
//     empty vault (a truncation to any other length is ErrCorrupt);
//   - an attacker who can read this process's memory (a debugger, a core
//     dump, /proc/PID/mem as the same user): see Memory below.
//
// # Memory
//
// Go cannot promise that a secret leaves no copy in memory. Secret keeps
// the plaintext in one []byte that the vault allocates and Wipe zeroes, and
// the package decrypts straight into it; but the Go runtime may have left
// copies in registers, on stacks that have since moved, in AES-GCM scratch
// buffers, and in any string or slice the caller derives (an HTTP header is
// a string, which cannot be wiped). The garbage collector does not move heap
// objects today, but that is not a documented promise. Go 1.26's
// runtime/secret (secret.Do, behind GOEXPERIMENT=runtimesecret, linux/amd64
// and arm64 only) erases registers, stacks and temporary heap of a call
// tree, but not a value that must outlive the call, which is what a Secret
// is; it is not used here, so the build needs no experiment. The package
// does not use github.com/awnumar/memguard either: its locked, guarded pages
// protect only the bytes inside them, and every use of a credential copies
// it out into ordinary memory. Wipe therefore shortens the life of the
// vault's own copy and nothing more; the threat model above excludes memory
// readers.
//
// # Guarantees
//
//   - Open refuses a master key file that is not a regular file, is
//     readable or writable by group or others, or is not exactly 32 bytes
//     (ErrLocked); a key that does not match the vault (ErrWrongKey), which
//     leaves the vault unchanged so the right key still opens it; a
//     vault.db that fails SQLite's integrity check (ErrCorrupt); and a
//     missing default master.key when vault.db already holds a key check.
//   - Get returns a value only if it authenticates under the tenant's data
//     key for exactly that tenant, name and type; otherwise ErrCorrupt or
//     ErrNotFound.
//   - RotateMasterKey re-wraps every data key and replaces the key check in
//     one SQLite transaction: either all tenants move to the new key or none
//     do. Secrets are not re-encrypted, so the vault stays open and serving.
//   - No error, log record or printed Secret holds a secret value or key
//     material. Secret prints as [redacted] with every fmt verb, JSON, text
//     and slog.
package vault
