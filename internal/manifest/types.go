package manifest

import "encoding/json"

// The types below are the canonical, resolved form of a manifest: every ref
// is loaded, every shorthand normalised, every default applied and every
// generated name filled in. Code outside this package reads these and never
// sees YAML.

// Autonomy is an identity's autonomy level. The loader always sets one of the
// three constants; any other value must be treated as "deny everything".
type Autonomy string

const (
	Observer   Autonomy = "observer"   // no side-effecting tool runs
	Supervised Autonomy = "supervised" // side-effecting tools need approval unless a rule allows them by name or category
	Autonomous Autonomy = "autonomous" // bound by policy alone
)

// Meta is the metadata every primitive carries.
type Meta struct {
	Name        string            // kebab-case, 1-63 chars; generated when omitted
	Version     string            // semver or ""
	Labels      map[string]string // or nil
	Annotations map[string]any    // or nil; the runtime must not act on them
}

// Claw is a loaded root manifest.
type Claw struct {
	Meta
	Description string
	File        string // absolute path of the root file; "" for a manifest given inline

	Identity    Identity
	Providers   []Provider // at least one
	Channels    []Channel
	Tools       []Tool // names unique
	Skills      []Skill
	Memory      *Memory // or nil
	WorldModels []WorldModel
	Sandbox     *Sandbox   // or nil: the kernel then applies the most restrictive sandbox
	Policies    []Policy   // evaluated as one concatenated first-match list
	Swarm       *Swarm     // or nil
	Telemetry   *Telemetry // or nil
}

// Identity is the agent's identity.
type Identity struct {
	Meta
	Personality  string // never empty
	ContextFiles map[string]string
	Locale       string   // default en-US
	Capabilities []string // informational
	Autonomy     Autonomy // default Supervised
}

// Provider is an LLM provider and its spending limits.
type Provider struct {
	Meta
	Protocol  string // openai-compatible | anthropic-native | custom
	Endpoint  string
	Model     string
	Auth      ProviderAuth
	Streaming bool
	Hints     ProviderHints
	Fallback  []string // provider_ref values, tried in order
	Limits    ProviderLimits
	Retry     Retry
	// Capabilities and Transport are schema.ts-only fields.
	Capabilities []string
	Transport    string
}

type ProviderAuth struct {
	Type      string // bearer | api-key-header | oauth2 | none
	SecretRef string // required unless Type is none; a name, never a value
}

type ProviderHints struct {
	CostPriority, SpeedPriority, IntelligencePriority *float64
}

// ProviderLimits are spending limits; a zero field means "no limit set".
type ProviderLimits struct {
	TokensPerDay      int64
	TokensPerRequest  int64
	RequestsPerMinute int64
	MaxContextWindow  int64
	// CostPerDayUSD has no schema field; it is reached through the shorthand
	// limits.max_cost_per_day_usd.
	CostPerDayUSD float64
}

type Retry struct {
	MaxAttempts    int
	Backoff        string // exponential | linear | constant | ""
	InitialDelayMS int64
}

// Channel is a way for humans to reach the agent.
type Channel struct {
	Meta
	Type          string
	Transport     string
	Auth          ChannelAuth
	AccessControl AccessControl
	Processing    ChannelProcessing
	Features      map[string]bool
	Trigger       *ChannelTrigger // or nil
}

type ChannelAuth struct {
	SecretRef string
}

type AccessControl struct {
	Mode       string // open | allowlist | pairing | role-based
	AllowedIDs []string
	Pairing    *Pairing // or nil
	Roles      []RoleBinding
}

type Pairing struct {
	CodeExpiryMinutes int
	MaxPending        int
}

type RoleBinding struct {
	ID   string
	Role string // admin | user | viewer
}

type ChannelProcessing struct {
	MaxMessageLength  int
	MessagesPerMinute int
	Burst             int
	TypingIndicator   bool
	ReadReceipts      bool
}

type ChannelTrigger struct {
	Schedule      string
	QueueName     string
	Mailbox       string
	Table         string
	Events        []string
	MaxParallel   int    // default 1
	OverlapPolicy string // default skip
}

