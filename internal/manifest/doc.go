// Package manifest loads and validates CKP 0.3.0 manifests (claw.yaml and
// primitive files) into the canonical, fully resolved types of types.go.
//
// Load reads a root manifest from disk, Parse decodes one given as bytes
// (YAML or JSON, for example from claw.initialize), and LoadPrimitive
// checks a single primitive file of any kind. Every problem found is
// returned in one *ErrorList, each entry with its file, line, column and
// field path.
//
// # Threat model
//
// A manifest may be written by someone other than the operator: sent by a
// CKP peer, copied from the web, or placed next to a trusted one. Such a
// manifest must not be able to crash or stall the loader, make it read
// files outside the manifest's directory (or any file at all when it came
// over the wire), make it reach the network, or smuggle a setting past the
// validator by way of a YAML feature, an unknown key, a duplicate key or a
// value of an unexpected type.
//
// # Guarantees
//
//   - Input is bounded: at most 4 MiB per file, 64 levels of nesting and 256
//     files per manifest. Invalid UTF-8, anchors and aliases (the
//     billion-laughs attack), merge keys, non-core tags, duplicate keys and
//     any document after the first are refused.
//   - Decoding is strict: an unknown key is an error, except in
//     metadata.annotations, the extra hints of Tool annotations and the
//     extra keys of policy rule conditions, where the schema allows them.
//     Those are kept for the runtime, which must not act on annotations.
//   - File refs (relative paths, globs, claw://local/KIND/NAME[@VERSION] and
//     the alias claw://KIND/NAME) resolve only inside Options.Dir: absolute
//     paths, ".." that leaves it and symlinks that point out of it are
//     refused, and files are opened through os.Root. With Options.Dir empty
//     every file ref is refused. claw://registry URIs are refused, as no
//     registry is configured. A file reached again while it is being loaded
//     is reported as a ref cycle, as is a provider fallback chain that comes
//     back to a provider.
//   - Tool input schemas are compiled with no loader: a $ref to http(s) or a
//     file does not compile, so loading a manifest never fetches anything.
//   - A Claw returned without error satisfies: a non-blank identity
//     personality, an autonomy of observer, supervised or autonomous, at
//     least one provider, unique valid tool names, a non-empty Builtin for
//     every tool, and every cross reference (fallback provider_ref,
//     skill_ref, world_model_ref, sandbox_ref, policy_ref) naming a declared
//     primitive. The rules of the official JSON Schemas hold as well: a
//     document those schemas reject is rejected here too.
//
// # Relative refs
//
// A relative path or glob is taken from the directory of the file that
// holds it (the root manifest's directory for claw.yaml); claw:// URIs
// always resolve to Options.Dir/KIND/NAME.yaml.
//
// # Shorthand and clawkeep extensions
//
// The forms below are not in the official schema. They are accepted and
// normalised to the canonical types; mixing a shorthand key with its
// canonical twin in one object is an error.
//
//   - An item may leave out the inline: wrapper: {rules: [...]} is
//     {inline: {rules: [...]}}, for every kind.
//   - Policy rules: pattern: "tool:NAME" or "tool:GLOB" means scope tool
//     with that tool pattern, pattern: "category:NAME" means scope category;
//     action approve or require_approval means require-approval; a rule
//     without id is named rule-POLICYINDEX-RULEINDEX.
//   - Policy rules, extension: match.tool, a tool name or glob or a list of
//     them, sets RuleMatch.Tools.
//   - Channels: kind: slack means type: slack (the platform).
//   - Sandbox: limits: means resource_limits:, and a spec-level network:
//     means capabilities.network, with modes restricted (allowlist), none
//     (deny), full or open (allow-all), and allowed_domains for
//     allowed_hosts.
//   - Provider limits: max_tokens_per_request, max_tokens_per_day and
//     max_cost_per_day_usd mean tokens_per_request, tokens_per_day and
//     ProviderLimits.CostPerDayUSD.
//   - Tool labels clawkeep.dev/builtin, clawkeep.dev/cost-tokens and
//     clawkeep.dev/cost-usd set Tool.Builtin, CostTokens and CostUSD; being
//     labels, they keep a manifest valid against the official schema.
//
// The loader is also stricter than the schema in places: names of
// primitives of one kind and rule ids across policies are unique, required
// trigger fields for cron, queue, imap and db-trigger channels, endpoints
// for otlp and webhook exporters and paths for file and sqlite exporters
// are required, shell blocked_patterns must compile as regular expressions,
// and MCP sources must use stdio:// or https://.
package manifest
