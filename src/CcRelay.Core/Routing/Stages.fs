namespace CcRelay.Core

open System

/// What the host knows about a request from its headers.
type StageHeaders = {
    /// `x-claude-code-agent-id` is present (a subagent's request).
    AgentId: bool
    /// `anthropic-beta` contains `claude-code-20250219` (Claude Code's main loop and subagents send it).
    ClaudeCodeBeta: bool
    /// The client is Claude Code (`user-agent` starts with `claude-cli/`, or an `x-app` header is present).
    ClaudeCode: bool
}

/// Where one request goes and why: the stage, a short reason, and the targets (empty: every provider, as
/// without stages). The seam later work attaches to: a stage's targets pick the candidates.
type StageDecision = {
    Stage: Stage
    /// A short, bounded reason (`thinking-adaptive`, `title`, `agent-header`, `tokens>60000`, …).
    Reason: string
    Targets: StageTarget list
}

/// Classifying requests into stages, and resolving `provider,model` model names.
///
/// Precedence (the first that holds wins; a stage without configured targets is skipped, and `default`
/// always holds, so classification is total):
/// 1. a model name `provider,model` (or `provider/model`, see `tryDirect`) → `direct`
/// 2. a subagent model tag in a system text → `subagent` with the tag's target (configured or not)
/// 3. `long_context`: estimated input tokens > `long_context_threshold`
/// 4. `web_search`: a `web_search*` server tool
/// 5. `image`: an image in the latest user turn
/// 6. `subagent`: `x-claude-code-agent-id`, or ` cc_is_subagent=true;` in the attribution block
/// 7. `background`: `max_tokens` ≤ 1 (probes, quota and key checks), compaction, a title or Bash-prefix
///    system prompt, a haiku model without tools, or a Claude Code request without tools and without the
///    `claude-code-20250219` beta (auxiliary)
/// 8. `think`: `thinking.type` `enabled` or `adaptive`
/// 9. `default`
[<RequireQualifiedAccess>]
module Stages =

    /// No stage facts (`RequestFacts.noStages`).
    let empty: StageFacts = RequestFacts.noStages

    // ---------------------------
    // Model switching
    // ---------------------------

    /// The provider and model a model name switches to, if it does. `provider,model`: when `provider` names
    /// an enabled provider. `provider/model`: when `provider` names an enabled provider and no enabled
    /// provider lists or maps the whole name (so OpenRouter's `anthropic/claude-sonnet-4` stays a model id
    /// wherever a provider lists it). The model part must not be empty.
    let tryDirect (config: RelayConfig) (model: string) : StageTarget option =
        // the usual model name has neither separator: no allocation, no provider scan
        if
            not config.Routing.Stages.ModelSwitching
            || model.AsSpan().IndexOfAny(',', '/') < 0
        then
            None
        else
            let enabled = config.Providers |> List.filter _.Enabled

            let split (separator: char) =
                let at = model.IndexOf separator

                if at <= 0 || at = model.Length - 1 then
                    None
                else
                    let provider = model.Substring(0, at)

                    if enabled |> List.exists (fun p -> p.Name = provider) then
                        Some {
                            Provider = provider
                            Model = Some(model.Substring(at + 1))
                        }
                    else
                        None

            match split ',' with
            | Some target -> Some target
            | None ->
                let served =
                    enabled
                    |> List.exists (fun p -> List.contains model p.Models || p.ModelMapping.ContainsKey model)

                if served then None else split '/'

    /// A target named in a tag or a `provider,model` string: `provider`, `provider,model` or
    /// `provider/model`; None when the provider is not an enabled one.
    let private parseTarget (config: RelayConfig) (text: string) : StageTarget option =
        let enabled (name: string) =
            config.Providers |> List.exists (fun p -> p.Enabled && p.Name = name)

        let at = text.IndexOfAny [| ','; '/' |]

        if at < 0 then
            if enabled text then
                Some { Provider = text; Model = None }
            else
                None
        else
            let provider = text.Substring(0, at).Trim()
            let model = text.Substring(at + 1).Trim()

            if enabled provider then
                Some {
                    Provider = provider
                    Model = if model.Length > 0 then Some model else None
                }
            else
                None

    // ---------------------------
    // Classification
    // ---------------------------

    /// Whether any stage routing is configured: without it (and without a `provider,model` name) a request
    /// is routed exactly as before, and the body is not read again.
    let active (config: RelayConfig) : bool =
        not config.Routing.Stages.Routes.IsEmpty

    let private targetsOf (config: RelayConfig) (stage: Stage) : StageTarget list =
        config.Routing.Stages.Routes
        |> List.tryFind (fun (s, _) -> s = stage)
        |> Option.map snd
        |> Option.defaultValue []

    /// Every stage whose condition holds for the request, in precedence order, with its reason (`default`
    /// always last). Pure and total: the same facts give the same list.
    let matching
        (threshold: int)
        (facts: RequestFacts)
        (stage: StageFacts)
        (headers: StageHeaders)
        : (Stage * string) list = [
        if facts.EstimatedInputTokens > threshold then
            Stage.LongContext, $"tokens>%d{threshold}"
        if stage.WebSearchTool then
            Stage.WebSearch, "web-search-tool"
        if stage.LatestUserImage then
            Stage.Image, "image"
        if headers.AgentId then
            Stage.Subagent, "agent-header"
        elif stage.SubagentMarker then
            Stage.Subagent, "subagent-marker"
        if facts.MaxTokens > 0 && facts.MaxTokens <= 1 then
            Stage.Background, "probe"
        elif stage.LatestUserCompaction then
            Stage.Background, "compaction"
        elif stage.SideRequest.Length > 0 then
            Stage.Background, stage.SideRequest
        elif
            not stage.HasTools
            && facts.Model.Contains("haiku", StringComparison.OrdinalIgnoreCase)
        then
            Stage.Background, "haiku"
        elif headers.ClaudeCode && not stage.HasTools && not headers.ClaudeCodeBeta then
            Stage.Background, "auxiliary"
        if stage.Thinking = "enabled" || stage.Thinking = "adaptive" then
            Stage.Think, $"thinking-%s{stage.Thinking}"
        Stage.Default, "default"
    ]

    /// The decision for one request: a `provider,model` switch, a tag, else the first matching stage that
    /// has targets; `default` with no targets (every provider) when none has.
    let decide (config: RelayConfig) (facts: RequestFacts) (stage: StageFacts) (headers: StageHeaders) : StageDecision =
        match tryDirect config facts.Model with
        | Some target -> {
            Stage = Stage.Direct
            Reason = "model-switch"
            Targets = [ target ]
          }
        | None ->
            match
                (if stage.ModelTag.Length > 0 then
                     parseTarget config stage.ModelTag
                 else
                     None)
            with
            | Some target -> {
                Stage = Stage.Subagent
                Reason = "model-tag"
                Targets = [ target ]
              }
            | None ->
                let configured =
                    matching config.Routing.Stages.LongContextThreshold facts stage headers
                    |> List.tryPick (fun (s, reason) ->
                        match targetsOf config s with
                        | [] -> None
                        | targets -> Some(s, reason, targets))

                match configured with
                | Some(s, reason, targets) -> {
                    Stage = s
                    Reason = reason
                    Targets = targets
                  }
                | None -> {
                    Stage = Stage.Default
                    Reason = "default"
                    Targets = []
                  }

    /// The decision when nothing is read from the body: model switching only (the cheap path when no stage
    /// is configured); None when the request routes as without stages.
    let tryDirectDecision (config: RelayConfig) (model: string) : StageDecision option =
        tryDirect config model
        |> Option.map (fun target -> {
            Stage = Stage.Direct
            Reason = "model-switch"
            Targets = [ target ]
        })

    /// The decision without stages or a switch: every provider, as without stages.
    let private unstaged: StageDecision = {
        Stage = Stage.Default
        Reason = "default"
        Targets = []
    }

    /// Headers that say nothing (for callers that know no stage is configured: `active` is false).
    let noHeaders: StageHeaders = {
        AgentId = false
        ClaudeCodeBeta = false
        ClaudeCode = false
    }

    /// Classifies one request from its facts. When stages are configured (`active`), `facts` must have been read
    /// with their stage facts (`RequestFacts.inspectWithStages`, the same one pass over the body): classification
    /// never reads the body itself.
    let classify (config: RelayConfig) (facts: RequestFacts) (headers: StageHeaders) : StageDecision =
        if active config then
            decide config facts facts.Stage headers
        else
            match tryDirectDecision config facts.Model with
            | Some decision -> decision
            | None -> unstaged

    /// The headers' facts from their raw values ("" when absent).
    let headersOf (agentId: string) (betas: string) (userAgent: string) (app: string) : StageHeaders = {
        AgentId = agentId.Length > 0
        ClaudeCodeBeta = betas.Contains("claude-code-20250219", StringComparison.Ordinal)
        ClaudeCode = userAgent.StartsWith("claude-cli/", StringComparison.Ordinal) || app.Length > 0
    }

/// The C#-facing surface of `Stages`.
type StageDecision with

    /// The stage's wire name (`Stage.wireName`).
    member this.StageName: string = Stage.wireName this.Stage

    /// Classifies a request (`Stages.classify`): `facts` read with `RequestFacts.Inspect(body, Stages.active(config))`.
    static member Classify(config: RelayConfig, facts: RequestFacts, headers: StageHeaders) : StageDecision =
        Stages.classify config facts headers
