namespace CcRelay.Core

open System
open System.Text.Json

/// What stage classification needs from a request body beyond `RequestFacts`, read in one `Utf8JsonReader`
/// pass over the body (only when stages or model switching are in use), never re-serialised.
type StageFacts = {
    /// The top-level `thinking.type`: "enabled", "adaptive", "disabled", or "" when absent.
    Thinking: string
    /// Some `tools[i].type` starts with `web_search`.
    WebSearchTool: bool
    /// `tools` has at least one entry.
    HasTools: bool
    /// Some system text carries Claude Code's ` cc_is_subagent=true;` attribution marker.
    SubagentMarker: bool
    /// The text inside the first `<CC-RELAY-MODEL>…</CC-RELAY-MODEL>` (or claude-code-router's
    /// `<CCR-SUBAGENT-MODEL>…</CCR-SUBAGENT-MODEL>`) tag of a system text; "" when there is none.
    ModelTag: string
    /// The Claude Code side request recognised from a system text's start ("title", "bash-prefix"); "".
    SideRequest: string
    /// The latest user turn holds an image (directly, or in a tool result).
    LatestUserImage: bool
    /// The latest user turn starts with Claude Code's compaction instruction.
    LatestUserCompaction: bool
}

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

    let private thinkingName: byte array = "thinking"B
    let private toolsName: byte array = "tools"B
    let private systemName: byte array = "system"B
    let private messagesName: byte array = "messages"B
    let private typeName: byte array = "type"B
    let private textName: byte array = "text"B
    let private roleName: byte array = "role"B
    let private contentName: byte array = "content"B
    let private userName: byte array = "user"B
    let private imageName: byte array = "image"B
    let private webSearchPrefix: byte array = "web_search"B
    let private subagentMarker: byte array = "cc_is_subagent=true"B

    let private compactionPrefix: byte array =
        "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools."B

    /// Claude Code side requests recognised by how their system prompt starts (protocols.md §7.7).
    let private sidePrompts: (byte array * string) list = [
        "Generate a concise, sentence-case title"B, "title"
        "Your task is to process Bash commands that an AI coding agent wants to run."B, "bash-prefix"
    ]

    /// The subagent model tags: CcRelay's own, and claude-code-router's.
    let private tags: (string * string) list = [
        "<CC-RELAY-MODEL>", "</CC-RELAY-MODEL>"
        "<CCR-SUBAGENT-MODEL>", "</CCR-SUBAGENT-MODEL>"
    ]

    let private tagBytes: byte array array = [| "CC-RELAY-MODEL>"B; "CCR-SUBAGENT-MODEL>"B |]

    /// No facts: what an empty or unreadable body gives.
    let empty: StageFacts = {
        Thinking = ""
        WebSearchTool = false
        HasTools = false
        SubagentMarker = false
        ModelTag = ""
        SideRequest = ""
        LatestUserImage = false
        LatestUserCompaction = false
    }

    let private readerOptions =
        JsonReaderOptions(CommentHandling = JsonCommentHandling.Disallow, AllowTrailingCommas = false, MaxDepth = 512)

    /// The tag's content in a system text (decoded), or "".
    let private findTag (text: string) : string =
        tags
        |> List.tryPick (fun (opening, closing) ->
            let start = text.IndexOf(opening, StringComparison.Ordinal)

            if start < 0 then
                None
            else
                let from = start + opening.Length
                let stop = text.IndexOf(closing, from, StringComparison.Ordinal)

                if stop < 0 then
                    None
                else
                    Some(text.Substring(from, stop - from).Trim()))
        |> Option.defaultValue ""

    /// Whether the current string value starts with `prefix` (ASCII), escapes decoded.
    let private startsWith (reader: byref<Utf8JsonReader>) (prefix: byte array) : bool =
        if reader.ValueIsEscaped then
            let text = reader.GetString() |> Option.ofObj |> Option.defaultValue ""
            text.StartsWith(Text.Encoding.ASCII.GetString prefix, StringComparison.Ordinal)
        else
            reader.ValueSpan.StartsWith(ReadOnlySpan prefix)

    /// What one system text says (index 0 is the attribution block).
    let private systemText (reader: byref<Utf8JsonReader>) (index: int) (f: StageFacts) : StageFacts =
        let mutable f = f

        if reader.ValueIsEscaped then
            // escapes decoded: what the text says, not how it was written
            let text = reader.GetString() |> Option.ofObj |> Option.defaultValue ""

            if text.Contains("cc_is_subagent=true", StringComparison.Ordinal) then
                f <- { f with SubagentMarker = true }

            if f.ModelTag.Length = 0 then
                let tag = findTag text

                if tag.Length > 0 then
                    f <- { f with ModelTag = tag }

            if index >= 1 && f.SideRequest.Length = 0 then
                for (prefix, kind) in sidePrompts do
                    if
                        f.SideRequest.Length = 0
                        && text.StartsWith(Text.Encoding.ASCII.GetString prefix, StringComparison.Ordinal)
                    then
                        f <- { f with SideRequest = kind }
        else
            let raw = reader.ValueSpan

            if raw.IndexOf(ReadOnlySpan subagentMarker) >= 0 then
                f <- { f with SubagentMarker = true }

            if
                f.ModelTag.Length = 0
                && (raw.IndexOf(ReadOnlySpan tagBytes[0]) >= 0
                    || raw.IndexOf(ReadOnlySpan tagBytes[1]) >= 0)
            then
                let tag = findTag (Text.Encoding.UTF8.GetString raw)

                if tag.Length > 0 then
                    f <- { f with ModelTag = tag }

            if index >= 1 && f.SideRequest.Length = 0 then
                for (prefix, kind) in sidePrompts do
                    if f.SideRequest.Length = 0 && raw.StartsWith(ReadOnlySpan prefix) then
                        f <- { f with SideRequest = kind }

        f

    /// Reads the stage facts of a body in one pass. The reader works on the span it is given and never
    /// beyond it; a body that is not JSON yields the facts read before the fault.
    let inspect (body: ReadOnlySpan<byte>) : StageFacts =
        let mutable reader = Utf8JsonReader(body, readerOptions)
        let mutable facts = empty
        // 0 none, 1 thinking, 2 tools, 3 system, 4 messages
        let mutable section = 0
        let mutable systemIndex = 0
        let mutable role = false
        let mutable messageImage = false
        let mutable messageCompaction = false
        let mutable firstText = true

        try
            if reader.Read() && reader.TokenType = JsonTokenType.StartObject then
                while reader.Read() do
                    let depth = reader.CurrentDepth

                    match reader.TokenType with
                    | JsonTokenType.PropertyName when depth = 1 ->
                        section <-
                            if reader.ValueTextEquals thinkingName then 1
                            elif reader.ValueTextEquals toolsName then 2
                            elif reader.ValueTextEquals systemName then 3
                            elif reader.ValueTextEquals messagesName then 4
                            else 0

                        if section = 3 then
                            reader.Read() |> ignore

                            if reader.TokenType = JsonTokenType.String then
                                facts <- systemText &reader 0 facts
                        elif section = 0 then
                            reader.Read() |> ignore

                            if
                                reader.TokenType = JsonTokenType.StartObject
                                || reader.TokenType = JsonTokenType.StartArray
                            then
                                reader.Skip()
                    | JsonTokenType.PropertyName when section = 1 && depth = 2 && reader.ValueTextEquals typeName ->
                        reader.Read() |> ignore

                        if reader.TokenType = JsonTokenType.String then
                            facts <- {
                                facts with
                                    Thinking = reader.GetString() |> Option.ofObj |> Option.defaultValue ""
                            }
                    | JsonTokenType.StartObject when section = 2 && depth = 2 -> facts <- { facts with HasTools = true }
                    | JsonTokenType.PropertyName when section = 2 && depth = 3 && reader.ValueTextEquals typeName ->
                        reader.Read() |> ignore

                        if reader.TokenType = JsonTokenType.String && startsWith &reader webSearchPrefix then
                            facts <- { facts with WebSearchTool = true }
                    | JsonTokenType.PropertyName when section = 3 && depth = 3 && reader.ValueTextEquals textName ->
                        reader.Read() |> ignore

                        if reader.TokenType = JsonTokenType.String then
                            facts <- systemText &reader systemIndex facts
                    | JsonTokenType.EndObject when section = 3 && depth = 2 -> systemIndex <- systemIndex + 1
                    | JsonTokenType.StartObject when section = 4 && depth = 2 ->
                        role <- false
                        messageImage <- false
                        messageCompaction <- false
                        firstText <- true
                    | JsonTokenType.EndObject when section = 4 && depth = 2 ->
                        if role then
                            facts <- {
                                facts with
                                    LatestUserImage = messageImage
                                    LatestUserCompaction = messageCompaction
                            }
                    | JsonTokenType.PropertyName when section = 4 && depth = 3 ->
                        if reader.ValueTextEquals roleName then
                            reader.Read() |> ignore
                            role <- reader.TokenType = JsonTokenType.String && reader.ValueTextEquals userName
                        elif reader.ValueTextEquals contentName then
                            reader.Read() |> ignore

                            if reader.TokenType = JsonTokenType.String then
                                messageCompaction <- startsWith &reader compactionPrefix
                                firstText <- false
                    | JsonTokenType.PropertyName when section = 4 && (depth = 5 || depth = 7) ->
                        if reader.ValueTextEquals typeName then
                            reader.Read() |> ignore

                            if reader.TokenType = JsonTokenType.String && reader.ValueTextEquals imageName then
                                messageImage <- true
                        elif depth = 5 && firstText && reader.ValueTextEquals textName then
                            reader.Read() |> ignore

                            if reader.TokenType = JsonTokenType.String then
                                messageCompaction <- startsWith &reader compactionPrefix
                                firstText <- false
                    | _ -> ()
        with
        | :? JsonException -> ()
        | :? InvalidOperationException -> ()

        facts

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

    /// Classifies one request: `RequestFacts` plus one more pass over the body when stages are configured.
    let classify
        (config: RelayConfig)
        (facts: RequestFacts)
        (body: ReadOnlySpan<byte>)
        (headers: StageHeaders)
        : StageDecision =
        if active config then
            decide config facts (inspect body) headers
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

    /// Classifies a request (`Stages.classify`).
    static member Classify
        (config: RelayConfig, facts: RequestFacts, body: ReadOnlySpan<byte>, headers: StageHeaders)
        : StageDecision =
        Stages.classify config facts body headers
