// Package tenant runs each organisation in its own OS process: the
// supervisor starts, watches and stops one worker per organisation and
// forwards requests to it over a Unix socket; the worker owns everything
// the organisation has (agents, abilities, credentials, approvals, audit
// chain) and runs every tool call through the kernel.
//
// # Threat model
//
// One tenant may be hostile, or hijacked through one of its agents: it
// sends crafted requests, crashes or overloads its worker, or gets code
// execution inside it. None of that may reach another tenant. So:
//
//   - A worker holds only its organisation's data directory, with its own
//     SQLite files, vault master key and audit key. Nothing is shared
//     between workers but the binary.
//   - Run as root, the supervisor gives every worker its own uid (base +
//     organisation id) and its data directory mode 0700 owned by that uid,
//     so a compromised worker cannot open another's files. Not run as
//     root, all workers share the supervisor's uid and only modes 0700/0600
//     keep other local users out.
//   - The socket between supervisor and worker is in a 0700 directory, and
//     every request on it carries a 32-byte secret the supervisor handed
//     the worker on its stdin (never on the command line or in the
//     environment, which other processes of the same uid can read). The
//     worker compares it in constant time and refuses anything else, so a
//     process that finds the socket still cannot speak for the supervisor.
//   - The supervisor decides who the caller is and what role they have;
//     the worker trusts the actor headers only because the secret proves
//     the supervisor sent them.
//   - A worker that dies is restarted with backoff; what it acknowledged
//     was on disk first (SQLite with synchronous=FULL, the audit chain
//     fsynced), so a crash loses only calls that never got an answer.
package tenant