// Labels that bind a manifest tool to clawkeep behaviour. They live in
// metadata.labels so that a manifest stays valid against the official schema.
const (
	// LabelBuiltin names the built-in implementation of a tool; when absent
	// the tool's own name is used.
	LabelBuiltin = "clawkeep.dev/builtin"
	// LabelCostTokens is the number of provider tokens one call of the tool
	// is charged against the provider's limits (an integer, default 0).
	LabelCostTokens = "clawkeep.dev/cost-tokens"
	// LabelCostUSD is the cost in US dollars one call is charged against
	// cost_per_day_usd limits (a decimal, default 0).
	LabelCostUSD = "clawkeep.dev/cost-usd"
	// LabelExec makes the tool an exec tool: a JSON array, the command's
	// absolute path and leading arguments, run in the process or
	// container sandbox with the call's "args" appended as argv.
	LabelExec = "clawkeep.dev/exec"
	// LabelWASM makes the tool a wasm tool: the module's path, relative to
	// the manifest, run in the wasm sandbox. LabelWASMSHA256 (required)
	// pins its sha256; LabelWASMFunction names the export ("_start").
	LabelWASM         = "clawkeep.dev/wasm"
	LabelWASMSHA256   = "clawkeep.dev/wasm-sha256"
	LabelWASMFunction = "clawkeep.dev/wasm-function"
	// LabelCategory is the label policy category rules match.
	LabelCategory = "category"
)

// Tool is a tool the agent may call.
type Tool struct {
	Meta
	Description  string
	InputSchema  json.RawMessage // JSON object; nil only when MCPSource is set
	OutputSchema json.RawMessage // or nil
	SandboxRef   string
	PolicyRef    string
	MCPSource    *MCPSource // or nil
	Annotations  ToolAnnotations
	TimeoutMS    int64 // 0 = runtime default
	Retry        Retry
	Composite    bool
	SkillRef     string

	// Derived from labels by the loader (see the Label constants). A tool
	// is of exactly one kind: Exec, WASM, or else a built-in.
	Exec       []string    // exec tool: absolute command path and leading arguments; or nil
	WASM       *WASMModule // wasm tool, or nil
	Builtin    string      // never empty after loading; unused for exec and wasm tools
	CostTokens int64       // >= 0
	CostUSD    float64     // >= 0
}

// WASMModule is a wasm tool's module, read by the loader from inside the
// manifest directory and checked against its pinned sha256.
type WASMModule struct {
	Path     string // as written in the manifest
	SHA256   string // lowercase hex, and the hash of Code
	Function string
	Code     []byte
}

type MCPSource struct {
	URI      string
	ToolName string
}

// ToolAnnotations are MCP tool annotations. A nil hint was not declared.
type ToolAnnotations struct {
	ReadOnly, Destructive, Idempotent, OpenWorld *bool
	Extra                                        map[string]any // other keys, or nil
}

// Skill is a reusable workflow description.
type Skill struct {
	Meta
	Description   string
	ToolsRequired []string
	Instruction   string
	InputSchema   json.RawMessage
	OutputSchema  json.RawMessage
	Permissions   SkillPermissions
	WorldModelRef string
	Estimates     SkillEstimates
}

type SkillPermissions struct {
	Network          *bool
	Filesystem       string // none | read-only | write-workspace | full | ""
	ApprovalRequired *bool
}

type SkillEstimates struct {
	AvgTokens, AvgDurationSeconds, AvgToolCalls int64
}

// Memory declares the agent's memory stores.
type Memory struct {
	Meta
	Stores []MemoryStore
}

// MemoryStore keeps the fields the runtime enforces; the rest of the
// schema's store fields are validated but kept only in Raw.
type MemoryStore struct {
	Name      string
	Type      string
	Role      string
	Backend   string
	Scope     string
	Isolation string
	Path      string
	Raw       map[string]any
}

// WorldModel is a 0.3.0 world-model declaration.
type WorldModel struct {
	Meta
	Paradigm string
	Scope    string
	Backend  WorldModelBackend
	Raw      map[string]any
}

type WorldModelBackend struct {
	Type string
	Ref  string
}

// Sandbox describes where and how tools run.
type Sandbox struct {
	Meta
	Level   string // none | process | wasm | container | vm
	Runtime string // inferred from Level when absent
	Network NetworkCaps
	FS      FilesystemCaps
	Secrets SecretCaps
	Shell   ShellCaps
	Limits  ResourceLimits
}

