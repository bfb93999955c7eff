namespace CcRelay.Core

open System
open System.Globalization
open System.Text
open System.Text.Json

/// What one step did to a body.
[<RequireQualifiedAccess>]
type StepOutcome =
    /// The body, edited; `Reserialised`: the step wrote (part of) it anew instead of editing bytes in place.
    | Changed of Body: byte array * Reserialised: bool
    /// Nothing to do for this request (e.g. `max_tokens` already under the cap).
    | Unchanged
    /// The step could not be applied: why.
    | Failed of Reason: string

/// The built-in transformers: their catalog entries and what each does to a body. Pure: bytes in, bytes out.
[<RequireQualifiedAccess>]
module Transformers =

    let private all = [ "all" ]

    let private number (lo: decimal) (hi: decimal) = OptionKind.Number(lo, hi)
    let private positive = OptionKind.Integer(1L, Int64.MaxValue)

    let private option (name: string) (kind: OptionKind) (defaultValue: string option) (description: string) = {
        Name = name
        Kind = kind
        Default = defaultValue
        Description = description
    }

    /// The catalog, in documentation order.
    let catalog: TransformerInfo list = [
        {
            Name = "max_tokens"
            Side = "request"
            Summary = "Caps max_tokens (lowers it when above the cap) or sets it."
            Options = [
                option "cap" positive None "lower max_tokens to this when it is above"
                option "set" positive None "set max_tokens to this (exactly one of cap, set)"
            ]
            AppliesTo = all
            InPlace = true
            Edits = "replaces the value of the top-level max_tokens member"
        }
        {
            Name = "sampling"
            Side = "request"
            Summary = "Sets or clamps temperature, top_p and top_k."
            Options = [
                option "temperature" (number 0m 2m) None "set temperature"
                option "top_p" (number 0m 1m) None "set top_p"
                option "top_k" positive None "set top_k"
                option "temperature_min" (number 0m 2m) None "raise a temperature the request sets below this"
                option "temperature_max" (number 0m 2m) None "lower a temperature the request sets above this"
                option "top_p_max" (number 0m 1m) None "lower a top_p the request sets above this"
                option "top_k_max" positive None "lower a top_k the request sets above this"
            ]
            AppliesTo = all
            InPlace = true
            Edits = "replaces (or adds) the top-level temperature, top_p, top_k members"
        }
        {
            Name = "strip_cache_control"
            Side = "request"
            Summary = "Removes every cache_control marker (system, messages, tools)."
            Options = []
            AppliesTo = all
            InPlace = true
            Edits = "removes each cache_control member with its separator, at any depth"
        }
        {
            Name = "tool_choice"
            Side = "request"
            Summary = "Forces tool use: tool_choice any (or one named tool, auto, none)."
            Options = [
                option "type" (OptionKind.Choice [ "any"; "tool"; "auto"; "none" ]) (Some "any") "the tool_choice type"
                option "name" OptionKind.Text None "the tool, with type: tool"
                option "only_with_tools" OptionKind.Flag (Some "true") "leave requests without tools alone"
            ]
            AppliesTo = all
            InPlace = true
            Edits = "replaces (or adds) the top-level tool_choice member"
        }
        {
            Name = "system"
            Side = "request"
            Summary = "Appends, prepends or replaces the system prompt's text."
            Options = [
                option "append" OptionKind.Text None "text added after the system prompt"
                option "prepend" OptionKind.Text None "text added before it"
                option "replace" OptionKind.Text None "text that replaces it (exactly one of the three)"
            ]
            AppliesTo = all
            InPlace = true
            Edits =
                "a text block is inserted into a system array; a system string's value is replaced; an absent system is added"
        }
        {
            Name = "rename_model"
            Side = "request"
            Summary = "Renames the model sent upstream (before the provider's model_mapping)."
            Options = [
                option "map" OptionKind.TextMap None "model pattern → model name (most specific pattern wins)"
                option "to" OptionKind.Text None "one model name for every request (exactly one of map, to)"
            ]
            AppliesTo = all
            InPlace = true
            Edits = "replaces the value of the top-level model member"
        }
        {
            Name = "drop_fields"
            Side = "request"
            Summary = "Drops fields the target rejects, from the body actually sent (after translation)."
            Options = [
                option "fields" OptionKind.Texts None "member names to drop (required)"
                option "deep" OptionKind.Flag (Some "false") "also drop them inside nested objects"
            ]
            AppliesTo = all
            InPlace = true
            Edits = "removes the members with their separators"
        }
        {
            Name = "reasoning_effort"
            Side = "request"
            Summary = "Maps the thinking budget to reasoning_effort (low / medium / high) for a translated target."
            Options = [
                option "low_below" positive (Some "4096") "budgets below this are low"
                option "high_from" positive (Some "16384") "budgets from this on are high; between, medium"
            ]
            AppliesTo = [ "openai" ]
            InPlace = true
            Edits =
                "replaces (or adds) reasoning_effort in the translated Chat Completions body; removes it when thinking is off"
        }
        {
            Name = "reasoning_echo"
            Side = "request"
            Summary =
                "Gives a translated target its own reasoning back on later turns (protocols.md §6.7); on by default."
            Options = [
                option
                    "echo"
                    OptionKind.Flag
                    (Some "true")
                    "the target's own reasoning goes back on its assistant turns (reasoning_content or reasoning, Responses encrypted reasoning, Gemini thought signatures)"
                option
                    "fill_missing"
                    OptionKind.Flag
                    (Some "true")
                    "a turn that needs reasoning and has none gets a placeholder (reasoning_content: \"\" on Chat Completions tool-call turns, skip_thought_signature_validator on a Gemini step's first call)"
            ]
            AppliesTo = [ "openai"; "openai_responses"; "gemini" ]
            InPlace = false
            Edits = "runs inside the translator: sets how the translated request carries earlier reasoning"
        }
        {
            Name = "gemini_schema_clean"
            Side = "request"
            Summary =
                "How tool and output schemas reach Gemini: cleaned to its OpenAPI subset (the default) or as JSON Schema."
            Options = [
                option
                    "mode"
                    (OptionKind.Choice [ "openapi"; "json_schema" ])
                    (Some "openapi")
                    "openapi: cleaned into parameters / responseSchema; json_schema: unchanged in parametersJsonSchema / responseJsonSchema"
                option
                    "hints"
                    OptionKind.Flag
                    (Some "true")
                    "with openapi: what the cleaning drops (pattern, format, exclusive bounds) is noted in the description"
            ]
            AppliesTo = [ "gemini" ]
            InPlace = false
            Edits = "runs inside the translator: sets how each tool's input_schema and the output schema are written"
        }
        {
            Name = "repair_tool_json"
            Side = "response"
            Summary =
                "Repairs malformed tool-call JSON: streamed input_json_delta (held to the block's end) and translated JSON answers."
            Options = []
            AppliesTo = all
            InPlace = false
            Edits =
                "streams: a tool_use block's input deltas are sent as one delta at the block's end, repaired if needed; JSON answers: re-serialised when a tool input was repaired"
        }
    ]

    /// The catalog entry of a name.
    let tryFind (name: string) : TransformerInfo option =
        catalog |> List.tryFind (fun t -> t.Name = name)

    /// The body a request step edits.
    let phase (transform: Transform) : StepPhase =
        match transform with
        | Transform.ReasoningEcho _
        | Transform.GeminiSchemaClean _ -> StepPhase.Translation
        | Transform.DropFields _
        | Transform.ReasoningEffort _ -> StepPhase.Upstream
        | _ -> StepPhase.Anthropic

    /// Whether the step belongs on the response side.
    let isResponse (transform: Transform) : bool =
        match transform with
        | Transform.RepairToolJson -> true
        | _ -> false

    // ---------------------------
    // Request edits: each step plans its edits over a scanned body
    // ---------------------------

    /// One planned edit, in the scanned body's coordinates: `[Start, Stop)` becomes `Bytes`.
    type private Edit = {
        Start: int
        Stop: int
        Bytes: byte array
        /// The object or array whose members it adds or removes (its first member's start, or its bracket);
        /// -1 for a value replaced in place.
        Container: int
        /// The top-level members it adds.
        Adds: string list
    }

    /// What a step would do to a scanned body.
    [<RequireQualifiedAccess>]
    type private Plan =
        | Edits of Edits: Edit list
        | Nothing
        | Cannot of Reason: string

    /// A body scanned once for the steps planned over it.
    type private Scanned = {
        Body: byte array
        /// The top-level members (named when one of the steps wants them).
        Top: JsonMember list
        /// The top-level object's `{`.
        OpenAt: int
        /// The objects holding a member a step wants (the top-level one last).
        Objects: JsonMember list list
    }

    /// The member names a step reads or edits at the top level, and those it removes at any depth.
    let private names (transform: Transform) : string list * string list =
        match transform with
        | Transform.MaxTokens _ -> [ "max_tokens" ], []
        | Transform.Sampling _ -> [ "temperature"; "top_p"; "top_k" ], []
        | Transform.StripCacheControl -> [], [ "cache_control" ]
        | Transform.ToolChoice _ -> [ "tools"; "tool_choice" ], []
        | Transform.System _ -> [ "system" ], []
        | Transform.RenameModel _ -> [ "model" ], []
        | Transform.DropFields(fields, false) -> fields, []
        | Transform.DropFields(fields, true) -> [], fields
        | Transform.ReasoningEffort _ -> [ "reasoning_effort" ], []
        | Transform.ReasoningEcho _
        | Transform.GeminiSchemaClean _
        | Transform.RepairToolJson
        | Transform.Plugin _ -> [], []

    /// One scan of `body` for the steps `transforms`: the top level only, unless one removes at any depth.
    /// `full`: every member of the objects (`JsonSpans.scan`, the reference the tests hold the edits to); otherwise
    /// only the members the steps need (`JsonSpans.scanWanted`).
    let private scanFor (full: bool) (transforms: Transform list) (body: byte array) : Result<Scanned, string> =
        let top, deep = transforms |> List.map names |> List.unzip
        let deep = List.concat deep
        let wanted = List.concat top @ deep |> List.distinct
        let maxDepth = if deep.IsEmpty then 1 else 512

        let found =
            if full then
                JsonSpans.scan (ReadOnlySpan body) maxDepth wanted
            else
                JsonSpans.scanWanted (ReadOnlySpan body) maxDepth wanted

        match found with
        | Error e -> Error e
        | Ok(objects, openAt, _) ->
            Ok {
                Body = body
                Top = objects |> List.tryLast |> Option.defaultValue []
                OpenAt = openAt
                Objects = objects
            }

    let private numberBytes (value: decimal) : byte array =
        Encoding.UTF8.GetBytes(value.ToString(CultureInfo.InvariantCulture))

    let private integerBytes (value: int64) : byte array =
        Encoding.UTF8.GetBytes(value.ToString(CultureInfo.InvariantCulture))

    /// A member's value as a decimal, when it is a number.
    let private decimalOf (raw: byte array) : decimal option =
        let mutable reader = Utf8JsonReader(ReadOnlySpan raw)

        if reader.Read() && reader.TokenType = JsonTokenType.Number then
            match reader.TryGetDecimal() with
            | true, value -> Some value
            | _ -> None
        else
            None

    /// An object's identity for conflicts between steps: its first member's start, or its `{` when empty.
    let private containerOf (members: JsonMember list) (openAt: int) : int =
        match members with
        | first :: _ -> first.Start
        | [] -> openAt

    /// The spans of the top-level members named `name` (every occurrence).
    let private spansOf (s: Scanned) (name: string) : (int * int) list =
        s.Top
        |> List.filter (fun m -> m.Name = name)
        |> List.map (fun m -> m.Start, m.Stop)

    /// The raw value of top-level member `name` (the last occurrence, as JSON readers keep it).
    let private valueOf (s: Scanned) (name: string) : byte array option =
        JsonSpans.value (ReadOnlySpan s.Body) s.Top name

    /// Sets top-level members `(name, raw JSON)`: present ones get the value in place (every occurrence), absent
    /// ones are added after the last member (first in an empty object). Nothing to set: no edit.
    let private setPlan (s: Scanned) (edits: (string * byte array) list) : Plan =
        let replacements =
            edits
            |> List.collect (fun (name, json) ->
                s.Top
                |> List.filter (fun m -> m.Name = name)
                |> List.map (fun m -> {
                    Start = m.ValueStart
                    Stop = m.Stop
                    Bytes = json
                    Container = -1
                    Adds = []
                }))

        let added =
            edits
            |> List.filter (fun (name, _) -> not (s.Top |> List.exists (fun m -> m.Name = name)))

        let insertion =
            match added, List.tryLast s.Top with
            | [], _ -> []
            | _, Some last -> [
                {
                    Start = last.Stop
                    Stop = last.Stop
                    Bytes =
                        added
                        |> List.map (fun (n, j) -> Array.concat [ ","B; JsonSpans.nameBytes n; j ])
                        |> Array.concat
                    Container = containerOf s.Top s.OpenAt
                    Adds = List.map fst added
                }
              ]
            | _, None -> [
                {
                    Start = s.OpenAt + 1
                    Stop = s.OpenAt + 1
                    Bytes =
                        added
                        |> List.mapi (fun i (n, j) ->
                            Array.concat [ (if i > 0 then ","B else [||]); JsonSpans.nameBytes n; j ])
                        |> Array.concat
                    Container = s.OpenAt
                    Adds = List.map fst added
                }
              ]

        match replacements @ insertion with
        | [] -> Plan.Nothing
        | all -> Plan.Edits all

    /// The spans that remove the members of one object for which `remove` holds, with their separators, so
    /// the object stays valid JSON whichever positions they held.
    let private removals (members: JsonMember list) (remove: JsonMember -> bool) : (int * int) list =
        let members = Array.ofList members
        let n = members.Length
        let removed = members |> Array.map remove

        match Array.tryFindIndexBack not removed with
        | _ when not (Array.contains true removed) -> []
        | None -> [ members[0].Start, members[n - 1].Stop ]
        | Some lastKept -> [
            for i in 0 .. lastKept - 1 do
                if removed[i] then
                    members[i].Start, members[i + 1].Start
            if lastKept < n - 1 then
                members[lastKept].Stop, members[n - 1].Stop
          ]

    /// Removes the members named `fields`: top-level ones, or at any depth with `deep` (members inside a removed
    /// one go with it).
    let private removePlan (s: Scanned) (fields: string list) (deep: bool) : Plan =
        let remove (m: JsonMember) = List.contains m.Name fields
        let objects = if deep then s.Objects else [ s.Top ]

        let spans =
            objects
            |> List.collect (fun members ->
                let container = containerOf members s.OpenAt

                removals members remove
                |> List.map (fun (start, stop) -> start, stop, container))
            |> List.sortBy (fun (start, _, _) -> start)

        // nested spans (a member inside a removed member) go with the outer one
        let outer =
            spans
            |> List.fold
                (fun (kept, reach) (start, stop, container) ->
                    if start < reach then
                        kept, reach
                    else
                        (start, stop, container) :: kept, stop)
                ([], -1)
            |> fst
            |> List.rev

        match outer with
        | [] -> Plan.Nothing
        | _ ->
            Plan.Edits(
                outer
                |> List.map (fun (start, stop, container) -> {
                    Start = start
                    Stop = stop
                    Bytes = [||]
                    Container = container
                    Adds = []
                })
            )

    let private maxTokensPlan (cap: int64 option) (set: int64 option) (s: Scanned) : Plan =
        let current = valueOf s "max_tokens" |> Option.bind decimalOf

        let setTo value =
            setPlan s [ "max_tokens", integerBytes value ]

        match set, cap, current with
        | Some value, _, Some now when now = decimal value -> Plan.Nothing
        | Some value, _, _ -> setTo value
        | None, Some limit, Some now when now > decimal limit -> setTo limit
        | None, Some limit, None -> setTo limit
        | _ -> Plan.Nothing

    let private samplingPlan (options: SamplingOptions) (s: Scanned) : Plan =
        let current name = valueOf s name |> Option.bind decimalOf

        let decide (name: string) (set: decimal option) (low: decimal option) (high: decimal option) =
            match set, current name with
            | Some value, Some now when now = value -> None
            | Some value, _ -> Some(name, value)
            | None, Some now ->
                match low, high with
                | Some lo, _ when now < lo -> Some(name, lo)
                | _, Some hi when now > hi -> Some(name, hi)
                | _ -> None
            | None, None -> None

        [
            decide "temperature" options.Temperature options.TemperatureMin options.TemperatureMax
            decide "top_p" options.TopP None options.TopPMax
            decide "top_k" (options.TopK |> Option.map decimal) None (options.TopKMax |> Option.map decimal)
        ]
        |> List.choose id
        |> List.map (fun (name, value) -> name, numberBytes value)
        |> setPlan s

    let private toolChoicePlan (choice: string) (name: string option) (onlyWithTools: bool) (s: Scanned) : Plan =
        let tools = valueOf s "tools"

        let hasTools =
            match tools with
            | Some raw ->
                use document = JsonDocument.Parse raw

                document.RootElement.ValueKind = JsonValueKind.Array
                && document.RootElement.GetArrayLength() > 0
            | None -> false

        let toolNamed (tool: string) =
            match tools with
            | Some raw ->
                use document = JsonDocument.Parse raw

                // `tools` that is not an array of objects defines no tool (and must not throw)
                document.RootElement.ValueKind = JsonValueKind.Array
                && document.RootElement.EnumerateArray()
                   |> Seq.exists (fun t ->
                       t.ValueKind = JsonValueKind.Object
                       && match t.TryGetProperty "name" with
                          | true, n -> n.ValueKind = JsonValueKind.String && n.GetString() = tool
                          | _ -> false)
            | None -> false

        if onlyWithTools && not hasTools then
            Plan.Nothing
        else
            match choice, name with
            | "tool", Some tool when not (toolNamed tool) ->
                Plan.Cannot $"tool_choice names the tool %s{tool}, which the request does not define"
            | _ ->
                let json =
                    match choice, name with
                    | "tool", Some tool ->
                        "{\"type\":\"tool\",\"name\":"
                        + Encoding.UTF8.GetString(JsonSpans.stringLiteral tool)
                        + "}"
                    | other, _ -> "{\"type\":\"" + other + "\"}"

                setPlan s [ "tool_choice", Encoding.UTF8.GetBytes json ]

    let private textBlock (text: string) : byte array =
        Array.concat [ "{\"type\":\"text\",\"text\":"B; JsonSpans.stringLiteral text; "}"B ]

    let private systemPlan (edit: SystemEdit) (text: string) (s: Scanned) : Plan =
        let span = ReadOnlySpan s.Body

        match edit, s.Top |> List.filter (fun m -> m.Name = "system") |> List.tryLast with
        | SystemEdit.Replace, _
        | _, None -> setPlan s [ "system", JsonSpans.stringLiteral text ]
        | _, Some found ->
            match span[found.ValueStart] with
            | '"'B ->
                let current =
                    use document =
                        JsonDocument.Parse(s.Body.AsMemory(found.ValueStart, found.Stop - found.ValueStart))

                    document.RootElement.GetString() |> Option.ofObj |> Option.defaultValue ""

                let joined =
                    match edit with
                    | SystemEdit.Append -> current + text
                    | _ -> text + current

                Plan.Edits(
                    [
                        {
                            Start = found.ValueStart
                            Stop = found.Stop
                            Bytes = JsonSpans.stringLiteral joined
                            Container = -1
                            Adds = []
                        }
                    ]
                )
            | '['B ->
                // the array's interior: empty, or items to put the new block beside
                let inner = span.Slice(found.ValueStart + 1, found.Stop - found.ValueStart - 2)
                let empty = inner.Trim(" \t\r\n"B).IsEmpty

                let at, bytes =
                    match edit, empty with
                    | _, true -> found.ValueStart + 1, textBlock text
                    | SystemEdit.Append, false -> found.Stop - 1, Array.append ","B (textBlock text)
                    | _, false -> found.ValueStart + 1, Array.append (textBlock text) ","B

                Plan.Edits(
                    [
                        {
                            Start = at
                            Stop = at
                            Bytes = bytes
                            Container = found.ValueStart
                            Adds = []
                        }
                    ]
                )
            | _ -> Plan.Cannot "system is neither a string nor an array of blocks"

    let private renameModelPlan (map: (string * string) list) (target: string option) (s: Scanned) : Plan =
        let current =
            valueOf s "model"
            |> Option.bind (fun raw ->
                use document = JsonDocument.Parse raw

                if document.RootElement.ValueKind = JsonValueKind.String then
                    document.RootElement.GetString() |> Option.ofObj
                else
                    None)

        match current with
        | None -> Plan.Cannot "the request has no model to rename"
        | Some model ->
            let renamed =
                match target with
                | Some name -> Some name
                | None ->
                    map
                    |> List.filter (fun (pattern, _) -> ModelPattern.matches pattern model)
                    |> List.sortByDescending (fun (pattern, _) -> ModelPattern.specificity pattern)
                    |> List.tryHead
                    |> Option.map snd

            match renamed with
            | Some name when name <> model -> setPlan s [ "model", JsonSpans.stringLiteral name ]
            | _ -> Plan.Nothing

    /// The reasoning effort a thinking budget maps to; None when thinking is off. Adaptive thinking is medium.
    let effortOf (lowBelow: int64) (highFrom: int64) (thinking: byte array option) : string option =
        match thinking with
        | None -> None
        | Some raw ->
            try
                use document = JsonDocument.Parse raw
                let root = document.RootElement

                let kind =
                    match root.TryGetProperty "type" with
                    | true, t when t.ValueKind = JsonValueKind.String -> t.GetString()
                    | _ -> null

                match kind with
                | "enabled" ->
                    match root.TryGetProperty "budget_tokens" with
                    | true, b when b.ValueKind = JsonValueKind.Number ->
                        let budget = b.GetInt64()

                        if budget < lowBelow then Some "low"
                        elif budget >= highFrom then Some "high"
                        else Some "medium"
                    | _ -> Some "medium"
                | "adaptive" -> Some "medium"
                | _ -> None
            with :? JsonException ->
                None

    /// The request's `thinking` member (raw), which `reasoning_effort` reads from the Anthropic body.
    let thinkingOf (anthropicBody: ReadOnlySpan<byte>) : byte array option =
        match JsonSpans.scan anthropicBody 1 [ "thinking" ] with
        | Ok(objects, _, _) ->
            JsonSpans.value anthropicBody (objects |> List.tryLast |> Option.defaultValue []) "thinking"
        | Error _ -> None

    /// What one built-in request step would do to a scanned body.
    let private plan (transform: Transform) (thinking: byte array option) (s: Scanned) : Plan =
        match transform with
        | Transform.MaxTokens(cap, set) -> maxTokensPlan cap set s
        | Transform.Sampling options -> samplingPlan options s
        | Transform.StripCacheControl -> removePlan s [ "cache_control" ] true
        | Transform.ToolChoice(choice, name, onlyWithTools) -> toolChoicePlan choice name onlyWithTools s
        | Transform.System(edit, text) -> systemPlan edit text s
        | Transform.RenameModel(map, target) -> renameModelPlan map target s
        | Transform.DropFields(fields, deep) -> removePlan s fields deep
        | Transform.ReasoningEffort(low, high) ->
            match effortOf low high thinking with
            | Some effort -> setPlan s [ "reasoning_effort", JsonSpans.stringLiteral effort ]
            | None -> removePlan s [ "reasoning_effort" ] false
        | Transform.ReasoningEcho _
        | Transform.GeminiSchemaClean _ -> Plan.Cannot "a translation-phase transformer runs inside the translator"
        | Transform.RepairToolJson -> Plan.Cannot "repair_tool_json is a response transformer"
        | Transform.Plugin name -> Plan.Cannot $"plugin %s{name} runs in the host"

    /// The body with the edits made (none overlapping).
    let private applyEdits (body: byte array) (edits: Edit list) : byte array =
        JsonSpans.splice (ReadOnlySpan body) (edits |> List.map (fun e -> e.Start, e.Stop, e.Bytes))

    /// Whether the body may hold a member of one of these names: a name's bytes appear, or some `\u` escape
    /// might spell one. False proves absence without parsing (a vectorised search).
    let private mayName (body: byte array) (names: string list) : bool =
        body.AsSpan().IndexOf("\\u"B) >= 0
        || names
           |> List.exists (fun name -> body.AsSpan().IndexOf(Encoding.UTF8.GetBytes name) >= 0)

    /// `applyRequest`, over the full member scan when `full` (the reference the tests hold it to).
    let internal applyRequestWith
        (full: bool)
        (transform: Transform)
        (thinking: byte array option)
        (body: byte array)
        : StepOutcome =
        let removes =
            match transform with
            | Transform.StripCacheControl -> Some [ "cache_control" ]
            | Transform.DropFields(fields, _) -> Some fields
            | Transform.ReasoningEffort(low, high) when (effortOf low high thinking).IsNone ->
                Some [ "reasoning_effort" ]
            | _ -> None

        match removes with
        // a removal with none of its names in the body has nothing to do, even in a body it cannot read
        | Some fields when not (mayName body fields) -> StepOutcome.Unchanged
        | _ ->
            match transform with
            | Transform.RepairToolJson -> StepOutcome.Failed "repair_tool_json is a response transformer"
            | Transform.Plugin name -> StepOutcome.Failed $"plugin %s{name} runs in the host"
            | Transform.ReasoningEcho _
            | Transform.GeminiSchemaClean _ ->
                StepOutcome.Failed "a translation-phase transformer runs inside the translator"
            | _ ->
                match scanFor full [ transform ] body with
                | Error e -> StepOutcome.Failed e
                | Ok scanned ->
                    match plan transform thinking scanned with
                    | Plan.Edits edits -> StepOutcome.Changed(applyEdits body edits, false)
                    | Plan.Nothing -> StepOutcome.Unchanged
                    | Plan.Cannot reason -> StepOutcome.Failed reason

    /// Applies one built-in request step to `body` (the Anthropic request for Anthropic-phase steps, the
    /// upstream body for the others). `thinking`: the Anthropic request's `thinking` member. The input is never
    /// modified: an edited body is a new array.
    let applyRequest (transform: Transform) (thinking: byte array option) (body: byte array) : StepOutcome =
        applyRequestWith false transform thinking body

    // ---------------------------
    // Fused steps: one scan, one splice
    // ---------------------------

    /// Whether two spans meet: overlapping, or an insertion (an empty span) at or inside the other.
    let private clash (start1: int, stop1: int) (start2: int, stop2: int) : bool =
        if start1 = stop1 || start2 = stop2 then
            start1 <= stop2 && start2 <= stop1
        else
            start1 < stop2 && start2 < stop1

    /// Whether a later step's plan might differ from what it plans over the body the earlier edits made: it
    /// edits where they edited, adds or removes members of an object they added to or removed from, reads a
    /// top-level member they edited (every step decides from its own top-level names only), looks at a
    /// top-level name they added, or removes at any depth a name their new bytes might hold.
    let private dependsOn (earlier: Edit list) (s: Scanned) (later: Transform) (edits: Edit list) =
        let top, deep = names later
        let reads = top |> List.collect (spansOf s)

        let deepBytes = deep |> List.map Encoding.UTF8.GetBytes

        earlier
        |> List.exists (fun before ->
            let span = before.Start, before.Stop

            edits
            |> List.exists (fun e ->
                clash span (e.Start, e.Stop)
                || (e.Container >= 0 && e.Container = before.Container))
            || reads
               |> List.exists (fun (start, stop) -> start <= before.Stop && before.Start <= stop)
            || before.Adds |> List.exists (fun name -> List.contains name top)
            || (not deep.IsEmpty
                && (before.Bytes.AsSpan().IndexOf("\\u"B) >= 0
                    || deepBytes |> List.exists (fun name -> before.Bytes.AsSpan().IndexOf(name) >= 0))))

    /// Applies consecutive built-in request steps in one scan and one splice: each step plans over the same
    /// scanned body, and the edits are made together. The outcomes are exactly those of applying the steps one
    /// after another (`applyRequest`), each `Changed` carrying the final body. None when that cannot be
    /// guaranteed — a step would see another's edit (they touch the same member or object, see `dependsOn`),
    /// or a step fails or is not a built-in request step — and the caller applies them one by one.
    /// `full`: over the full member scan (the reference the tests hold it to).
    let internal applyFusedWith
        (full: bool)
        (transforms: Transform list)
        (thinking: byte array option)
        (body: byte array)
        : StepOutcome list option =
        let builtIn =
            transforms
            |> List.forall (function
                | Transform.RepairToolJson
                | Transform.ReasoningEcho _
                | Transform.GeminiSchemaClean _
                | Transform.Plugin _ -> false
                | _ -> true)

        if not builtIn then
            None
        else
            match scanFor full transforms body with
            | Error _ -> None
            | Ok scanned ->
                let planned =
                    transforms
                    |> List.fold
                        (fun (state: (Edit list * bool list) option) transform ->
                            match state with
                            | None -> None
                            | Some(all, changed) ->
                                match plan transform thinking scanned with
                                | Plan.Cannot _ -> None
                                | Plan.Nothing when dependsOn all scanned transform [] -> None
                                | Plan.Nothing -> Some(all, false :: changed)
                                | Plan.Edits edits when dependsOn all scanned transform edits -> None
                                | Plan.Edits edits -> Some(all @ edits, true :: changed))
                        (Some([], []))

                match planned with
                | None -> None
                | Some(edits, changed) ->
                    let result = if edits.IsEmpty then body else applyEdits body edits

                    changed
                    |> List.rev
                    |> List.map (fun c ->
                        if c then
                            StepOutcome.Changed(result, false)
                        else
                            StepOutcome.Unchanged)
                    |> Some

    /// Applies consecutive built-in request steps in one scan and one splice (see `applyFusedWith`; the scan
    /// records only the members the steps need).
    let applyFused
        (transforms: Transform list)
        (thinking: byte array option)
        (body: byte array)
        : StepOutcome list option =
        applyFusedWith false transforms thinking body

    /// The translators' fix-ups after the translation-phase `steps` (in order; a later one wins), starting from
    /// `TranslationFixups.defaults`.
    let fixups (transforms: Transform seq) : TranslationFixups =
        transforms
        |> Seq.fold
            (fun (fixups: TranslationFixups) transform ->
                match transform with
                | Transform.ReasoningEcho(echo, fill) -> {
                    fixups with
                        EchoReasoning = echo
                        FillMissingReasoning = fill
                  }
                | Transform.GeminiSchemaClean(mode, hints) -> {
                    fixups with
                        GeminiSchema = mode
                        SchemaHints = hints
                  }
                | _ -> fixups)
            TranslationFixups.defaults

    /// Applies one built-in response step to a whole (non-streaming) JSON answer.
    let applyAnswer (transform: Transform) (body: byte array) : StepOutcome =
        match transform with
        | Transform.RepairToolJson ->
            match ToolJsonRepair.answer (ReadOnlySpan body) with
            | Some repaired, _ -> StepOutcome.Changed(repaired, true)
            | None, _ -> StepOutcome.Unchanged
        | _ -> StepOutcome.Failed "not a response transformer"
