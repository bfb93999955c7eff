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
        | Transform.DropFields _
        | Transform.ReasoningEffort _ -> StepPhase.Upstream
        | _ -> StepPhase.Anthropic

    /// Whether the step belongs on the response side.
    let isResponse (transform: Transform) : bool =
        match transform with
        | Transform.RepairToolJson -> true
        | _ -> false

    // ---------------------------
    // Request edits
    // ---------------------------

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

    let private changed (body: byte array) = StepOutcome.Changed(body, false)

    let private ofResult (result: Result<byte array, string>) : StepOutcome =
        match result with
        | Ok body -> changed body
        | Error reason -> StepOutcome.Failed reason

    /// Sets each `(name, value)` in turn; Unchanged when there is nothing to set.
    /// Sets each `(name, value)` over a body already scanned, in one splice; Unchanged when there is nothing to set.
    let private setScanned
        (body: byte array)
        (members: JsonMember list)
        (openAt: int)
        (edits: (string * byte array) list)
        : StepOutcome =
        match edits with
        | [] -> StepOutcome.Unchanged
        | _ -> changed (JsonSpans.setMany (ReadOnlySpan body) members openAt edits)

    /// Sets each `(name, value)`: one scan, one splice.
    let private setAll (body: byte array) (edits: (string * byte array) list) : StepOutcome =
        match edits with
        | [] -> StepOutcome.Unchanged
        | _ ->
            match JsonSpans.topLevel (ReadOnlySpan body) with
            | Error e -> StepOutcome.Failed e
            | Ok(members, openAt, _) -> setScanned body members openAt edits

    let private maxTokens (cap: int64 option) (set: int64 option) (body: byte array) : StepOutcome =
        match JsonSpans.topLevel (ReadOnlySpan body) with
        | Error e -> StepOutcome.Failed e
        | Ok(members, openAt, _) ->
            let setAll body edits = setScanned body members openAt edits

            let current =
                JsonSpans.value (ReadOnlySpan body) members "max_tokens"
                |> Option.bind decimalOf

            match set, cap, current with
            | Some value, _, Some now when now = decimal value -> StepOutcome.Unchanged
            | Some value, _, _ -> setAll body [ "max_tokens", integerBytes value ]
            | None, Some limit, Some now when now > decimal limit -> setAll body [ "max_tokens", integerBytes limit ]
            | None, Some limit, None -> setAll body [ "max_tokens", integerBytes limit ]
            | _ -> StepOutcome.Unchanged

    let private sampling (options: SamplingOptions) (body: byte array) : StepOutcome =
        match JsonSpans.topLevel (ReadOnlySpan body) with
        | Error e -> StepOutcome.Failed e
        | Ok(members, openAt, _) ->
            let setAll body edits = setScanned body members openAt edits

            let current name =
                JsonSpans.value (ReadOnlySpan body) members name |> Option.bind decimalOf

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
            |> setAll body

    /// Whether the body may hold a member of one of these names: a name's bytes appear, or some `\u` escape
    /// might spell one. False proves absence without parsing (a vectorised search).
    let private mayName (body: byte array) (names: string list) : bool =
        body.AsSpan().IndexOf("\\u"B) >= 0
        || names
           |> List.exists (fun name -> body.AsSpan().IndexOf(Encoding.UTF8.GetBytes name) >= 0)

    let private cacheControl = [ "cache_control" ]

    let private stripCacheControl (body: byte array) : StepOutcome =
        if not (mayName body cacheControl) then
            StepOutcome.Unchanged
        else
            match JsonSpans.removeNamed (ReadOnlySpan body) 512 cacheControl with
            | Error e -> StepOutcome.Failed e
            | Ok(_, 0) -> StepOutcome.Unchanged
            | Ok(edited, _) -> changed edited

    let private dropFields (fields: string list) (deep: bool) (body: byte array) : StepOutcome =
        let depth = if deep then 512 else 1

        if not (mayName body fields) then
            StepOutcome.Unchanged
        else
            match JsonSpans.removeNamed (ReadOnlySpan body) depth fields with
            | Error e -> StepOutcome.Failed e
            | Ok(_, 0) -> StepOutcome.Unchanged
            | Ok(edited, _) -> changed edited

    let private toolChoice (choice: string) (name: string option) (onlyWithTools: bool) (body: byte array) =
        match JsonSpans.topLevel (ReadOnlySpan body) with
        | Error e -> StepOutcome.Failed e
        | Ok(members, openAt, _) ->
            let setAll body edits = setScanned body members openAt edits

            let hasTools =
                match JsonSpans.value (ReadOnlySpan body) members "tools" with
                | Some raw ->
                    use document = JsonDocument.Parse raw

                    document.RootElement.ValueKind = JsonValueKind.Array
                    && document.RootElement.GetArrayLength() > 0
                | None -> false

            let toolNamed (tool: string) =
                match JsonSpans.value (ReadOnlySpan body) members "tools" with
                | Some raw ->
                    use document = JsonDocument.Parse raw

                    document.RootElement.EnumerateArray()
                    |> Seq.exists (fun t ->
                        match t.TryGetProperty "name" with
                        | true, n -> n.ValueKind = JsonValueKind.String && n.GetString() = tool
                        | _ -> false)
                | None -> false

            if onlyWithTools && not hasTools then
                StepOutcome.Unchanged
            else
                match choice, name with
                | "tool", Some tool when not (toolNamed tool) ->
                    StepOutcome.Failed $"tool_choice names the tool %s{tool}, which the request does not define"
                | _ ->
                    let json =
                        match choice, name with
                        | "tool", Some tool ->
                            "{\"type\":\"tool\",\"name\":"
                            + Encoding.UTF8.GetString(JsonSpans.stringLiteral tool)
                            + "}"
                        | other, _ -> "{\"type\":\"" + other + "\"}"

                    setAll body [ "tool_choice", Encoding.UTF8.GetBytes json ]

    let private textBlock (text: string) : byte array =
        Array.concat [ "{\"type\":\"text\",\"text\":"B; JsonSpans.stringLiteral text; "}"B ]

    let private system (edit: SystemEdit) (text: string) (body: byte array) : StepOutcome =
        let span = ReadOnlySpan body

        match JsonSpans.topLevel span with
        | Error e -> StepOutcome.Failed e
        | Ok(members, _, _) ->
            match edit, members |> List.filter (fun m -> m.Name = "system") |> List.tryLast with
            | SystemEdit.Replace, _
            | _, None -> setAll body [ "system", JsonSpans.stringLiteral text ]
            | _, Some found ->
                match span[found.ValueStart] with
                | '"'B ->
                    let current =
                        use document =
                            JsonDocument.Parse(body.AsMemory(found.ValueStart, found.Stop - found.ValueStart))

                        document.RootElement.GetString() |> Option.ofObj |> Option.defaultValue ""

                    let joined =
                        match edit with
                        | SystemEdit.Append -> current + text
                        | _ -> text + current

                    changed (JsonSpans.splice span [ found.ValueStart, found.Stop, JsonSpans.stringLiteral joined ])
                | '['B ->
                    // the array's interior: empty, or items to put the new block beside
                    let inner = span.Slice(found.ValueStart + 1, found.Stop - found.ValueStart - 2)
                    let empty = inner.Trim(" \t\r\n"B).IsEmpty

                    let at, bytes =
                        match edit, empty with
                        | _, true -> found.ValueStart + 1, textBlock text
                        | SystemEdit.Append, false -> found.Stop - 1, Array.append ","B (textBlock text)
                        | _, false -> found.ValueStart + 1, Array.append (textBlock text) ","B

                    changed (JsonSpans.splice span [ at, at, bytes ])
                | _ -> StepOutcome.Failed "system is neither a string nor an array of blocks"

    let private renameModel (map: (string * string) list) (target: string option) (body: byte array) =
        match JsonSpans.topLevel (ReadOnlySpan body) with
        | Error e -> StepOutcome.Failed e
        | Ok(members, openAt, _) ->
            let setAll body edits = setScanned body members openAt edits

            let current =
                JsonSpans.value (ReadOnlySpan body) members "model"
                |> Option.bind (fun raw ->
                    use document = JsonDocument.Parse raw

                    if document.RootElement.ValueKind = JsonValueKind.String then
                        document.RootElement.GetString() |> Option.ofObj
                    else
                        None)

            match current with
            | None -> StepOutcome.Failed "the request has no model to rename"
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
                | Some name when name <> model -> setAll body [ "model", JsonSpans.stringLiteral name ]
                | _ -> StepOutcome.Unchanged

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

    let private reasoningEffort (lowBelow: int64) (highFrom: int64) (thinking: byte array option) (body: byte array) =
        match effortOf lowBelow highFrom thinking with
        | Some effort -> setAll body [ "reasoning_effort", JsonSpans.stringLiteral effort ]
        | None -> dropFields [ "reasoning_effort" ] false body

    /// The request's `thinking` member (raw), which `reasoning_effort` reads from the Anthropic body.
    let thinkingOf (anthropicBody: ReadOnlySpan<byte>) : byte array option =
        match JsonSpans.topLevel anthropicBody with
        | Ok(members, _, _) -> JsonSpans.value anthropicBody members "thinking"
        | Error _ -> None

    /// Applies one built-in request step to `body` (the Anthropic request for Anthropic-phase steps, the
    /// upstream body for the others). `thinking`: the Anthropic request's `thinking` member. The input is never
    /// modified: an edited body is a new array.
    let applyRequest (transform: Transform) (thinking: byte array option) (body: byte array) : StepOutcome =
        match transform with
        | Transform.MaxTokens(cap, set) -> maxTokens cap set body
        | Transform.Sampling options -> sampling options body
        | Transform.StripCacheControl -> stripCacheControl body
        | Transform.ToolChoice(choice, name, onlyWithTools) -> toolChoice choice name onlyWithTools body
        | Transform.System(edit, text) -> system edit text body
        | Transform.RenameModel(map, target) -> renameModel map target body
        | Transform.DropFields(fields, deep) -> dropFields fields deep body
        | Transform.ReasoningEffort(low, high) -> reasoningEffort low high thinking body
        | Transform.RepairToolJson -> StepOutcome.Failed "repair_tool_json is a response transformer"
        | Transform.Plugin name -> StepOutcome.Failed $"plugin %s{name} runs in the host"

    /// Applies one built-in response step to a whole (non-streaming) JSON answer.
    let applyAnswer (transform: Transform) (body: byte array) : StepOutcome =
        match transform with
        | Transform.RepairToolJson ->
            match ToolJsonRepair.answer (ReadOnlySpan body) with
            | Some repaired, _ -> StepOutcome.Changed(repaired, true)
            | None, _ -> StepOutcome.Unchanged
        | _ -> StepOutcome.Failed "not a response transformer"