// NetworkCaps is the sandbox's network capability. The loader sets Mode to
// "deny" when the manifest leaves it out.
type NetworkCaps struct {
	Mode         string // deny | allowlist | allow-all
	AllowedHosts []string
	SSRF         SSRFProtection
}

// SSRFProtection records what the manifest asked for. clawkeep refuses
// metadata, loopback and private addresses whatever these say.
type SSRFProtection struct {
	Enabled, BlockPrivateIPs, DNSPinning *bool
}

// FilesystemCaps is the sandbox's filesystem capability; Mode defaults to deny.
type FilesystemCaps struct {
	Mode        string // deny | read-only | scoped | full
	MountPaths  []Mount
	DeniedPaths []string
}

type Mount struct {
	Path        string
	Permissions string // ro | rw
}

type SecretCaps struct {
	Injection         string
	Encryption        string
	LeakDetection     *bool
	LeakPatternsCount int
}

// ShellCaps is the sandbox's shell capability; Mode defaults to deny.
type ShellCaps struct {
	Mode            string // deny | restricted | full
	BlockedCommands []string
	BlockedPatterns []string
}

// ResourceLimits; a zero field means "not set" and the runtime default applies.
type ResourceLimits struct {
	MemoryMB       int64
	CPUShares      int64
	MaxProcesses   int64
	MaxOpenFiles   int64
	TimeoutMS      int64
	MaxOutputBytes int64
}

// Policy is one policy primitive.
type Policy struct {
	Meta
	Rules           []Rule // at least one
	PromptInjection *PromptInjection
	SecretScanning  *SecretScanning
	InputValidation *InputValidation
	RateLimits      RateLimits
	Audit           *AuditSettings
}

// Rule is one policy rule, in canonical form.
type Rule struct {
	ID         string
	Action     string // allow | deny | require-approval | audit-only
	Scope      string // tool | category | all
	Match      RuleMatch
	Reason     string
	Approval   *RuleApproval // or nil: runtime defaults
	Conditions RuleConditions
	RateLimit  *RuleRateLimit // or nil
	Pos        Pos            // where the rule was written
}

// RuleMatch: a rule applies when every field that is set matches.
type RuleMatch struct {
	// Tools are tool-name patterns: exact names or globs with '*'. This is a
	// clawkeep extension reached through match.tool (a string or a list) or
	// the shorthand pattern: "tool:NAME".
	Tools       []string
	Annotations map[string]any
	Category    string
}

type RuleApproval struct {
	TimeoutSeconds   int    // >= 1
	DefaultIfTimeout string // deny | allow; default deny
}

type RuleConditions struct {
	PathWithin string         // or ""
	Extra      map[string]any // other condition keys, or nil
}

type RuleRateLimit struct {
	CostPerDayUSD *float64
	TokensPerDay  *int64
}

type PromptInjection struct {
	Detection     string
	PatternEngine string
	PatternCount  int
	Action        string
}

type SecretScanning struct {
	Enabled  bool
	Scope    string
	Patterns int
	Action   string
}

type InputValidation struct {
	MaxSizeBytes       int64
	NullByteDetection  bool
	WhitespaceAnalysis bool
	Encoding           string
}

// RateLimits are policy-wide limits; a zero field means "not set".
type RateLimits struct {
	ToolCallsPerMinute int64
	TokensPerHour      int64
	CostPerDayUSD      float64
}

type AuditSettings struct {
	LogInputs, LogOutputs, LogApprovals bool
	Retention                           string
	Destination                         string
}

// Swarm declares agents that work together.
type Swarm struct {
	Meta
	Topology string
	Agents   []SwarmAgent
	Raw      map[string]any
}

type SwarmAgent struct {
	IdentityRef string
	Role        string
	ProviderRef string
	Count       int
}

// Telemetry declares exporters.
type Telemetry struct {
	Meta
	Exporters []map[string]any
	Raw       map[string]any
}

// Pos is a position in a manifest file.
type Pos struct {
	File string
	Line int // 1-based; 0 when unknown
	Col  int // 1-based; 0 when unknown
}
