// Package ckp speaks the Claw Kernel Protocol (CKP 0.3.0) over
// newline-delimited JSON-RPC 2.0: the codec, the wire error type and its
// one mapping from Go errors, and a connection server that runs the CKP
// lifecycle in front of a Handler.
//
// # Threat model
//
// The peer on a connection may send anything: invalid UTF-8, invalid or
// deeply nested JSON, unbounded lines, huge batches, unknown or duplicated
// members, requests out of lifecycle order, and more requests than it
// waits for. It may also stop reading its replies. The Handler is trusted
// code, but its errors may carry paths or secrets, and it may block (a
// tool call waiting for a human) or panic.
//
// # Guarantees
//
//   - Bad input never ends a connection: every line gets the exact JSON-RPC
//     or CKP error, or silence when it was a notification.
//   - Memory per connection is bounded by MaxFrameBytes for the line being
//     read and by MaxInFlight for the requests being served.
//   - What the Handler sees was decoded strictly: valid UTF-8, at most 64
//     levels deep, no unknown or duplicated members, no null read as a
//     zero value.
//   - No method but claw.initialize reaches the Handler before an
//     initialize succeeded, and no tool call reaches it after a shutdown
//     began.
//   - A Go error reaches the peer only through ErrorFrom, which sends no
//     text from errors that did not declare themselves safe (*Error, Coded).
//   - A blocked tool call never blocks the reader, so the approval that
//     releases it can arrive on the same connection.
//   - Params and results are never logged.
package ckp
